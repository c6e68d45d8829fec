/**
 * One VM's backup: preflight → snapshot → per disk (transport → read allocated
 * or changed areas → repository) → detach → remove snapshot → commit the
 * restore point → hand back the new changeIds (stored by the caller only now,
 * after every disk succeeded). Disks the job leaves out are never read; the
 * restore point lists them and its hardware omits them (exclusions.ts).
 *
 * Safety rules, in order of importance:
 * - every snapshot and attached disk has a journal row written BEFORE it exists
 *   and resolved only after it was undone; `finally` blocks undo them on every
 *   path (error, cancel), and the orphan sweep replays what a killed process
 *   left behind;
 * - a detach never carries a file operation (the vSphere client cannot send one);
 * - nothing is committed unless every disk was read completely; a failed or
 *   cancelled VM leaves no restore point;
 * - a snapshot is never removed while one of its disks is still attached to the
 *   proxy (a failed detach fails that disk and leaves both to the sweep); a
 *   removal vSphere keeps refusing, after every disk was read, still commits the
 *   complete point, with a warning, and leaves the snapshot to the sweep.
 */
import { randomInt } from 'node:crypto';
import { backupSnapshotName, transportLabel, type JobOptions, type TransportMode } from '@vaultline/contracts';
import type { Logger } from '@vaultline/logger';
import type { DiskReader as RepoDiskReader, Manifest, Repository, RestorePointRef, RestorePointWriter } from '@vaultline/repository';
import { complement, normaliseAreas, pieces, sampleBlocks, totalLength } from './areas.ts';
import { hardwareWithout, leaveOut } from './exclusions.ts';
import type { CleanupJournal } from './journal.ts';
import { DiskMeter, mib, secondsSince, type ProgressSink } from './progress.ts';
import { ReadAhead, readAheadFor } from './readahead.ts';
import { CancelledError, DetachError, QuiesceError, TransportUnavailable, VmBackupError } from '../errors.ts';
import type { Area, DatastoreInfo, LocalDevices, SourceReader, TransportChoice, VmDisk, VmInfo, VSpherePort } from './ports.ts';
import { chooseTransports, SAN_NEVER, type DiskFacts, type TransporterFacts } from './transport-select.ts';
import type { TransporterLimits } from './limits.ts';

const READ_SIZE = 4 * 1024 * 1024;
const SANITY_BLOCK = 64 * 1024;

export interface PreviousPoint {
  ref: RestorePointRef;
  /** changeId per disk device key, as stored after that point's successful run. */
  changeIds: Record<string, string>;
  capacities: Record<string, number>;
  /** The previous point was marked suspect (CBT sanity mismatch): read everything again. */
  suspect: boolean;
}

export interface DiskOutcome {
  deviceKey: number;
  label: string;
  capacityBytes: number;
  transport: string;
  reasons: string[];
  cbtUsed: boolean;
  /** `changed`: only the CBT areas since the parent point were read (an incremental); `full`: every allocated area. */
  readMode: 'changed' | 'full';
  bytesRead: number;
  bytesWritten: number;
  bytesSkipped: number;
  changeId: string | null;
  sanityChecked: number;
  sanityMismatches: number;
  startedAt: Date;
  finishedAt: Date;
}

export interface VmBackupResult {
  manifest: Manifest;
  disks: DiskOutcome[];
  changeIds: Record<string, string>;
  quiesced: boolean;
  suspect: boolean;
  warnings: string[];
}

export interface VmBackupInput {
  runId: string;
  runVmId: string;
  vcenterId: string;
  vmMoref: string;
  transportMode: TransportMode;
  options: JobOptions;
  previous: PreviousPoint | null;
  repositoryVmId: (vm: VmInfo) => string;
  /** Device keys of the disks the job leaves out: not read, not stored, listed in the restore point (`vm.excludedDisks`). */
  excludeDisks?: readonly number[];
}

export interface VmBackupDeps {
  vsphere: VSpherePort;
  devices: LocalDevices;
  journal: CleanupJournal;
  repo: Repository;
  openWriter(repo: Repository, opts: { vmId: string; parent: RestorePointRef | null; vm: unknown; transport: string; labels: Record<string, string>; lockedUntil: Date | null }): Promise<RestorePointWriter>;
  openParentReader(repo: Repository, ref: RestorePointRef, diskKey: string): Promise<RepoDiskReader>;
  transporter: Omit<TransporterFacts, 'datastoreHosts'>;
  progress: ProgressSink;
  log: Logger;
  /** Run-log lines shown to the operator for this VM. */
  runLog(level: 'info' | 'warn' | 'error', message: string): void;
  /** A new phase, or what the phase now waits on (`detail`, shown under it). */
  phase(phase: string, detail?: string | null): Promise<void>;
  diskPhase(deviceKey: number, update: Partial<DiskOutcome> & { phase: string }): Promise<void>;
  isCancelled(): boolean;
  maxParallelDisks: number;
  /** Transporter-wide limits (disk tasks, network streams per ESXi host). */
  limits?: TransporterLimits;
  /**
   * How often, and how patiently, removing the snapshot is tried before the point is committed anyway
   * (default 3 attempts, 5 s apart, growing): vSphere often refuses just after a detach, while the
   * disk's lock lingers, or while another task runs on the VM.
   */
  snapshotRemoval?: { attempts: number; delayMs: number };
}

export async function runVmBackup(input: VmBackupInput, deps: VmBackupDeps): Promise<VmBackupResult> {
  const { vsphere, journal, log } = deps;
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    deps.runLog('warn', m);
  };
  const checkCancel = () => {
    if (deps.isCancelled()) throw new CancelledError();
  };

  // ---- preflight
  await deps.phase('preflight', "reading the VM's configuration, disks and datastores from vCenter");
  let vm: VmInfo;
  try {
    vm = await vsphere.getVm(input.vmMoref);
  } catch (err) {
    throw new VmBackupError(`the VM ${input.vmMoref} cannot be found in vCenter (${(err as Error).message}); was it deleted?`, false);
  }
  const excluded = leaveOut(vm, input.excludeDisks ?? [], deps.runLog);
  const disks = vm.disks.filter((d) => {
    if (excluded.some((x) => x.key === d.key)) return false;
    if (d.diskMode?.startsWith('independent')) {
      warn(`disk ${d.label} is ${d.diskMode}: snapshots do not cover it, so it is not backed up`);
      return false;
    }
    return true;
  });
  if (disks.length === 0) {
    if (excluded.length > 0) throw new VmBackupError(`the job leaves out every disk of ${vm.name} that can be backed up; nothing to back up`, false);
    throw new VmBackupError(`${vm.name} has no disk that can be backed up`, false);
  }

  if (!vm.changeTrackingEnabled && input.options.enableCbt) {
    deps.runLog('info', 'enabling Changed Block Tracking on the VM (takes effect with this backup)');
    try {
      await vsphere.enableCbt(vm.moref);
      vm = await vsphere.getVm(vm.moref);
    } catch (err) {
      warn(`could not enable Changed Block Tracking: ${(err as Error).message}; reading whole disks`);
    }
  }

  // Transport decisions, before any snapshot exists.
  const datastoreHosts = new Map<string, string[]>();
  const lunProbes = new Map<string, Promise<string | null>>();
  const facts: DiskFacts[] = [];
  for (const d of disks) {
    const ds = await vsphere.datastore(d.datastore).catch((): DatastoreInfo => ({ name: d.datastore, type: 'unknown', naaIds: [], extents: [], hosts: [] }));
    datastoreHosts.set(ds.name, ds.hosts);
    let visibleLun: string | null = null;
    let lunProblem: string | null = null;
    if (deps.transporter.blockDevices && !SAN_NEVER.test(ds.type)) {
      for (const naa of ds.naaIds) {
        const device = await deps.devices.findLun(naa);
        if (!device) continue;
        visibleLun = naa;
        // Whether its datastore can be read here is known now, not after the snapshot (once per datastore).
        if (input.transportMode === 'automatic' || input.transportMode === 'san') {
          const partition = ds.extents.find((e) => e.naa === naa)?.partition ?? 0;
          let probe = lunProbes.get(`${naa}|${partition}`);
          if (!probe) {
            probe = probeLun(deps, input, naa, device, partition);
            lunProbes.set(`${naa}|${partition}`, probe);
          }
          lunProblem = await probe;
        }
        break;
      }
    }
    facts.push({ disk: d, datastoreType: ds.type, naaIds: ds.naaIds, visibleLun, lunProblem });
  }
  const tf: TransporterFacts = { ...deps.transporter, datastoreHosts };
  const choices = new Map<number, TransportChoice>();
  for (const [i, choice] of chooseTransports(input.transportMode, facts, tf).entries()) {
    const f = facts[i]!;
    if (choice instanceof TransportUnavailable) throw new VmBackupError(`disk ${f.disk.label}: ${choice.message}`, false);
    choices.set(f.disk.key, choice);
    deps.runLog('info', `disk ${f.disk.label}: ${transportLabel(choice.transport)} — ${choice.reasons.join('; ')}`);
  }
  // Every disk is listed from the start (queued, with its transport and why), not only once its copy begins;
  // one that never starts is marked failed or cancelled with its VM (below).
  for (const f of facts) {
    const c = choices.get(f.disk.key)!;
    await deps.diskPhase(f.disk.key, { phase: 'queued', label: f.disk.label, capacityBytes: f.disk.capacityBytes, transport: c.transport, reasons: c.reasons });
  }
  const started = new Set<number>();
  checkCancel();

  // ---- snapshot
  const snapshotWhat = (q: boolean) =>
    q ? "vCenter is taking a quiesced snapshot (VMware Tools first has the guest's applications flush their writes)" : 'vCenter is taking a crash-consistent snapshot';
  await deps.phase('snapshot', snapshotWhat(input.options.quiesce !== 'off'));
  const snapJournal = await journal.add('snapshot', { vmMoref: vm.moref, snapshot: null }, { runVmId: input.runVmId, vcenterId: input.vcenterId });
  let snapshot: string | null = null;
  /** The snapshot as the vSphere Client shows it (its name), for the run log: operators never see morefs. */
  const snapName = backupSnapshotName(input.runVmId);
  let quiesced = input.options.quiesce !== 'off';
  let writer: RestorePointWriter | null = null;
  let committed: Manifest | null = null;
  let snapshotRemoved = false;
  /** A hot-added disk could not be detached: the snapshot must stay until the sweep has detached it. */
  let leftAttached = false;
  try {
    const snapStarted = performance.now();
    try {
      const progress = taskProgress(deps, 'snapshot', snapshotWhat(quiesced));
      snapshot = await vsphere.createSnapshot(vm.moref, input.runVmId, quiesced, progress.onProgress).finally(progress.settled);
    } catch (err) {
      if (!(err instanceof QuiesceError) || input.options.quiesce !== 'try') {
        if (err instanceof QuiesceError) throw new VmBackupError(`quiescing the guest failed and the job requires it: ${err.message}`, false, { cause: err });
        throw err;
      }
      warn(`quiescing the guest failed (${err.message}); taking a crash-consistent snapshot instead`);
      quiesced = false;
      await deps.phase('snapshot', snapshotWhat(false));
      const progress = taskProgress(deps, 'snapshot', snapshotWhat(false));
      snapshot = await vsphere.createSnapshot(vm.moref, input.runVmId, false, progress.onProgress).finally(progress.settled);
    }
    await journal.update(snapJournal, { vmMoref: vm.moref, snapshot });
    deps.runLog('info', `snapshot ${snapName} taken (${quiesced ? 'quiesced' : 'crash-consistent'}) in ${secondsSince(snapStarted)} s`);
    checkCancel();

    const snapDisks = new Map((await vsphere.snapshotDisks(snapshot)).map((d) => [d.key, d]));
    const hardware = await vsphere.snapshotHardware(snapshot).catch((err: unknown) => {
      warn(`cannot read the VM's hardware from the snapshot (${(err as Error).message}); a full VM restore will need it described by hand`);
      return null;
    });

    // ---- disks
    await deps.phase('copying');
    const prev = input.previous;
    writer = await deps.openWriter(deps.repo, {
      vmId: input.repositoryVmId(vm),
      parent: prev?.ref ?? null,
      vm: {
        name: vm.name,
        moref: vm.moref,
        instanceUuid: vm.instanceUuid,
        biosUuid: vm.biosUuid,
        // A restore recreates the VM from this: without the left-out disks, which the point does not hold.
        hardware: hardwareWithout(hardware, excluded),
        ...(excluded.length > 0 ? { excludedDisks: excluded } : {}),
      },
      transport: [...new Set([...choices.values()].map((c) => c.transport))].join(','),
      labels: { runId: input.runId, runVmId: input.runVmId, vmName: vm.name },
      lockedUntil: input.options.retention.immutableDays > 0 ? new Date(Date.now() + input.options.retention.immutableDays * 86_400_000) : null,
    });
    const outcomes: DiskOutcome[] = [];
    const queue = [...disks];
    const rpWriter = writer;
    const snap = snapshot;
    // The first failing disk stops its siblings; cleanup waits until every disk task has let go
    // of its device, so the snapshot is never removed under a disk still being read.
    let failure: unknown = null;
    const shouldStop = () => failure !== null || deps.isCancelled();
    const workers = Array.from({ length: Math.max(1, Math.min(deps.maxParallelDisks, queue.length)) }, async () => {
      for (let d = queue.shift(); d && !shouldStop(); d = queue.shift()) {
        const sd = snapDisks.get(d.key) ?? d;
        const choice = choices.get(d.key)!;
        const release = deps.limits ? await deps.limits.disk(choice.transport, vm.host) : () => undefined;
        started.add(d.key);
        try {
          outcomes.push(await backupDisk({ input, deps, vm, disk: d, snapDisk: sd, snapshot: snap, writer: rpWriter, choice, warn, shouldStop }));
        } catch (err) {
          // Name the disk and transport in the VM's error, keeping the error's class.
          if (err instanceof Error && !(err instanceof CancelledError)) err.message = `disk ${d.label} (${choice.transport}): ${err.message}`;
          await deps.diskPhase(d.key, { phase: err instanceof CancelledError ? 'cancelled' : 'failed' }).catch(() => undefined);
          if (err instanceof DetachError) leftAttached = true;
          failure ??= err;
        } finally {
          release();
        }
      }
    });
    await Promise.all(workers);
    if (failure) throw failure;
    checkCancel();

    // ---- remove the snapshot, then commit
    await deps.phase('removing snapshot', REMOVING_WHAT);
    const removeStarted = performance.now();
    const removal = await removeSnapshotPatiently(deps, snapshot, snapName);
    if (removal === null) {
      await journal.resolve(snapJournal);
      deps.runLog('info', `snapshot ${snapName} removed in ${secondsSince(removeStarted)} s`);
    } else {
      // Every byte was read from the snapshot, so the restore point is good: it is committed, with a warning,
      // and the snapshot is left to the orphan sweep, whose row says why.
      await journal.failed(snapJournal, removal).catch(() => undefined);
      warn(`snapshot ${snapName} could not be removed (${removal}); the restore point is complete, and the orphan sweep will remove the snapshot`);
    }
    snapshot = null;
    snapshotRemoved = true;

    await deps.phase('committing', "writing the restore point's disk indexes and manifest to the repository");
    committed = await writer.commit();
    writer = null;
    const changeIds: Record<string, string> = {};
    for (const o of outcomes) if (o.changeId) changeIds[String(o.deviceKey)] = o.changeId;
    const suspect = outcomes.some((o) => o.sanityMismatches > 0);
    if (suspect) warn('CBT sanity check found areas CBT called unchanged that did change; this restore point is marked suspect and the next backup re-reads every disk');
    return { manifest: committed, disks: outcomes.sort((a, b) => a.deviceKey - b.deviceKey), changeIds, quiesced, suspect, warnings };
  } finally {
    if (!committed) {
      const ended = deps.isCancelled() ? 'cancelled' : 'failed';
      for (const f of facts) if (!started.has(f.disk.key)) await deps.diskPhase(f.disk.key, { phase: ended }).catch(() => undefined);
    }
    if (writer) await writer.abort().catch((err: unknown) => log.warn({ err }, 'aborting the restore point failed'));
    if (snapshot && leftAttached) {
      // vSphere cannot remove a snapshot while one of its disks is attached to the proxy: the sweep detaches, then removes.
      const why = 'a disk of this snapshot is still attached to the proxy VM; the orphan sweep detaches it, then removes the snapshot';
      await journal.failed(snapJournal, why).catch(() => undefined);
      deps.runLog('error', `snapshot ${snapName} was left in place: ${why}`);
    } else if (snapshot) {
      try {
        await vsphere.removeSnapshot(snapshot);
        await journal.resolve(snapJournal);
        deps.runLog('info', `snapshot ${snapName} removed`);
      } catch (err) {
        await journal.failed(snapJournal, (err as Error).message).catch(() => undefined);
        deps.runLog('error', `could not remove snapshot ${snapName}: ${(err as Error).message}; the orphan sweep will retry`);
      }
    } else if (!committed && !snapshotRemoved) {
      // Creating the snapshot failed. It may still exist on the server (a timeout
      // after vCenter took it), so the journal row stays for the sweep, which
      // looks the snapshot up by its tag.
      await journal.failed(snapJournal, 'snapshot creation did not complete').catch(() => undefined);
    }
  }
}

interface DiskJob {
  input: VmBackupInput;
  deps: VmBackupDeps;
  vm: VmInfo;
  disk: VmDisk;
  snapDisk: VmDisk;
  snapshot: string;
  writer: RestorePointWriter;
  choice: TransportChoice;
  warn(m: string): void;
  /** True once the VM is cancelled or a sibling disk failed. */
  shouldStop(): boolean;
}

async function backupDisk(job: DiskJob): Promise<DiskOutcome> {
  const { input, deps, vm, disk, snapDisk, snapshot } = job;
  const key = String(disk.key);
  const capacity = disk.capacityBytes;
  const prev = input.previous;
  const startedAt = new Date();
  const meter = new DiskMeter({ runId: input.runId, runVmId: input.runVmId, deviceKey: disk.key, bytesTotal: capacity }, deps.progress);
  const reasons = [...job.choice.reasons];

  // Which areas to read.
  const prevChangeId = prev && !prev.suspect ? prev.changeIds[key] : undefined;
  const sameSize = prev ? prev.capacities[key] === capacity : false;
  let areas: Area[];
  let cbtUsed = false;
  let incremental = false;
  if (vm.changeTrackingEnabled) {
    if (prevChangeId && sameSize) {
      try {
        areas = await job.deps.vsphere.changedAreas(vm.moref, snapshot, disk.key, prevChangeId, capacity);
        cbtUsed = true;
        incremental = true;
      } catch (err) {
        job.warn(`disk ${disk.label}: CBT rejected changeId (${(err as Error).message}); reading all allocated areas, deduplicated against the repository`);
        areas = await allocatedOrAll(job);
        cbtUsed = areas.length > 0;
      }
    } else {
      // A disk the last point does not hold (added since, or left out by the job then) is simply read whole.
      if (prev && prev.capacities[key] === undefined) deps.runLog('info', `disk ${disk.label}: not in the last restore point; reading all allocated areas`);
      else if (prev && !sameSize) job.warn(`disk ${disk.label}: capacity changed since the last backup; reading all allocated areas`);
      if (prev?.suspect) job.warn(`disk ${disk.label}: the last restore point was suspect; reading all allocated areas`);
      areas = await allocatedOrAll(job);
      cbtUsed = true;
    }
  } else {
    job.warn(`disk ${disk.label}: Changed Block Tracking is off; reading the whole disk`);
    areas = [{ start: 0, length: capacity }];
  }
  areas = normaliseAreas(areas, capacity);
  const toRead = totalLength(areas);
  meter.bytesSkipped = capacity - toRead;

  // A parent is only used for incrementals; a full re-read (CBT reset, resize) dedups instead.
  const diskWriter = await job.writer.openDisk({
    key,
    capacity,
    mode: incremental ? 'changed' : 'full',
    controller: disk.controller,
    ...(snapDisk.changeId ? { changeId: snapDisk.changeId } : {}),
    transport: job.choice.transport,
  });
  meter.transport = job.choice.transport;
  await deps.diskPhase(disk.key, { phase: 'opening', label: disk.label, capacityBytes: capacity, transport: job.choice.transport, reasons, cbtUsed, readMode: incremental ? 'changed' : 'full', startedAt, bytesSkipped: meter.bytesSkipped });

  let transport = job.choice.transport;
  // SAN or HotAdd failing once the snapshot exists: automatic mode always continues over the network (it is
  // the mode's last resort anyway); a manual choice only when the job allows failover.
  const mayFailOver = () => transport !== 'nbd' && transport !== 'nbdssl' && (input.transportMode === 'automatic' || input.options.failoverToNetwork);
  let source = await openSource(job, transport).catch(async (err: unknown) => {
    if (!mayFailOver()) throw err;
    const net = deps.transporter.networkTransport;
    job.warn(`disk ${disk.label}: ${transportLabel(transport)} failed (${(err as Error).message}); failing over to ${transportLabel(net)}`);
    reasons.push(`${transportLabel(transport)} failed: ${(err as Error).message}; failover to ${transportLabel(net)}`);
    transport = net;
    meter.transport = net;
    return openSource(job, net);
  });
  let sanityChecked = 0;
  let sanityMismatches = 0;
  let stillAttached: DetachError | null = null;
  try {
    await deps.diskPhase(disk.key, { phase: 'reading', transport, reasons });
    meter.setPhase('reading');
    // Requests of the source's own size run ahead of the writer, which takes them a chunk at a time into its
    // slots (one copy, from the segment into the slot the workers hash and compress from).
    const ahead = new ReadAhead(source.reader, areas, readAheadFor(source.reader));
    let sourceMs = 0;
    for (const p of pieces(areas, READ_SIZE)) {
      if (job.shouldStop()) throw new CancelledError();
      const t0 = performance.now();
      const before = sourceMs;
      const waitedBefore = diskWriter.workerWaitMs;
      await diskWriter.writeFrom(p.start, p.length, async (into, at) => {
        const r0 = performance.now();
        try {
          await ahead.readInto(into, at);
        } catch (err) {
          if (!mayFailOver()) throw err;
          // Mid-job failover: the snapshot stays; this disk continues over the network from here (only what is left to read).
          const net = deps.transporter.networkTransport;
          job.warn(`disk ${disk.label}: ${transportLabel(transport)} read failed at ${mib(at)} (${(err as Error).message}); continuing over ${transportLabel(net)}`);
          reasons.push(`${transportLabel(transport)} failed mid-copy: ${(err as Error).message}; failover to ${transportLabel(net)}`);
          ahead.stop();
          // The failed source is closed once, here: until the network reader is open, nothing is left to close
          // (a second close would detach by a device key the disk no longer holds, maybe another disk's by then).
          const failed = source;
          source = CLOSED;
          await failed.close().catch((closeErr: unknown) => {
            // A disk that stays attached keeps the snapshot: going on over the network could not end well.
            if (closeErr instanceof DetachError) throw closeErr;
          });
          source = await openSource(job, net);
          transport = net;
          meter.transport = net;
          diskWriter.switchedTransport(net);
          ahead.restart(source.reader, at);
          await ahead.readInto(into, at);
        } finally {
          sourceMs += performance.now() - r0;
        }
      });
      // Source: reading; processing: waiting for the workers to hash and compress; target: the rest (storing).
      const processing = diskWriter.workerWaitMs - waitedBefore;
      meter.addBusy('source', sourceMs - before);
      meter.addBusy('processing', processing);
      meter.addBusy('target', Math.max(0, performance.now() - t0 - (sourceMs - before) - processing));
      meter.bytesRead += p.length;
      meter.bytesWritten = diskWriter.stats.newStoredBytes;
      meter.emit();
    }

    // CBT sanity sampling: re-read a few areas CBT calls unchanged and compare with the previous point.
    if (incremental && prev && input.options.cbtSanityRate > 0) {
      const unchanged = complement(areas, capacity);
      const count = Math.min(64, Math.ceil((totalLength(unchanged) / SANITY_BLOCK) * input.options.cbtSanityRate));
      if (count > 0) {
        meter.setPhase('verifying CBT');
        const parent = await deps.openParentReader(deps.repo, prev.ref, key);
        for (const s of sampleBlocks(unchanged, SANITY_BLOCK, count, randomInt(1, 2 ** 31))) {
          const live = Buffer.from(await source.reader.read(s.start, s.length));
          const stored = await parent.read(s.start, s.length);
          sanityChecked += 1;
          if (!live.equals(stored)) {
            sanityMismatches += 1;
            job.warn(`disk ${disk.label}: CBT called [${s.start}, +${s.length}) unchanged but it differs from the previous restore point`);
            // Keep this restore point correct: store the live bytes.
            await diskWriter.write(s.start, live);
          }
        }
      }
    }
  } finally {
    for (const note of source.reader.notes ?? []) deps.runLog('warn', `disk ${disk.label}: ${note}`);
    await source.close().catch((err: unknown) => {
      deps.runLog('error', `closing the ${transport} reader of ${disk.label} failed: ${(err as Error).message}`);
      if (err instanceof DetachError) stillAttached = err;
    });
  }
  // The copy is complete, but a disk left attached keeps the snapshot from being removed: this disk fails.
  if (stillAttached) throw stillAttached;
  // The workers' last chunks (all of them on a disk with less data than the pool has slots) are waited for here,
  // as this disk's processing time, not at the VM's commit where no disk would count them.
  const closing = performance.now();
  await diskWriter.close();
  meter.addBusy('processing', performance.now() - closing);
  // The last tick came before the last writes were stored: the figure the row gets is the live view's last one too.
  meter.bytesWritten = diskWriter.stats.newStoredBytes;
  meter.setPhase('done');
  const outcome: DiskOutcome = {
    deviceKey: disk.key,
    label: disk.label,
    capacityBytes: capacity,
    transport,
    reasons,
    cbtUsed,
    readMode: incremental ? 'changed' : 'full',
    bytesRead: meter.bytesRead,
    bytesWritten: diskWriter.stats.newStoredBytes,
    bytesSkipped: meter.bytesSkipped,
    changeId: snapDisk.changeId ?? null,
    sanityChecked,
    sanityMismatches,
    startedAt,
    finishedAt: new Date(),
  };
  await deps.diskPhase(disk.key, { ...outcome, phase: 'done' });
  return outcome;
}

async function allocatedOrAll(job: DiskJob): Promise<Area[]> {
  try {
    return await job.deps.vsphere.changedAreas(job.vm.moref, job.snapshot, job.disk.key, '*', job.disk.capacityBytes);
  } catch (err) {
    job.warn(`disk ${job.disk.label}: cannot list allocated areas (${(err as Error).message}); reading the whole disk`);
    return [{ start: 0, length: job.disk.capacityBytes }];
  }
}

/**
 * The SAN preflight of one LUN, before the snapshot: null when its datastore mounts read-only here, else why
 * not. The short-lived mount is journaled like the copy's, so a crash in between leaves nothing mounted.
 */
async function probeLun(deps: VmBackupDeps, input: VmBackupInput, naa: string, device: string, partition: number): Promise<string | null> {
  const target = { naa, device, partition, fileName: null, preflight: true };
  const jid = await deps.journal.add('lun_mount', target, { runVmId: input.runVmId, vcenterId: input.vcenterId });
  try {
    await deps.devices.probeSan(naa, device, partition, (cleanup) => deps.journal.update(jid, { ...target, cleanup: cleanup as Record<string, unknown> }));
    await deps.journal.resolve(jid);
    return null;
  } catch (err) {
    // Unmounted again unless undoing failed too: then the row stays for the sweep.
    if ((err as { leftMounted?: boolean }).leftMounted) await deps.journal.failed(jid, (err as Error).message).catch(() => undefined);
    else await deps.journal.resolve(jid);
    return (err as Error).message;
  }
}

/** Removes the snapshot, trying again a few times: null once removed, else the last refusal. */
const REMOVING_WHAT = 'vCenter is removing the snapshot, merging what the VM wrote during the backup into its disks';

/**
 * A vCenter task's progress shown in its phase's detail ("… — task 40 %"), at most every 10 %, written in
 * order; `settled` resolves once the last one is written, so a later phase is never overwritten by it.
 */
function taskProgress(deps: VmBackupDeps, phase: string, what: string): { onProgress: (percent: number) => void; settled: () => Promise<void> } {
  let shown = 0;
  let writes: Promise<void> = Promise.resolve();
  return {
    onProgress: (percent) => {
      if (percent >= 100 || percent < shown + 10) return;
      shown = percent;
      writes = writes.then(() => deps.phase(phase, `${what} — task ${Math.round(percent)} %`)).catch(() => undefined);
    },
    settled: () => writes,
  };
}

async function removeSnapshotPatiently(deps: VmBackupDeps, snapshot: string, name: string): Promise<string | null> {
  const { attempts, delayMs } = deps.snapshotRemoval ?? { attempts: 3, delayMs: 5000 };
  for (let attempt = 1; ; attempt++) {
    try {
      const progress = taskProgress(deps, 'removing snapshot', REMOVING_WHAT);
      await deps.vsphere.removeSnapshot(snapshot, progress.onProgress).finally(progress.settled);
      return null;
    } catch (err) {
      const message = (err as Error).message;
      if (attempt >= attempts) return message;
      const wait = delayMs * attempt;
      deps.runLog('warn', `removing snapshot ${name} failed (${message}); trying again in ${Math.round(wait / 1000)} s (attempt ${attempt + 1} of ${attempts})`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** What stands in for a source between closing a failed one and opening its replacement: nothing to read or close. */
const CLOSED: { reader: SourceReader; close(): Promise<void> } = {
  reader: {
    capacity: 0,
    read: () => Promise.reject(new Error('the source is closed')),
    close: () => Promise.resolve(),
  },
  close: () => Promise.resolve(),
};

/** Opens the snapshot's disk through a transport, journaled so a crash leaves nothing attached or mounted. */
async function openSource(job: DiskJob, transport: string): Promise<{ reader: SourceReader; close(): Promise<void> }> {
  const { deps, input, snapDisk } = job;
  const capacity = job.disk.capacityBytes;
  if (transport === 'nbdssl' || transport === 'nbd') {
    const reader = await deps.vsphere.openNetworkReader(snapDisk, job.snapshot, transport, job.vm.host);
    if (reader.describe) deps.runLog('info', `disk ${job.disk.label}: reading the ${reader.describe} over ${transportLabel(transport)}`);
    return { reader, close: () => reader.close() };
  }
  if (transport === 'san') {
    const ds = await deps.vsphere.datastore(snapDisk.datastore);
    let device: string | null = null;
    let naa: string | null = null;
    for (const id of ds.naaIds) {
      device = await deps.devices.findLun(id);
      if (device) {
        naa = id;
        break;
      }
    }
    if (!device || !naa) throw new Error(`LUN of datastore ${snapDisk.datastore} is no longer visible`);
    // The partition vSphere reports for this LUN's extent (0 when it does not say).
    const partition = ds.extents.find((e) => e.naa === naa)?.partition ?? 0;
    const target = { naa, device, partition, fileName: snapDisk.fileName };
    const jid = await deps.journal.add('lun_mount', target, { runVmId: input.runVmId, vcenterId: input.vcenterId });
    try {
      const reader = await deps.devices.openSan(naa, device, partition, snapDisk.fileName, capacity, (cleanup) => deps.journal.update(jid, { ...target, cleanup: cleanup as Record<string, unknown> }));
      await deps.journal.update(jid, { ...target, cleanup: reader.cleanup as Record<string, unknown> });
      deps.runLog('info', `disk ${job.disk.label}: reading ${reader.volume}`);
      return {
        reader,
        close: async () => {
          await reader.close();
          await deps.journal.resolve(jid);
        },
      };
    } catch (err) {
      await deps.journal.resolve(jid).catch(() => undefined);
      throw err;
    }
  }
  // hotadd
  const proxy = deps.transporter.proxyVm;
  if (!proxy) throw new Error('no proxy VM for HotAdd');
  const jid = await deps.journal.add('disk_attach', { proxyVm: proxy.moref, fileName: snapDisk.fileName, deviceKey: null }, { runVmId: input.runVmId, vcenterId: input.vcenterId });
  let attached: { deviceKey: number; uuid: string } | null = null;
  try {
    attached = await deps.vsphere.attachDisk(proxy.moref, snapDisk.fileName);
    await deps.journal.update(jid, { proxyVm: proxy.moref, fileName: snapDisk.fileName, deviceKey: attached.deviceKey, uuid: attached.uuid });
    deps.runLog('info', `disk ${job.disk.label}: attached to ${proxy.name} as device ${attached.deviceKey}`);
    const reader = await deps.devices.openHotAdded(attached.uuid, capacity);
    const att = attached;
    return {
      reader,
      close: async () => {
        await reader.close();
        try {
          await deps.vsphere.detachDisk(proxy.moref, att.deviceKey, snapDisk.fileName);
        } catch (err) {
          await deps.journal.failed(jid, (err as Error).message).catch(() => undefined);
          throw new DetachError(`the disk could not be detached from ${proxy.name} (${(err as Error).message}); it stays attached, with the snapshot, until the orphan sweep detaches it`);
        }
        await deps.devices.waitGone(att.uuid);
        await deps.journal.resolve(jid);
        deps.runLog('info', `disk ${job.disk.label}: detached from ${proxy.name}`);
      },
    };
  } catch (err) {
    if (attached) {
      await deps.vsphere.detachDisk(proxy.moref, attached.deviceKey, snapDisk.fileName).then(
        () => deps.journal.resolve(jid),
        (e: unknown) => deps.journal.failed(jid, (e as Error).message),
      );
    } else {
      // The attach may have happened on the server even though the call failed:
      // leave the row for the sweep, which looks the disk up by its file name.
      await deps.journal.failed(jid, (err as Error).message).catch(() => undefined);
    }
    throw err;
  }
}
