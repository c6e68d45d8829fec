/**
 * Browse sessions: opening a restore point read-only (every disk, every
 * partition that can be mounted), handing out access to its files, and taking
 * it all down again — on request, after an idle timeout, at the end of its
 * lifetime (even while in use), at shutdown, or, for a Director that died, by
 * the sweep at the next start. A user holds a few sessions at most.
 *
 * Each layer is journaled before it exists (journal.ts) and lives under the
 * session's own 0700 directory `<root>/<internal id>/`:
 *   nbd.sock            the NBD server's socket (one server process per session)
 *   disk<i>/disk        nbdfuse's file for disk i (disk<i> is the FUSE mount point)
 *   mnt/<partition id>  the partition's filesystem mount point
 *
 * The session token the API hands out is 256 random bits, is bound to the user
 * who opened the session, is held only in memory (as its SHA-256) and appears
 * in no path, journal row or log line.
 */
import type { BrowsePartitionDto } from '@vaultline/contracts';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { RepositoryRow } from '@vaultline/appliance';
import type { Logger } from '@vaultline/logger';
import type { FlrJournal, FlrLayer } from './journal.ts';
import { attachLoop, detachLoops, NbdProcess, removeDir, startNbdfuse, stopNbdfuse, unmount } from './layers.ts';
import { partitionSlots, planMount, probeVolume, type PartitionSlot } from './probe.ts';
import { sweep, type SweepReport } from './sweep.ts';
import { FlrError, FlrUnavailableError, missingPrivileges, run, selfOwner, type Owner } from './system.ts';

export class FlrSessionError extends Error {
  override name = 'FlrSessionError';
  constructor(
    readonly code: 'not_found' | 'forbidden' | 'conflict' | 'rate_limited',
    message: string,
  ) {
    super(message);
  }
}

/** A partition as the API shows it ("d<disk index>p<number>" ids, stable within the session). */
export type PartitionView = BrowsePartitionDto;

export interface DiskView {
  key: string;
  capacityBytes: number;
  partitionTable: string;
  partitions: PartitionView[];
}

export interface SessionView {
  session: string;
  restorePointId: string;
  createdAt: string;
  idleTimeoutSeconds: number;
  expiresAt: string;
  disks: DiskView[];
}

export interface OpenRequest {
  restorePointId: string;
  /** For messages: "db01 2026-…". */
  label: string;
  repository: RepositoryRow;
  ref: { vmId: string; id: string };
  disks: Array<{ key: string; capacity: number }>;
  user: { id: string; username: string };
}

interface Layer {
  row: string;
  layer: FlrLayer;
  undo: () => Promise<void>;
}

export class Session {
  readonly createdAt = new Date();
  lastUsed = Date.now();
  active = 0;
  closing: Promise<void> | null = null;
  readonly layers: Layer[] = [];
  readonly partitions: PartitionView[] = [];
  readonly mountPoints = new Map<string, string>();
  /** Partition table scheme per disk key. */
  readonly tables = new Map<string, string>();
  readonly streams = new Set<{ destroy(err?: Error): void }>();
  view: SessionView | null = null;

  constructor(
    readonly id: string,
    readonly tokenHash: string,
    readonly userId: string,
    readonly username: string,
    readonly restorePointId: string,
    readonly dir: string,
  ) {}

  touch(): void {
    this.lastUsed = Date.now();
  }
}

export interface SessionsOptions {
  /** Where session directories live (the Director uses <data dir>/flr). */
  root: string;
  journal: FlrJournal;
  secretKey: Buffer;
  log: Logger;
  /** Close a session unused this long (default 30 min; active downloads keep it open). */
  idleMs?: number;
  /** Sessions open at once (default 4). */
  maxSessions?: number;
  /** Sessions one user may hold at once (default 2). */
  maxPerUser?: number;
  /** A session is closed this long after it was opened, even while in use (default 8 h). */
  maxLifetimeMs?: number;
  /** Overridable for tests of the 503 path only through a real unprivileged process. */
  privileges?: () => Promise<string[]>;
}

const hashToken = (t: string) => createHash('sha256').update(t).digest('hex');

export class FileRestoreSessions {
  private readonly sessions = new Map<string, Session>();
  private opening = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Sessions being opened, per user id. */
  private readonly openingBy = new Map<string, number>();
  readonly idleMs: number;
  readonly maxSessions: number;
  readonly maxPerUser: number;
  readonly maxLifetimeMs: number;

  constructor(private readonly opts: SessionsOptions) {
    this.idleMs = opts.idleMs ?? 30 * 60_000;
    this.maxSessions = opts.maxSessions ?? 4;
    this.maxPerUser = opts.maxPerUser ?? 2;
    this.maxLifetimeMs = opts.maxLifetimeMs ?? 8 * 3_600_000;
  }

  /** Undoes what dead Directors of this host left, then watches for idle and expired sessions. */
  async start(): Promise<SweepReport> {
    const report = await sweep({ journal: this.opts.journal, log: this.opts.log, self: await selfOwner() });
    const period = Math.max(200, Math.min(30_000, Math.floor(this.idleMs / 4), Math.floor(this.maxLifetimeMs / 4)));
    let ticks = 0;
    this.timer = setInterval(() => {
      void this.closeIdle();
      // Every ~5 min: retry what a failed teardown of ours left journaled.
      if (++ticks % Math.max(1, Math.round(300_000 / period)) === 0) void this.resweep();
    }, period);
    this.timer.unref();
    return report;
  }

  private async resweep(): Promise<void> {
    const live = new Set([...this.sessions.values()].map((s) => s.id));
    for (const id of this.openingIds) live.add(id);
    await sweep({ journal: this.opts.journal, log: this.opts.log, self: await selfOwner(), live }).catch((err: unknown) => this.opts.log.warn({ err }, 'file restore: sweep failed'));
  }

  private readonly openingIds = new Set<string>();

  get size(): number {
    return this.sessions.size;
  }

  async open(req: OpenRequest): Promise<SessionView> {
    const missing = await (this.opts.privileges ?? missingPrivileges)();
    if (missing.length) throw new FlrUnavailableError(missing);
    if (this.sessions.size + this.opening >= this.maxSessions) {
      throw new FlrSessionError('rate_limited', `${this.maxSessions} browse sessions are open, the most this Director allows; close one (DELETE …/browse/<session>) or wait until one has been idle for ${Math.round(this.idleMs / 60_000)} min`);
    }
    const mine = [...this.sessions.values()].filter((s) => s.userId === req.user.id).length + (this.openingBy.get(req.user.id) ?? 0);
    if (mine >= this.maxPerUser) {
      throw new FlrSessionError('rate_limited', `${req.user.username} has ${mine} browse session${mine === 1 ? '' : 's'} open, the most one user may; close one (DELETE …/browse/<session>) first`);
    }
    this.opening++;
    this.openingBy.set(req.user.id, (this.openingBy.get(req.user.id) ?? 0) + 1);
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const session = new Session(id, hashToken(token), req.user.id, req.user.username, req.restorePointId, path.join(this.opts.root, id));
    this.openingIds.add(id);
    try {
      await this.build(session, req);
      session.view = {
        session: token,
        restorePointId: req.restorePointId,
        createdAt: session.createdAt.toISOString(),
        idleTimeoutSeconds: Math.round(this.idleMs / 1000),
        expiresAt: new Date(session.createdAt.getTime() + this.maxLifetimeMs).toISOString(),
        disks: req.disks.map((d) => ({ key: d.key, capacityBytes: d.capacity, partitionTable: session.tables.get(d.key) ?? 'none', partitions: session.partitions.filter((p) => p.disk === d.key) })),
      };
      this.sessions.set(session.tokenHash, session);
      session.touch(); // idle from the moment it is handed out, not from when mounting began
      return session.view;
    } catch (err) {
      await this.teardown(session).catch((e: unknown) => this.opts.log.error({ err: e, session: session.id }, 'file restore: undoing a session that failed to open failed; the sweep at next start retries'));
      throw err;
    } finally {
      this.opening--;
      const n = (this.openingBy.get(req.user.id) ?? 1) - 1;
      if (n > 0) this.openingBy.set(req.user.id, n);
      else this.openingBy.delete(req.user.id);
      this.openingIds.delete(id);
    }
  }

  private async journaled<T>(session: Session, owner: Owner, layer: FlrLayer, target: Record<string, unknown>, act: (row: string) => Promise<T>, undo: (result: T | undefined) => Promise<void>): Promise<T> {
    const row = await this.opts.journal.add(session.id, layer, target, owner);
    const done: { result?: T } = {};
    session.layers.push({ row, layer, undo: () => undo(done.result) });
    done.result = await act(row);
    return done.result;
  }

  private async build(session: Session, req: OpenRequest): Promise<void> {
    const owner = await selfOwner();
    const { journal, log } = this.opts;
    await this.journaled(
      session,
      owner,
      'session',
      { dir: session.dir, restorePointId: req.restorePointId, user: req.user.username },
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

    const socketPath = path.join(session.dir, 'nbd.sock');
    const exportsFor = req.disks.map((d, i) => ({ key: d.key, exportName: `disk${i}` }));
    await this.journaled(
      session,
      owner,
      'nbd_server',
      { socket: socketPath, pid: null },
      (row) =>
        NbdProcess.start({ socketPath, repository: req.repository, secretKey: this.opts.secretKey, ref: req.ref, disks: exportsFor, log: (m) => log.warn({ session: session.id }, m) }, (pid, start) =>
          journal.update(row, { socket: socketPath, pid, start }),
        ),
      async (nbd) => {
        await nbd?.stop();
      },
    );

    for (const [i, disk] of req.disks.entries()) {
      const mountPoint = path.join(session.dir, `disk${i}`);
      await mkdir(mountPoint, { mode: 0o700 });
      const fuse = await this.journaled(
        session,
        owner,
        'fuse',
        { mountPoint, pid: null },
        (row) => startNbdfuse(mountPoint, socketPath, `disk${i}`, (pid) => journal.update(row, { mountPoint, pid, start: null })),
        async (f) => {
          await stopNbdfuse(mountPoint, f?.pid, f?.start);
          await removeDir(mountPoint);
        },
      );
      const journalRow = session.layers[session.layers.length - 1]!.row;
      await journal.update(journalRow, { mountPoint, pid: fuse.pid, start: fuse.start });

      const slots = await partitionSlots(fuse.file, disk.capacity);
      session.tables.set(disk.key, slots[0]?.scheme ?? 'none');
      for (const slot of slots) await this.addPartition(session, owner, i, disk.key, fuse.file, slot);
    }
    log.info({ session: session.id, restorePoint: req.restorePointId, user: req.user.username, mounted: session.partitions.filter((p) => p.mounted).map((p) => p.id) }, 'file restore: session open');
  }

  private async addPartition(session: Session, owner: Owner, diskIndex: number, diskKey: string, file: string, slot: PartitionSlot): Promise<void> {
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
    try {
      const device = await this.journaled(
        session,
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
      await this.journaled(
        session,
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

  /** The caller's session, or an error saying why not. Counts as use. */
  use(token: string, userId: string, restorePointId?: string): Session {
    const s = this.sessions.get(hashToken(token));
    if (!s || s.closing || (restorePointId && s.restorePointId !== restorePointId)) throw new FlrSessionError('not_found', 'no such browse session (it was closed, timed out, or belongs to another restore point)');
    if (s.userId !== userId) throw new FlrSessionError('forbidden', 'this browse session belongs to another user');
    s.touch();
    return s;
  }

  mountPoint(s: Session, partitionId: string): string {
    const mp = s.mountPoints.get(partitionId);
    if (mp) return mp;
    const p = s.partitions.find((x) => x.id === partitionId);
    if (!p) throw new FlrSessionError('not_found', `no partition ${partitionId} in this session (it has ${s.partitions.map((x) => x.id).join(', ') || 'none'})`);
    throw new FlrSessionError('conflict', `partition ${partitionId} is not mounted: ${p.reason ?? 'unknown reason'}`);
  }

  /** Keeps the session open while `stream` runs (downloads longer than the idle timeout are fine). */
  track(s: Session, stream: NodeJS.ReadableStream & { destroy(err?: Error): void; once(e: 'close', f: () => void): unknown }): void {
    s.active++;
    s.streams.add(stream);
    stream.once('close', () => {
      s.active--;
      s.streams.delete(stream);
      s.touch();
    });
  }

  async close(token: string, userId: string): Promise<void> {
    const s = this.use(token, userId);
    await this.closeSession(s, 'closed by its user');
  }

  private async closeSession(s: Session, why: string): Promise<void> {
    if (!s.closing) {
      s.closing = (async () => {
        for (const st of s.streams) st.destroy(new Error('the browse session was closed'));
        try {
          await this.teardown(s);
        } finally {
          // Gone for its user either way; what a failed teardown left stays journaled for the sweep.
          this.sessions.delete(s.tokenHash);
        }
        this.opts.log.info({ session: s.id, restorePoint: s.restorePointId, user: s.username, why }, 'file restore: session closed');
      })();
    }
    await s.closing;
  }

  /** Undoes every layer, newest first; a layer whose undo fails stays journaled for the sweep. */
  private async teardown(s: Session): Promise<void> {
    const failures: string[] = [];
    for (const layer of [...s.layers].reverse()) {
      try {
        await layer.undo();
        await this.opts.journal.resolve(layer.row);
      } catch (err) {
        failures.push(`${layer.layer}: ${(err as Error).message}`);
        await this.opts.journal.failed(layer.row, (err as Error).message).catch(() => undefined);
      }
    }
    s.layers.length = 0;
    if (failures.length) throw new FlrError(`closing browse session ${s.id} left: ${failures.join('; ')}`);
  }

  /** Closes sessions idle too long, and those past their lifetime even while in use (their downloads are cut). */
  async closeIdle(now = Date.now()): Promise<void> {
    for (const s of [...this.sessions.values()]) {
      if (s.closing) continue;
      const age = now - s.createdAt.getTime();
      const why = age >= this.maxLifetimeMs ? `open for ${Math.round(age / 1000)} s, its lifetime` : s.active === 0 && now - s.lastUsed >= this.idleMs ? `idle for ${Math.round((now - s.lastUsed) / 1000)} s` : null;
      if (why) await this.closeSession(s, why).catch((err: unknown) => this.opts.log.error({ err, session: s.id }, 'file restore: closing an idle or expired session failed'));
    }
  }

  async closeAll(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.sessions.values()].map((s) => this.closeSession(s, 'the Director is stopping')));
  }
}
