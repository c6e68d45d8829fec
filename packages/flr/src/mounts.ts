/**
 * The helper's side of a browse session: every disk of a restore point, served
 * over NBD by the Director, presented as a read-only file by nbdfuse, each
 * partition on a read-only loop device and its filesystem mounted read-only.
 * Runs only in the file-level restore helper (vaultline-flr, helper/main.ts),
 * in a mount namespace of its own: the Director never sees these mounts.
 *
 * Each layer is journaled before it exists (journal.ts; the helper keeps its
 * journal in files, file-journal.ts) and lives under the session's own 0700
 * directory `<root>/<session id>/`:
 *   disk<i>/disk        nbdfuse's file for disk i (disk<i> is the FUSE mount point)
 *   mnt/<partition id>  the partition's filesystem mount point
 */
import type { BrowsePartitionDto } from '@vaultline/contracts';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@vaultline/logger';
import type { FlrJournal } from './journal.ts';
import { closeOnce, journaled, type Layer } from './layered.ts';
import { attachLoop, detachLoops, removeDir, startNbdfuse, stopNbdfuse, unmount } from './layers.ts';
import { partitionSlots, planMount, probeVolume, type PartitionSlot } from './probe.ts';
import { sweep, type SweepReport } from './sweep.ts';
import { FlrSessionError, FlrUnavailableError, missingPrivileges, run, selfOwner, type Owner } from './system.ts';

/** A partition as the API shows it ("d<disk index>p<number>" ids, stable within the session). */
export type PartitionView = BrowsePartitionDto;

export interface MountRequest {
  /** The Director's id of the session (a UUID): names the session's directory. */
  id: string;
  /** The Director's NBD server of this session: one export per disk. */
  nbdSocket: string;
  disks: Array<{ key: string; capacity: number; exportName: string }>;
  /** The Director instance that opens it (a sweep it asks for closes every other instance's sessions). */
  owner: string;
  /** For the log: "restore point … of db01". */
  label: string;
}

export interface MountedView {
  /** Partition table scheme per disk key. */
  tables: Record<string, string>;
  partitions: PartitionView[];
}

class MountSession {
  readonly layers: Layer[] = [];
  readonly partitions: PartitionView[] = [];
  readonly mountPoints = new Map<string, string>();
  readonly tables: Record<string, string> = {};
  readonly streams = new Set<{ destroy(err?: Error): void }>();
  closing: Promise<void> | null = null;

  constructor(
    readonly id: string,
    readonly owner: string,
    readonly dir: string,
  ) {}
}

export interface MountSessionsOptions {
  /** Where session directories live (the helper's state dir/sessions). */
  root: string;
  journal: FlrJournal;
  log: Logger;
  /** Overridable for tests of the 503 path only through a real unprivileged process. */
  privileges?: () => Promise<string[]>;
}

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class MountSessions {
  private readonly sessions = new Map<string, MountSession>();

  constructor(private readonly opts: MountSessionsOptions) {}

  get size(): number {
    return this.sessions.size;
  }

  /** What stops this helper from mounting (none: it can). */
  async missing(): Promise<string[]> {
    return (await (this.opts.privileges ?? missingPrivileges)()).map((m) => `the helper (vaultline-flr) cannot mount: ${m}`);
  }

  /** Undoes what a helper that died left (from the journal), before serving. */
  async start(): Promise<SweepReport> {
    return sweep({ journal: this.opts.journal, log: this.opts.log, self: await selfOwner(), root: this.opts.root });
  }

  /**
   * What a Director that (re)starts asks for: every session not opened by `owner` belongs to a Director
   * that is gone (its NBD server went with it), so it is closed; then what failed teardowns left is swept.
   */
  async sweepFor(owner: string): Promise<SweepReport> {
    await Promise.allSettled([...this.sessions.values()].filter((s) => s.owner !== owner).map((s) => this.close(s.id, 'its Director is gone')));
    const live = new Set(this.sessions.keys());
    return sweep({ journal: this.opts.journal, log: this.opts.log, self: await selfOwner(), root: this.opts.root, live });
  }

  async open(req: MountRequest): Promise<MountedView> {
    if (!SESSION_ID.test(req.id)) throw new FlrSessionError('bad_request', 'a session id is a UUID');
    if (this.sessions.has(req.id)) throw new FlrSessionError('conflict', `session ${req.id} is open already`);
    const missing = await this.missing();
    if (missing.length) throw new FlrUnavailableError(missing);
    const session = new MountSession(req.id, req.owner, path.join(this.opts.root, req.id));
    this.sessions.set(req.id, session);
    try {
      await this.build(session, req);
      return { tables: session.tables, partitions: session.partitions };
    } catch (err) {
      await this.close(req.id, 'it failed to open').catch((e: unknown) => this.opts.log.error({ err: e, session: req.id }, 'file restore: undoing a session that failed to open failed; the sweep retries'));
      throw err;
    }
  }

  private async build(session: MountSession, req: MountRequest): Promise<void> {
    const owner = await selfOwner();
    const { journal, log } = this.opts;
    const layer = <T>(kind: Parameters<typeof journaled>[4], target: Record<string, unknown>, act: (row: string) => Promise<T>, undo: (r: T | undefined) => Promise<void>) =>
      journaled(journal, session.layers, session.id, owner, kind, target, act, undo);
    await layer(
      'session',
      { dir: session.dir, label: req.label },
      async () => {
        await mkdir(this.opts.root, { recursive: true, mode: 0o700 });
        await mkdir(session.dir, { mode: 0o700 });
        await mkdir(path.join(session.dir, 'mnt'), { mode: 0o700 });
      },
      async () => {
        await removeDir(path.join(session.dir, 'mnt'));
        await removeDir(session.dir);
      },
    );

    for (const [i, disk] of req.disks.entries()) {
      const mountPoint = path.join(session.dir, `disk${i}`);
      await mkdir(mountPoint, { mode: 0o700 });
      const fuse = await layer(
        'fuse',
        { mountPoint, pid: null },
        (row) => startNbdfuse(mountPoint, req.nbdSocket, disk.exportName, (pid) => journal.update(row, { mountPoint, pid, start: null })),
        async (f) => {
          await stopNbdfuse(mountPoint, f?.pid, f?.start);
          await removeDir(mountPoint);
        },
      );
      await journal.update(session.layers[session.layers.length - 1]!.row!, { mountPoint, pid: fuse.pid, start: fuse.start });

      const slots = await partitionSlots(fuse.file, disk.capacity);
      session.tables[disk.key] = slots[0]?.scheme ?? 'none';
      for (const slot of slots) await this.addPartition(session, owner, i, disk.key, fuse.file, slot);
    }
    log.info({ session: session.id, what: req.label, mounted: session.partitions.filter((p) => p.mounted).map((p) => p.id) }, 'file restore: disks mounted');
  }

  private async addPartition(session: MountSession, owner: Owner, diskIndex: number, diskKey: string, file: string, slot: PartitionSlot): Promise<void> {
    const id = slot.number === 0 ? `d${diskIndex}` : `d${diskIndex}p${slot.number}`;
    const volume = await probeVolume(file, slot);
    const view: PartitionView = {
      id,
      disk: diskKey,
      number: slot.number,
      offsetBytes: slot.offset,
      sizeBytes: slot.size,
      partitionType: slot.typeId,
      partitionName: slot.name,
      filesystem: volume.fsType,
      label: volume.label,
      uuid: volume.uuid,
      mounted: false,
    };
    session.partitions.push(view);
    const plan = await planMount(volume, slot);
    if (!plan.ok) {
      view.reason = plan.reason;
      return;
    }
    const { journal } = this.opts;
    try {
      const device = await journaled(
        journal,
        session.layers,
        session.id,
        owner,
        'loop',
        { backingFile: file, offset: slot.offset, size: slot.size },
        () => attachLoop(file, slot.offset, slot.size),
        async () => {
          await detachLoops(file, slot.offset);
        },
      );
      const mountPoint = path.join(session.dir, 'mnt', id);
      await mkdir(mountPoint, { mode: 0o700 });
      await journaled(
        journal,
        session.layers,
        session.id,
        owner,
        'mount',
        { mountPoint, device, driver: plan.description },
        async () => {
          const d = plan.driver;
          if (d.kind === 'kernel') await run('mount', ['-t', d.fsType, '-o', d.options.join(','), device, mountPoint]);
          else await run(d.command, d.args(device, mountPoint));
        },
        async () => {
          await unmount(mountPoint);
          await removeDir(mountPoint);
        },
      );
      view.mounted = true;
      view.driver = plan.description;
      session.mountPoints.set(id, mountPoint);
    } catch (err) {
      // One partition that cannot be mounted does not stop the others.
      view.reason = `mounting failed: ${(err as Error).message}`;
      this.opts.log.warn({ session: session.id, partition: id, err: (err as Error).message }, 'file restore: a partition could not be mounted');
    }
  }

  private get(id: string): MountSession {
    const s = this.sessions.get(id);
    if (!s || s.closing) throw new FlrSessionError('not_found', 'no such browse session in the file-level restore helper (it was closed, or the helper restarted)');
    return s;
  }

  /** Where a partition of a session is mounted, or why it is not. */
  mountPoint(id: string, partitionId: string): string {
    const s = this.get(id);
    const mp = s.mountPoints.get(partitionId);
    if (mp) return mp;
    const p = s.partitions.find((x) => x.id === partitionId);
    if (!p) throw new FlrSessionError('not_found', `no partition ${partitionId} in this session (it has ${s.partitions.map((x) => x.id).join(', ') || 'none'})`);
    throw new FlrSessionError('conflict', `partition ${partitionId} is not mounted: ${p.reason ?? 'unknown reason'}`);
  }

  /** Ends `stream` when its session closes (a mount with an open file cannot be unmounted). */
  track(id: string, stream: { destroy(err?: Error): void; once(e: 'close', f: () => void): unknown }): void {
    const s = this.get(id);
    s.streams.add(stream);
    stream.once('close', () => s.streams.delete(stream));
  }

  async close(id: string, why = 'closed by the Director'): Promise<void> {
    const s = this.sessions.get(id);
    if (!s) throw new FlrSessionError('not_found', 'no such browse session in the file-level restore helper');
    await closeOnce(
      this.opts.journal,
      s,
      () => this.sessions.delete(s.id),
      () => this.opts.log.info({ session: s.id, why }, 'file restore: disks unmounted'),
    );
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.sessions.keys()].map((id) => this.close(id, 'the helper is stopping')));
  }
}
