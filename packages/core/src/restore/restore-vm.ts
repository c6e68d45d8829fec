/**
 * Full VM restore to a new VM (or, confirmed, in place of an existing one),
 * each disk written through the best write transport and verified bit-exact.
 *
 * Order of work: preflight (name, placement, room, transport per disk — all
 * before anything exists) → journal row → CreateVM with the restore marker →
 * each disk: write, read back, compare SHA-256 → (replace: swap) → resolve the
 * row → power on if asked (a failure to power on is a warning; the restored VM
 * stays).
 *
 * A new VM whose disks all go over the network (nbd/nbdssl) is created through
 * an import lease instead (RestorePort.importVm, vSphere's ImportVApp, same
 * spec and marker): each disk is uploaded as a thin disk (only its data), the
 * lease is completed, then every disk is read back; a failure aborts the lease
 * before the VM is destroyed. A replace, a VM with a HotAdd disk, or a port
 * that cannot import writes network disks in full, as before.
 *
 * Safety:
 * - an existing VM is never touched unless `replace.confirm` names it exactly;
 *   even then it is only powered off and renamed (kept), and only after every
 *   disk of the restored VM was verified;
 * - the new VM carries a restore marker and its journal row is written BEFORE
 *   it is created; on any failure or cancel (or a crash, through the sweep)
 *   only a VM with that marker can be destroyed, and an interrupted swap is
 *   rolled back (see undo.ts);
 * - the restore succeeds only when each written disk's SHA-256, read back,
 *   equals the restore point's.
 */
import { transportLabel, type TransportMode } from '@vaultline/contracts';
import type { Logger } from '@vaultline/logger';
import type { Manifest, Repository, RestorePointRef } from '@vaultline/repository';
import type { CleanupJournal } from '../backup/journal.ts';
import type { TransporterLimits } from '../backup/limits.ts';
import type { DiskUpdate, ProgressSink } from '../backup/progress.ts';
import type { TransportChoice, VmDisk } from '../backup/ports.ts';
import { chooseInTurn, type DiskFacts, type TransporterFacts } from '../backup/transport-select.ts';
import { CancelledError, RestoreError, TransportUnavailable } from '../errors.ts';
import { noteExcludedDisks } from '../backup/exclusions.ts';
import { uploadImported, verifyImported, writeDisk, type DiskWriteContext, type DiskWriteJob, type ImportedDisk, type WrittenDisk } from './disk-write.ts';
import { resolvePlacement, type PlacementRequest } from './placement.ts';
import type { HardwareDisk, RestoreDevices, RestorePort, RestoreVmInfo, VmHardware, VmImport } from './ports.ts';
import { undoRestore, type RestoreJournalTarget } from './undo.ts';
import { chooseWriteTransport } from './write-transport.ts';

export interface RestoreVmInput {
  repo: Repository;
  ref: RestorePointRef;
  /** Name of the restored VM (must not exist, unless `replace` confirms that VM). */
  name: string;
  /** Unique id of this restore, stored in the new VM as its marker. */
  restoreId: string;
  /** Where to put it; defaults are the source VM's folder, pool, host and first datastore. */
  placement?: PlacementRequest;
  powerOn?: boolean;
  vcenterId?: string;
  /** How to write the disks (default automatic: HotAdd when possible, else the network). */
  transport?: TransportMode;
  /** A HotAdd asked for but failing on a disk goes over the network instead (default true). */
  failoverToNetwork?: boolean;
  /** Replace the existing VM called `name`; `confirm` must be its exact name. */
  replace?: { confirm: string };
  /** A drill: restore, verify, then delete the VM again. */
  drill?: boolean;
  runId?: string;
  runVmId?: string;
}

export interface RestoreVmDeps {
  vsphere: RestorePort;
  journal: CleanupJournal;
  log: Logger;
  /** This Transporter's block devices (HotAdd); without them, disks go over the network. */
  devices?: RestoreDevices;
  /** This Transporter's VM in that vCenter, for HotAdd. */
  proxy?: Pick<TransporterFacts, 'proxyVm' | 'proxyVmUuid'>;
  /** Run-log lines for the operator. */
  runLog?(level: 'info' | 'warn' | 'error', message: string): void;
  phase?(phase: string): Promise<void>;
  progress?: ProgressSink;
  diskPhase?(deviceKey: number, u: DiskUpdate): Promise<void>;
  isCancelled?(): boolean;
  limits?: TransporterLimits;
  /** Clock for the replaced VM's name (tests). */
  now?(): Date;
}

export interface RestoreVmResult {
  vmMoref: string;
  name: string;
  disks: WrittenDisk[];
  /** Warnings (e.g. power on failed); the restore itself succeeded. */
  warnings: string[];
  /** When a VM was replaced: its moref and new name. */
  replaced?: { moref: string; renamedTo: string };
}

const SCSI = new Set(['pvscsi', 'lsilogic', 'lsisas', 'buslogic']);

/** "<name>-<suffix>", the name shortened so the whole stays within vSphere's 80 characters. */
function suffixed(name: string, suffix: string): string {
  return `${name.slice(0, 80 - suffix.length - 1)}-${suffix}`;
}

function utcStamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

/** The new VM's disk for each disk of the hardware description: same controller kind, bus and unit. */
function matchDisks(hw: VmHardware, created: HardwareDisk[]): Map<number, HardwareDisk> {
  const out = new Map<number, HardwareDisk>();
  const left = [...created];
  hw.disks.forEach((src, i) => {
    const kind = hw.controllers.find((c) => c.key === src.controllerKey)?.kind ?? src.controller;
    const bus = hw.controllers.find((c) => c.key === src.controllerKey)?.busNumber ?? src.busNumber;
    let j = left.findIndex((d) => d.controller === kind && d.busNumber === bus && d.unitNumber === src.unitNumber && d.capacityBytes === src.capacityBytes);
    if (j < 0) j = left.findIndex((d) => d === created[i]);
    if (j >= 0) out.set(src.key, left.splice(j, 1)[0]!);
  });
  return out;
}

export async function restoreVm(input: RestoreVmInput, deps: RestoreVmDeps): Promise<RestoreVmResult> {
  const { vsphere, journal } = deps;
  const runLog = deps.runLog ?? ((level, message) => deps.log[level](message));
  const isCancelled = deps.isCancelled ?? (() => false);
  const checkCancel = () => {
    if (isCancelled()) throw new CancelledError();
  };
  const phase = async (p: string) => deps.phase?.(p);
  const warnings: string[] = [];

  // ---- preflight: nothing exists yet
  await phase('preflight');
  const manifest: Manifest = await input.repo.readManifest(input.ref);
  const meta = (manifest.vm ?? {}) as { moref?: string; name?: string; hardware?: VmHardware | null };
  if (!meta.hardware) throw new RestoreError(`restore point ${manifest.id} holds no hardware description; restore its disks instead`);
  const hw = meta.hardware;
  for (const d of hw.disks) {
    if (!manifest.disks.some((m) => m.key === String(d.key))) throw new RestoreError(`restore point ${manifest.id} has no data for disk ${d.label ?? d.key}`);
  }
  noteExcludedDisks(manifest, runLog);

  const inv = await vsphere.inventory();
  const sameName = inv.vms.filter((v) => v.name === input.name);
  let original: RestoreVmInfo | undefined;
  if (!input.replace) {
    if (sameName.length) {
      throw new RestoreError(
        `a VM named ${input.name} already exists; choose another name, or replace it by sending replace: { confirm: "${input.name}" } (the original is then kept, powered off and renamed)`,
      );
    }
  } else {
    if (input.replace.confirm !== input.name) throw new RestoreError(`replace.confirm is "${input.replace.confirm}", not the exact name of the VM to replace ("${input.name}"); nothing was done`);
    if (input.drill) throw new RestoreError('a drill never replaces a VM; nothing was done');
    if (sameName.length === 0) throw new RestoreError(`there is no VM named ${input.name} to replace; nothing was done`);
    if (sameName.length > 1) throw new RestoreError(`${sameName.length} VMs are named ${input.name} (${sameName.map((v) => v.moref).join(', ')}); rename all but one first; nothing was done`);
    original = sameName[0]!;
    if (deps.proxy?.proxyVm?.moref === original.moref) throw new RestoreError(`${input.name} is this Transporter's own VM; it cannot be replaced by a restore`);
    if (original.template) throw new RestoreError(`${input.name} is a template; templates are not replaced by a restore`);
  }

  const source = meta.moref ? inv.vms.find((v) => v.moref === meta.moref) : undefined;
  const placement = await resolvePlacement(vsphere, input.placement ?? {}, hw, source, inv);

  // Room on the target datastore for the disks.
  const ds = inv.datastores.find((d) => d.name === placement.datastore)!;
  const needed = manifest.disks.reduce((n, d) => n + d.capacity, 0);
  if (ds.freeBytes >= 0 && ds.freeBytes < needed) {
    throw new RestoreError(`datastore ${ds.name} has ${Math.floor(ds.freeBytes / 2 ** 20)} MiB free; the disks need ${Math.ceil(needed / 2 ** 20)} MiB. Nothing was created.`);
  }

  // Write transport per disk, recorded with reasons.
  const blockDevices = deps.devices ? await deps.devices.canUseBlockDevices() : false;
  const network = vsphere.networkTransport;
  const facts: TransporterFacts = {
    blockDevices,
    proxyVm: deps.proxy?.proxyVm ?? null,
    ...(deps.proxy?.proxyVmUuid ? { proxyVmUuid: deps.proxy.proxyVmUuid } : {}),
    ...(vsphere.standaloneHost !== undefined ? { standaloneHost: vsphere.standaloneHost } : {}),
    datastoreHosts: new Map([[ds.name, ds.mountedOn]]),
    networkTransport: network,
  };
  const diskFacts: DiskFacts[] = hw.disks.map((d) => {
    const kind = hw.controllers.find((c) => c.key === d.controllerKey)?.kind ?? d.controller;
    const disk: VmDisk = {
      key: d.key,
      label: d.label ?? `disk ${d.key}`,
      capacityBytes: d.capacityBytes,
      fileName: '',
      datastore: ds.name,
      controller: SCSI.has(kind) || ['ide', 'sata', 'nvme'].includes(kind) ? (kind as VmDisk['controller']) : 'unknown',
    };
    return { disk, datastoreType: ds.type, naaIds: [], visibleLun: null };
  });
  // The new disks are attached together: HotAdd units promised to earlier disks are not free for later ones.
  const choices = new Map<number, TransportChoice>();
  for (const [i, c] of chooseInTurn(diskFacts, facts, (f, now) => chooseWriteTransport(input.transport ?? 'automatic', f, now, { failoverToNetwork: input.failoverToNetwork ?? true })).entries()) {
    const { disk } = diskFacts[i]!;
    if (c instanceof TransportUnavailable) throw new RestoreError(`disk ${disk.label}: ${c.message}. Nothing was created.`);
    choices.set(disk.key, c);
    runLog('info', `disk ${disk.label}: ${transportLabel(c.transport)} — ${c.reasons.join('; ')}`);
  }
  checkCancel();
  // A new VM whose disks all go over the network is created through an import lease, its disks uploaded thin.
  const importing = !original && vsphere.importVm !== undefined && hw.disks.every((d) => ['nbd', 'nbdssl'].includes(choices.get(d.key)!.transport));

  // ---- create the VM (journal first)
  const createAs = original ? suffixed(input.name, `restoring-${input.restoreId.replace(/[^A-Za-z0-9]/g, '').slice(0, 8)}`) : input.name;
  if (original && inv.vms.some((v) => v.name === createAs)) throw new RestoreError(`a VM named ${createAs} (this restore's temporary name) already exists; nothing was done`);
  const target: RestoreJournalTarget = { restoreId: input.restoreId, name: createAs, vm: null };
  const jctx = { ...(input.runVmId ? { runVmId: input.runVmId } : {}), ...(input.vcenterId ? { vcenterId: input.vcenterId } : {}) };
  const jid = await journal.add('restore_vm', { ...target }, jctx);
  let vmMoref: string | null = null;
  let resolved = false;
  let lease: VmImport | undefined;
  let leaseOpen = false;
  try {
    await phase('creating VM');
    const newVm = {
      name: createAs,
      restoreId: input.restoreId,
      folder: placement.folder,
      resourcePool: placement.resourcePool,
      host: placement.host,
      datastore: placement.datastore,
      networkMap: placement.networkMap,
    };
    if (importing) {
      runLog('info', `creating VM ${createAs} through an import lease (its disks are uploaded over ${transportLabel(network)} as thin disks): ${placement.summary}`);
      lease = await vsphere.importVm!(hw, newVm);
      leaseOpen = true;
      vmMoref = lease.vmMoref;
    } else {
      runLog('info', `creating VM ${createAs}: ${placement.summary}`);
      vmMoref = await vsphere.createVm(hw, newVm);
    }
    target.vm = vmMoref;
    await journal.update(jid, { ...target });
    runLog('info', `created VM ${createAs}`);
    checkCancel();

    // ---- disks
    await phase('writing');
    const created = matchDisks(hw, (await vsphere.vm(vmMoref)).disks);
    const ctx: DiskWriteContext = {
      vsphere,
      repo: input.repo,
      ref: input.ref,
      journal,
      devices: deps.devices,
      proxyVm: deps.proxy?.proxyVm ?? null,
      network,
      failoverToNetwork: input.failoverToNetwork ?? true,
      runId: input.runId,
      runVmId: input.runVmId,
      vcenterId: input.vcenterId,
      datacenterOf: (name) => {
        const dc = inv.datastores.find((d) => d.name === name)?.datacenter;
        if (!dc) throw new RestoreError(`datastore ${name} of the new disk is not in the inventory`);
        return dc;
      },
      runLog,
      progress: deps.progress ?? { disk: () => undefined },
      diskPhase: deps.diskPhase ?? (async () => undefined),
      isCancelled,
    };
    const disks: WrittenDisk[] = [];
    /** Runs `write` on each disk of the new VM, in the hardware's order, within the transport's per-host limit. */
    const eachDisk = async (write: (job: DiskWriteJob, disk: NonNullable<ReturnType<typeof created.get>>, index: number) => Promise<void>) => {
      for (const [index, src] of hw.disks.entries()) {
        checkCancel();
        const disk = created.get(src.key);
        if (!disk) throw new RestoreError(`the new VM has no disk for ${src.label ?? src.key}`);
        const md = manifest.disks.find((m) => m.key === String(src.key))!;
        const choice = choices.get(src.key)!;
        const release = deps.limits ? await deps.limits.disk(choice.transport, placement.host) : () => undefined;
        try {
          await write({ sourceKey: String(src.key), label: src.label ?? `disk ${src.key}`, capacity: md.capacity, fileName: disk.fileName, choice, recordedSha256: md.sha256 }, disk, index);
        } finally {
          release();
        }
      }
    };
    if (lease) {
      const uploaded: ImportedDisk[] = [];
      const into = lease;
      await eachDisk(async (job, disk, index) => {
        uploaded.push(await uploadImported(ctx, job, into, disk, index));
      });
      checkCancel();
      await lease.complete();
      leaseOpen = false;
      runLog('info', `import lease of ${createAs} completed: ${uploaded.length} disk(s) uploaded`);
      for (const u of uploaded) {
        checkCancel();
        disks.push(await verifyImported(ctx, u));
      }
    } else {
      await eachDisk(async (job) => {
        disks.push(await writeDisk(ctx, job));
      });
    }
    checkCancel();

    let replaced: RestoreVmResult['replaced'];
    let finalName = createAs;
    if (original) {
      // ---- swap: only now is the original touched
      await phase('swapping');
      replaced = await swap(vsphere, { original, restored: vmMoref, name: input.name, now: deps.now?.() ?? new Date(), target, jid, journal, runLog });
      finalName = input.name;
    }
    if (input.drill) {
      // A drill proves the restore point restores; the throwaway VM goes again (journaled until it is gone).
      await phase('deleting drill VM');
      await vsphere.destroyRestored(vmMoref, input.restoreId);
      await journal.resolve(jid);
      resolved = true;
      runLog('info', `drill passed: ${finalName} restored, verified and deleted`);
      return { vmMoref, name: finalName, disks, warnings };
    }
    await journal.resolve(jid);
    resolved = true;
    if (input.powerOn) {
      await phase('powering on');
      try {
        await vsphere.powerOn(vmMoref);
        runLog('info', `powered on ${finalName}`);
      } catch (err) {
        const m = `the restored VM ${finalName} is in place and verified, but powering it on failed: ${(err as Error).message}`;
        warnings.push(m);
        runLog('warn', m);
      }
    }
    return { vmMoref, name: finalName, disks, warnings, ...(replaced ? { replaced } : {}) };
  } catch (err) {
    if (lease && leaseOpen) {
      // The VM cannot be destroyed while its lease holds it: end the lease first.
      await lease.abort().then(
        () => runLog('info', `aborted the import lease of ${createAs}`),
        (e: unknown) => runLog('warn', `aborting the import lease of ${createAs} failed: ${(e as Error).message}`),
      );
    }
    if (!resolved) {
      try {
        const undo = await undoRestore(vsphere, target);
        for (const m of undo.done) runLog('info', m);
        if (undo.completed) await journal.resolve(jid);
        else if (!vmMoref && !undo.removed) await journal.failed(jid, 'the VM may have been created before the failure');
        else await journal.resolve(jid);
      } catch (e) {
        await journal.failed(jid, (e as Error).message).catch(() => undefined);
        runLog('error', `cleaning up after the failed restore failed: ${(e as Error).message}; the orphan sweep will retry`);
      }
      if (original && !target.swap) runLog('info', `the original VM ${input.name} was not touched`);
    }
    throw err;
  }
}

/**
 * The replace swap, journaled step by step so an interrupted one is rolled
 * back (undo.ts): power the original off, rename it to
 * <name>-replaced-<UTC yyyymmdd-hhmm>, rename the restored VM to <name>.
 */
async function swap(
  vsphere: RestorePort,
  s: {
    original: RestoreVmInfo;
    restored: string;
    name: string;
    now: Date;
    target: RestoreJournalTarget;
    jid: string;
    journal: CleanupJournal;
    runLog(level: 'info' | 'warn' | 'error', message: string): void;
  },
): Promise<{ moref: string; renamedTo: string }> {
  const { original } = s;
  const current = await vsphere.vm(original.moref);
  if (current.name !== s.name) throw new RestoreError(`the VM to replace, ${s.name}, has been renamed to ${current.name} since; nothing was swapped`);
  const base = suffixed(s.name, `replaced-${utcStamp(s.now)}`);
  const taken = new Set((await vsphere.vms()).map((v) => v.name));
  let renamedTo = base;
  for (let i = 2; taken.has(renamedTo); i++) renamedTo = suffixed(s.name, `replaced-${utcStamp(s.now)}-${i}`);
  const wasPoweredOn = current.powerState === 'poweredOn';
  const record = async (step: NonNullable<RestoreJournalTarget['swap']>['step']) => {
    s.target.swap = { original: original.moref, originalName: s.name, renamedTo, wasPoweredOn, step };
    await s.journal.update(s.jid, { ...s.target });
  };
  await record('powering off');
  if (wasPoweredOn) {
    await vsphere.powerOff(original.moref);
    s.runLog('info', `powered off the original VM ${s.name}`);
  }
  await record('renaming original');
  await vsphere.rename(original.moref, renamedTo);
  s.runLog('info', `renamed the original VM ${s.name} to ${renamedTo}; it is kept, with its disks untouched`);
  await record('renaming restored');
  await vsphere.rename(s.restored, s.name);
  s.runLog('info', `renamed the restored VM ${s.target.name} (${s.restored}) to ${s.name}`);
  return { moref: original.moref, renamedTo };
}
