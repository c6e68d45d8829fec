/**
 * Browse sessions, the Director's side: opening a restore point read-only,
 * handing out access to its files, and taking it all down again — on request,
 * after an idle timeout, at the end of its lifetime (even while in use), at
 * shutdown, or, for a Director that died, by the sweep at the next start. A
 * user holds a few sessions at most.
 *
 * The Director holds the repository's secrets and serves the restore point's
 * disks from an NBD server process of its own; everything that touches guest
 * data as a filesystem (nbdfuse, loop devices, mounts, reading files) happens
 * in the file-level restore helper (vaultline-flr, helper/), which it asks
 * over a unix socket (helper/client.ts). Its own layers are journaled before
 * they exist (journal.ts) and live under `<run dir>/nbd/<internal id>/`
 * (0750, the helper's group may enter):
 *   nbd.sock            the NBD server's socket (0660; one server process per session)
 *
 * The session token the API hands out is 256 random bits, is bound to the user
 * who opened the session, is held only in memory (as its SHA-256) and appears
 * in no path, journal row, helper request or log line.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { RepositoryRow } from '@vaultline/appliance';
import type { Logger } from '@vaultline/logger';
import { toRef } from './browse.ts';
import type { FlrHelper } from './helper/client.ts';
import type { FlrJournal } from './journal.ts';
import { closeOnce, journaled, teardown, type Layer } from './layered.ts';
import { NbdProcess, removeDir } from './layers.ts';
import type { PartitionView } from './mounts.ts';
import { sweep, type SweepReport } from './sweep.ts';
import { FlrSessionError, FlrUnavailableError, selfOwner } from './system.ts';

export type { PartitionView } from './mounts.ts';

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

/** A file or directory of a session's partition, as the helper takes it. */
export interface Item {
  partition: string;
  path: Buffer[];
}

export class Session {
  readonly createdAt = new Date();
  lastUsed = Date.now();
  active = 0;
  closing: Promise<void> | null = null;
  readonly layers: Layer[] = [];
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
  /** Where the NBD sockets' directories live (<run dir shared with the helper>/nbd). */
  root: string;
  /** The file-level restore helper, which mounts and reads. */
  helper: FlrHelper;
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
}

const hashToken = (t: string) => createHash('sha256').update(t).digest('hex');
const item = (i: Item) => ({ partition: i.partition, ref: toRef(Buffer.concat(i.path.flatMap((c, n) => (n ? [Buffer.from('/'), c] : [c])))) });

export class FileRestoreSessions {
  private readonly sessions = new Map<string, Session>();
  private opening = 0;
  private timer: NodeJS.Timeout | null = null;
  /** This Director instance, as the helper knows it: a sweep it asks for closes every other instance's sessions. */
  private readonly instance = randomUUID();
  private helperSwept = false;
  readonly idleMs: number;
  readonly maxSessions: number;
  readonly maxPerUser: number;
  readonly maxLifetimeMs: number;
  /** Sessions being opened, per user id. */
  private readonly openingBy = new Map<string, number>();

  constructor(private readonly opts: SessionsOptions) {
    this.idleMs = opts.idleMs ?? 30 * 60_000;
    this.maxSessions = opts.maxSessions ?? 4;
    this.maxPerUser = opts.maxPerUser ?? 2;
    this.maxLifetimeMs = opts.maxLifetimeMs ?? 8 * 3_600_000;
  }

  /** Undoes what dead Directors of this host left (ours and the helper's), then watches for idle sessions. */
  async start(): Promise<SweepReport> {
    const report = await sweep({ journal: this.opts.journal, log: this.opts.log, self: await selfOwner(), root: this.opts.root });
    await this.sweepHelper().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'file restore: the helper could not be asked to sweep; asked again at the next browse'));
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

  /** The helper closes what earlier instances of this Director left mounted (their NBD servers are gone). */
  private async sweepHelper(): Promise<void> {
    const report = await this.opts.helper.sweep(this.instance);
    this.helperSwept = true;
    if (report.sessions) this.opts.log.info({ sessions: report.sessions }, 'file restore: the helper swept what a stopped Director left');
  }

  private async resweep(): Promise<void> {
    const live = new Set([...this.sessions.values()].map((s) => s.id));
    for (const id of this.openingIds) live.add(id);
    await sweep({ journal: this.opts.journal, log: this.opts.log, self: await selfOwner(), root: this.opts.root, live }).catch((err: unknown) => this.opts.log.warn({ err }, 'file restore: sweep failed'));
  }

  private readonly openingIds = new Set<string>();

  get size(): number {
    return this.sessions.size;
  }

  async open(req: OpenRequest): Promise<SessionView> {
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
      // Before anything is started: a helper that is not running (or may not mount) is a 503 with its reason.
      const { missing } = await this.opts.helper.health();
      if (missing.length) throw new FlrUnavailableError(missing);
      if (!this.helperSwept) await this.sweepHelper();
      const mounted = await this.build(session, req);
      session.view = {
        session: token,
        restorePointId: req.restorePointId,
        createdAt: session.createdAt.toISOString(),
        idleTimeoutSeconds: Math.round(this.idleMs / 1000),
        expiresAt: new Date(session.createdAt.getTime() + this.maxLifetimeMs).toISOString(),
        disks: req.disks.map((d) => ({ key: d.key, capacityBytes: d.capacity, partitionTable: mounted.tables[d.key] ?? 'none', partitions: mounted.partitions.filter((p) => p.disk === d.key) })),
      };
      this.sessions.set(session.tokenHash, session);
      session.touch(); // idle from the moment it is handed out, not from when mounting began
      return session.view;
    } catch (err) {
      await teardown(this.opts.journal, session.layers, session.id).catch((e: unknown) => this.opts.log.error({ err: e, session: session.id }, 'file restore: undoing a session that failed to open failed; the sweep at next start retries'));
      throw err;
    } finally {
      this.opening--;
      const n = (this.openingBy.get(req.user.id) ?? 1) - 1;
      if (n > 0) this.openingBy.set(req.user.id, n);
      else this.openingBy.delete(req.user.id);
      this.openingIds.delete(id);
    }
  }

  private async build(session: Session, req: OpenRequest) {
    const owner = await selfOwner();
    const { journal, log } = this.opts;
    await journaled(
      journal,
      session.layers,
      session.id,
      owner,
      'session',
      { dir: session.dir, restorePointId: req.restorePointId, user: req.user.username },
      async () => {
        // 0750: the helper (the directory's group) reaches the socket; no one else does.
        await mkdir(this.opts.root, { recursive: true, mode: 0o750 });
        await mkdir(session.dir, { mode: 0o750 });
      },
      async () => {
        await removeDir(session.dir);
      },
    );

    const socketPath = path.join(session.dir, 'nbd.sock');
    const exportsFor = req.disks.map((d, i) => ({ key: d.key, exportName: `disk${i}` }));
    await journaled(
      journal,
      session.layers,
      session.id,
      owner,
      'nbd_server',
      { socket: socketPath, pid: null },
      (row) =>
        NbdProcess.start({ socketPath, socketMode: 0o660, repository: req.repository, secretKey: this.opts.secretKey, ref: req.ref, disks: exportsFor, log: (m) => log.warn({ session: session.id }, m) }, (pid, start) =>
          journal.update(row, { socket: socketPath, pid, start }),
        ),
      async (nbd) => {
        await nbd?.stop();
      },
    );

    // The helper's layers are journaled by the helper; a Director that dies leaves them to the helper's sweep.
    session.layers.push({ row: null, layer: 'helper', undo: () => this.opts.helper.close(session.id).catch((err: unknown) => (err instanceof FlrSessionError && err.code === 'not_found' ? undefined : Promise.reject(err))) });
    const mounted = await this.opts.helper.open({ id: session.id, nbdSocket: socketPath, disks: req.disks.map((d, i) => ({ key: d.key, capacity: d.capacity, exportName: exportsFor[i]!.exportName })), owner: this.instance, label: req.label });
    log.info({ session: session.id, restorePoint: req.restorePointId, user: req.user.username, mounted: mounted.partitions.filter((p) => p.mounted).map((p) => p.id) }, 'file restore: session open');
    return mounted;
  }

  /** The caller's session, or an error saying why not. Counts as use. */
  use(token: string, userId: string, restorePointId?: string): Session {
    const s = this.sessions.get(hashToken(token));
    if (!s || s.closing || (restorePointId && s.restorePointId !== restorePointId)) throw new FlrSessionError('not_found', 'no such browse session (it was closed, timed out, or belongs to another restore point)');
    if (s.userId !== userId) throw new FlrSessionError('forbidden', 'this browse session belongs to another user');
    s.touch();
    return s;
  }

  list(s: Session, i: Item, page: { cursor?: string | undefined; limit: number }) {
    return this.opts.helper.list(s.id, item(i), page);
  }

  /** A regular file's size and modification time (links, devices, FIFOs and directories are refused). */
  stat(s: Session, i: Item) {
    return this.opts.helper.stat(s.id, item(i));
  }

  /** Bytes [start, end] of a regular file, kept open as a download of the session. */
  async read(s: Session, i: Item, start: number, end: number) {
    const stream = await this.opts.helper.read(s.id, item(i), start, end);
    this.track(s, stream);
    return stream;
  }

  /** A directory as tar, kept open as a download of the session. */
  async archive(s: Session, i: Item) {
    const a = await this.opts.helper.archive(s.id, item(i));
    this.track(s, a.stream);
    return a;
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
    await closeOnce(
      this.opts.journal,
      s,
      () => this.sessions.delete(s.tokenHash),
      () => this.opts.log.info({ session: s.id, restorePoint: s.restorePointId, user: s.username, why }, 'file restore: session closed'),
    );
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
