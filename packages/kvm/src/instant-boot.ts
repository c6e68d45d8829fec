/**
 * Instant boot: a restore point's disks run in QEMU straight from the
 * repository. This process serves each disk over NBD (flr's NbdServer on a
 * DiskReader, under a shared repository lock so garbage collection waits);
 * QEMU runs on a qcow2 overlay per disk whose backing file is that NBD export,
 * so the guest starts in seconds whatever the disk size, and its writes land
 * in the overlay, never in the repository. `mirror` then copies every disk to
 * local storage with QMP drive-mirror while the guest runs; once the mirror
 * jobs complete QEMU runs on the local copies and no longer reads NBD, so the
 * server, the lock and the overlays go.
 *
 * Nothing is left behind after a kill -9: before anything is created a
 * journal (journal.json in the work folder, replaced atomically) names what
 * will exist: the overlays, the sockets, the mirror targets and whether they
 * are complete, and QEMU by pid and start time. `sweepInstantBoots` undoes
 * what a dead controller left: it kills its QEMU (only that very process),
 * removes overlays, sockets and partial mirror targets, and keeps mirror
 * targets that were complete (handed over).
 */
import { execFile } from 'node:child_process';
import { open, mkdir, readFile, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { diskExport, NbdServer } from '@vaultline/flr';
import { DiskReader, type Lock, type Repository, type RestorePointRef } from '@vaultline/repository';
import { positiveInt, recordedFirmware } from './hardware.ts';
import { isSameProcess, processIdentity, startQemu, type Accel, type DiskInterface, type Firmware, type ProcessIdentity, type QemuHandle, type QemuOptions } from './qemu.ts';

const exec = promisify(execFile);

/** The hardware an instant boot gives the guest, from what was recorded at backup. */
export interface InstantBootHardware {
  memoryMiB: number;
  numCpu: number;
  firmware: Firmware;
}

/**
 * The instant-boot hardware from what a restore point recorded (the VM's
 * hardware description as the backup read it from the snapshot: numCpu,
 * memoryMiB, firmware 'bios'|'efi'). What is missing or odd falls back to
 * `defaults`, so an older point without a description still boots. Unlike
 * readRecordedHardware (a restore to KVM needs all of it), nothing here is
 * required; the field rules are the same.
 */
export function instantBootHardware(recorded: unknown, defaults: InstantBootHardware = { memoryMiB: 1024, numCpu: 1, firmware: 'bios' }): InstantBootHardware {
  const hw = (recorded ?? {}) as { numCpu?: unknown; memoryMiB?: unknown; firmware?: unknown };
  return {
    memoryMiB: positiveInt(hw.memoryMiB) ?? defaults.memoryMiB,
    numCpu: positiveInt(hw.numCpu) ?? defaults.numCpu,
    firmware: recordedFirmware(hw.firmware) ?? defaults.firmware,
  };
}

export interface InstantBootDisk {
  /** The disk's key in the restore point. */
  key: string;
  /**
   * How the guest sees it. SATA (AHCI) by default: a VMware guest's initramfs
   * has an AHCI driver far more often than a virtio one.
   */
  interface?: DiskInterface;
}

export interface InstantBootOptions {
  /** This instant boot's folder (created; must not hold a journal). Its parent is what sweepInstantBoots looks at. */
  workDir: string;
  repository: Repository;
  ref: RestorePointRef;
  /** In boot order; the first one is the boot disk. */
  disks: InstantBootDisk[];
  hardware: InstantBootHardware;
  accel?: Accel | 'auto';
  nic?: QemuOptions['nic'];
  /** Shown in `ps` as QEMU's -name. */
  name?: string;
}

export type MirrorFormat = 'qcow2' | 'raw';

export type InstantBootState = 'starting' | 'running' | 'mirroring' | 'migrated' | 'discarding';

/** What journal.json holds. */
export interface InstantBootJournal {
  version: 1;
  state: InstantBootState;
  createdAt: string;
  ref: RestorePointRef;
  /** The process that runs this instant boot; while it lives, a sweep leaves it alone. */
  controller: ProcessIdentity;
  nbdSocket: string;
  qmpSocket: string;
  serialLog: string;
  overlays: Array<{ diskKey: string; path: string; driveId: string }>;
  /** QEMU once started (null before: then its command line, which names qmpSocket, finds it). */
  qemu: ProcessIdentity | null;
  mirror: { format: MirrorFormat; targets: Array<{ diskKey: string; path: string; complete: boolean }> } | null;
}

export const JOURNAL_FILE = 'journal.json';

/** Writes `value` as JSON to `file` atomically (temporary file, fsync, rename). */
async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** A file name for a disk key (VMware keys look like "2000" or "scsi0:0"). */
const fileKey = (key: string) => key.replace(/[^A-Za-z0-9._-]/g, '_');

export interface MirrorResult {
  targets: Array<{ diskKey: string; path: string }>;
  durationMs: number;
}

export class InstantBoot {
  private discarded = false;

  private constructor(
    readonly workDir: string,
    readonly qemu: QemuHandle,
    private journal: InstantBootJournal,
    private server: NbdServer | null,
    private lock: Lock | null,
    private readers: DiskReader[],
  ) {}

  /** The journal as last written. */
  get state(): InstantBootJournal {
    return structuredClone(this.journal);
  }

  private async save(): Promise<void> {
    await writeJsonAtomic(path.join(this.workDir, JOURNAL_FILE), this.journal);
  }

  /** Serves the point's disks over NBD, makes the overlays and starts QEMU on them. */
  static async start(opts: InstantBootOptions): Promise<InstantBoot> {
    if (opts.disks.length === 0) throw new Error('an instant boot needs at least one disk');
    const workDir = path.resolve(opts.workDir);
    await mkdir(workDir, { recursive: true });
    const journalFile = path.join(workDir, JOURNAL_FILE);
    if (await exists(journalFile)) throw new Error(`${workDir} already holds an instant boot (${JOURNAL_FILE}); discard or sweep it first`);
    const journal: InstantBootJournal = {
      version: 1,
      state: 'starting',
      createdAt: new Date().toISOString(),
      ref: opts.ref,
      controller: (await processIdentity(process.pid))!,
      nbdSocket: path.join(workDir, 'nbd.sock'),
      qmpSocket: path.join(workDir, 'qmp.sock'),
      serialLog: path.join(workDir, 'serial.log'),
      overlays: opts.disks.map((d, i) => ({ diskKey: d.key, path: path.join(workDir, `disk${i}-${fileKey(d.key)}.qcow2`), driveId: `disk${i}` })),
      qemu: null,
      mirror: null,
    };
    await writeJsonAtomic(journalFile, journal);

    let server: NbdServer | null = null;
    let lock: Lock | null = null;
    const readers: DiskReader[] = [];
    let qemu: QemuHandle | null = null;
    try {
      // A shared lock while QEMU may read: garbage collection (exclusive) waits, so the chunks stay.
      lock = await opts.repository.locks.acquire('shared', `instant boot of ${opts.ref.vmId}/${opts.ref.id}`);
      const exports = [];
      for (const [i, d] of opts.disks.entries()) {
        const reader = await DiskReader.open(opts.repository, opts.ref, d.key, { cacheChunks: 128, readAhead: 8 });
        readers.push(reader);
        exports.push(diskExport(`disk${i}`, reader, `disk ${d.key} of restore point ${opts.ref.id}`));
      }
      server = new NbdServer(exports);
      await server.listen(journal.nbdSocket);
      // qemu-img runs asynchronously: it reads the export's size from the server in this very process.
      for (const [i, o] of journal.overlays.entries()) {
        await exec('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', `nbd+unix:///disk${i}?socket=${journal.nbdSocket}`, o.path]);
      }
      qemu = await startQemu({
        memoryMiB: opts.hardware.memoryMiB,
        cpus: opts.hardware.numCpu,
        firmware: opts.hardware.firmware,
        drives: journal.overlays.map((o, i) => ({ file: o.path, format: 'qcow2', interface: opts.disks[i]!.interface ?? 'sata', id: o.driveId })),
        serialLog: journal.serialLog,
        qmpSocket: journal.qmpSocket,
        outputLog: path.join(workDir, 'qemu.log'),
        accel: opts.accel ?? 'auto',
        ...(opts.nic ? { nic: opts.nic } : {}),
        name: opts.name ?? `vaultline-instant-boot-${opts.ref.id}`,
      });
      journal.qemu = await processIdentity(qemu.pid);
      journal.state = 'running';
      await writeJsonAtomic(journalFile, journal);
      return new InstantBoot(workDir, qemu, journal, server, lock, readers);
    } catch (err) {
      // Undo in the same way a sweep would, then say what failed.
      if (qemu) await qemu.stop(2000).catch(() => undefined);
      await server?.close().catch(() => undefined);
      for (const r of readers) r.close();
      await lock?.release().catch(() => undefined);
      await cleanUp(workDir, journal, { keepComplete: false });
      throw err;
    }
  }

  /**
   * Copies every disk to `targetDir` (`<n>-<key>.qcow2` or `.raw`) while the
   * guest runs, then switches QEMU over to the copies: drive-mirror (sync
   * full, through the overlay chain, so each copy stands alone), wait for
   * BLOCK_JOB_READY, block-job-complete, wait for BLOCK_JOB_COMPLETED. The NBD
   * server, the repository lock and the overlays go afterwards.
   * `bytesPerSecond` limits the copy (drive-mirror's speed), to spare the repository.
   */
  async mirror(targetDir: string, format: MirrorFormat, opts: { timeoutMs?: number; bytesPerSecond?: number } = {}): Promise<MirrorResult> {
    if (this.journal.state !== 'running') throw new Error(`cannot mirror an instant boot that is ${this.journal.state}`);
    const t0 = Date.now();
    const timeoutMs = opts.timeoutMs ?? 3_600_000;
    const dir = path.resolve(targetDir);
    await mkdir(dir, { recursive: true });
    const targets = this.journal.overlays.map((o, i) => ({ diskKey: o.diskKey, path: path.join(dir, `${i}-${fileKey(o.diskKey)}.${format}`), complete: false }));
    for (const t of targets) if (await exists(t.path)) throw new Error(`mirror target ${t.path} exists already; refusing to overwrite it`);
    this.journal.mirror = { format, targets };
    this.journal.state = 'mirroring';
    await this.save();

    const qmp = this.qemu.qmp;
    const since = qmp.mark();
    const jobOf = (driveId: string) => `mirror-${driveId}`;
    // A job that fails reports BLOCK_JOB_ERROR and ends with BLOCK_JOB_COMPLETED carrying an error;
    // one cancelled ends with BLOCK_JOB_CANCELLED.
    const waitJob = async (job: string, wanted: 'BLOCK_JOB_READY' | 'BLOCK_JOB_COMPLETED') => {
      const hit = await qmp.waitForEvent([wanted, 'BLOCK_JOB_COMPLETED', 'BLOCK_JOB_ERROR', 'BLOCK_JOB_CANCELLED'], { since, timeoutMs, match: (e) => e.data.device === job });
      if (hit.event !== wanted || typeof hit.data.error === 'string') {
        throw new Error(`mirror job ${job} failed (${hit.event}): ${String(hit.data.error ?? hit.data.operation ?? 'no reason given')}`);
      }
      return hit;
    };
    try {
      for (const [i, o] of this.journal.overlays.entries()) {
        await qmp.execute('drive-mirror', { 'job-id': jobOf(o.driveId), device: o.driveId, target: targets[i]!.path, format, sync: 'full', mode: 'absolute-paths', ...(opts.bytesPerSecond ? { speed: opts.bytesPerSecond } : {}) });
      }
      for (const o of this.journal.overlays) await waitJob(jobOf(o.driveId), 'BLOCK_JOB_READY');
      // Completing a ready job switches the drive to its target; writes made meanwhile are mirrored up to the switch.
      for (const o of this.journal.overlays) await qmp.execute('block-job-complete', { device: jobOf(o.driveId) });
      for (const o of this.journal.overlays) await waitJob(jobOf(o.driveId), 'BLOCK_JOB_COMPLETED');
      const blocks = await qmp.execute<Array<{ device: string; inserted?: { file: string; backing_file?: string } }>>('query-block');
      for (const [i, o] of this.journal.overlays.entries()) {
        const b = blocks.find((x) => x.device === o.driveId);
        if (b?.inserted?.file !== targets[i]!.path || b.inserted.backing_file) {
          throw new Error(`after the mirror, drive ${o.driveId} runs on ${b?.inserted?.file ?? 'nothing'}${b?.inserted?.backing_file ? ` backed by ${b.inserted.backing_file}` : ''}, not on ${targets[i]!.path} alone`);
        }
      }
    } catch (err) {
      for (const o of this.journal.overlays) await qmp.execute('block-job-cancel', { device: jobOf(o.driveId), force: true }).catch(() => undefined);
      this.journal.state = 'running';
      this.journal.mirror = null;
      await this.save();
      for (const t of targets) await rm(t.path, { force: true });
      throw err;
    }
    for (const t of targets) t.complete = true;
    this.journal.state = 'migrated';
    await this.save();
    // QEMU reads none of these any more.
    await this.releaseRepository();
    for (const o of this.journal.overlays) await rm(o.path, { force: true });
    return { targets: targets.map((t) => ({ diskKey: t.diskKey, path: t.path })), durationMs: Date.now() - t0 };
  }

  /** Stops serving the repository: NBD server, disk readers, lock. */
  async releaseRepository(): Promise<void> {
    await this.server?.close();
    this.server = null;
    for (const r of this.readers) r.close();
    this.readers = [];
    await this.lock?.release();
    this.lock = null;
  }

  /**
   * Ends the instant boot: QEMU quits (SIGKILL after `graceMs`), the NBD
   * server stops, and the work folder goes with the overlays and any partial
   * mirror target. Complete mirror targets stay: they are the migrated VM's disks.
   */
  async discard(graceMs = 5000): Promise<void> {
    if (this.discarded) return;
    this.discarded = true;
    this.journal.state = 'discarding';
    await this.save();
    await this.qemu.stop(graceMs);
    await this.releaseRepository().catch(() => undefined);
    await cleanUp(this.workDir, this.journal, { keepComplete: true });
  }
}

/** Removes what a journal names (overlays, sockets, partial targets) and then the work folder itself, journal last. */
async function cleanUp(workDir: string, j: InstantBootJournal, opts: { keepComplete: boolean }): Promise<{ removed: string[]; kept: string[] }> {
  const removed: string[] = [];
  const kept: string[] = [];
  const remove = async (p: string) => {
    if (await exists(p)) {
      await rm(p, { force: true, recursive: true });
      removed.push(p);
    }
  };
  for (const o of j.overlays) await remove(o.path);
  for (const t of j.mirror?.targets ?? []) {
    if (t.complete && opts.keepComplete) kept.push(t.path);
    else await remove(t.path);
  }
  await remove(j.nbdSocket);
  await remove(j.qmpSocket);
  for (const f of await readdir(workDir).catch(() => [] as string[])) if (f !== JOURNAL_FILE) await remove(path.join(workDir, f));
  await rm(path.join(workDir, JOURNAL_FILE), { force: true });
  await rmdir(workDir).catch(() => undefined);
  return { removed, kept };
}

/** QEMU processes whose command line names `qmpSocket` (how a QEMU is found when the controller died before recording its pid). */
async function qemuUsing(qmpSocket: string): Promise<ProcessIdentity[]> {
  const out: ProcessIdentity[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const id = await processIdentity(Number(entry));
    if (!id || !path.basename(id.cmdline[0] ?? '').startsWith('qemu-system')) continue;
    if (id.cmdline.some((a) => a.includes(qmpSocket))) out.push(id);
  }
  return out;
}

/** Kills `id` if it is still that very process, and waits until it is gone. */
async function killAndWait(id: ProcessIdentity, timeoutMs = 10_000): Promise<boolean> {
  if (!(await isSameProcess(id))) return false;
  try {
    process.kill(id.pid, 'SIGKILL');
  } catch {
    return false;
  }
  const end = Date.now() + timeoutMs;
  // Gone, or a zombie (no command line any more) waiting for its parent to reap it.
  while (await isSameProcess(id)) {
    if (Date.now() > end) throw new Error(`QEMU ${id.pid} did not die within ${timeoutMs} ms of SIGKILL`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

export interface SweepReport {
  swept: Array<{ workDir: string; state: InstantBootState; killed: number[]; removed: string[]; kept: string[] }>;
  /** Instant boots whose controller still runs. */
  skipped: string[];
}

/**
 * Undoes the instant boots under `root` whose controller is gone (killed,
 * crashed, or the host restarted): kills their QEMU, removes overlays,
 * sockets and partial mirror targets, keeps complete mirror targets, and
 * removes their work folders. Folders without a journal that are empty (a
 * controller that died between mkdir and the first journal) go too.
 */
export async function sweepInstantBoots(root: string): Promise<SweepReport> {
  const report: SweepReport = { swept: [], skipped: [] };
  const entries = await readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const workDir = path.join(root, e.name);
    let journal: InstantBootJournal;
    try {
      journal = JSON.parse(await readFile(path.join(workDir, JOURNAL_FILE), 'utf8')) as InstantBootJournal;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // Only the journal's temporary file (a controller killed while writing the first one), or nothing.
        const files = await readdir(workDir);
        if (files.every((f) => f === `${JOURNAL_FILE}.tmp`)) {
          await rm(workDir, { recursive: true, force: true });
          report.swept.push({ workDir, state: 'starting', killed: [], removed: files.map((f) => path.join(workDir, f)), kept: [] });
        }
        continue;
      }
      throw new Error(`cannot read the instant boot journal in ${workDir}: ${(err as Error).message}`);
    }
    if (await isSameProcess(journal.controller)) {
      report.skipped.push(workDir);
      continue;
    }
    const killed: number[] = [];
    const candidates = [...(journal.qemu ? [journal.qemu] : []), ...(await qemuUsing(journal.qmpSocket))];
    for (const id of candidates) if (!killed.includes(id.pid) && (await killAndWait(id))) killed.push(id.pid);
    const { removed, kept } = await cleanUp(workDir, journal, { keepComplete: true });
    report.swept.push({ workDir, state: journal.state, killed, removed, kept });
  }
  return report;
}
