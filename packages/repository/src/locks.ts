/**
 * Repository locks (leases).
 *
 * - Writers (backups) and prune take SHARED locks; GC takes an EXCLUSIVE lock.
 *   Each lock is a file `locks/<id>.lock` holding {kind, pid, host, heartbeatAt}.
 * - Acquire = create own lock file durably, THEN list all locks: a shared
 *   acquirer backs off if a live exclusive lock exists; an exclusive acquirer
 *   backs off if any other live lock exists. Because each side writes before
 *   it looks, two conflicting acquirers can both back off but never both win.
 * - Holders refresh `heartbeatAt` every `heartbeatMs`. A lock is stale when its
 *   heartbeat is older than `staleMs`, or when it names this host and its pid
 *   is gone. Stale locks are deleted by whoever finds them.
 * - A holder whose lock file vanished (declared stale by someone else) has lost
 *   its lease: `check()` throws LockLostError and a writer refuses to commit,
 *   because GC may have swept chunks it deduplicated against.
 */
import * as os from 'node:os';
import * as crypto from 'node:crypto';
import type { Backend } from './backends/backend.ts';
import { LockLostError, LockedError } from './errors.ts';

export type LockKind = 'shared' | 'exclusive';

export interface LockInfo {
  id: string;
  kind: LockKind;
  purpose: string;
  pid: number;
  host: string;
  createdAt: number;
  heartbeatAt: number;
}

export interface LockOptions {
  staleMs?: number;
  heartbeatMs?: number;
  now?: () => number;
  /** How long to keep retrying a conflicting acquire. */
  waitMs?: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class Lock {
  private timer: NodeJS.Timeout | null = null;
  private lost = false;
  constructor(
    private readonly backend: Backend,
    readonly info: LockInfo,
    private readonly opts: Required<Omit<LockOptions, 'waitMs'>>,
  ) {}

  get path(): string {
    return `locks/${this.info.id}.lock`;
  }

  startHeartbeat(): void {
    this.timer = setInterval(() => {
      void this.refresh().catch(() => undefined);
    }, this.opts.heartbeatMs);
    this.timer.unref();
  }

  async refresh(): Promise<void> {
    if (this.lost) return;
    const st = await this.backend.stat(this.path);
    if (!st) {
      this.lost = true;
      return;
    }
    this.info.heartbeatAt = this.opts.now();
    await this.backend.writeFileAtomic(this.path, Buffer.from(JSON.stringify(this.info)));
  }

  /** Throws LockLostError when our lease was taken away. */
  async check(): Promise<void> {
    if (this.lost || !(await this.backend.stat(this.path))) {
      this.lost = true;
      throw new LockLostError(`lock ${this.info.id} (${this.info.purpose}) was removed as stale; refusing to continue`);
    }
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.backend.remove(this.path);
  }
}

export class LockManager {
  private readonly opts: Required<Omit<LockOptions, 'waitMs'>>;
  private readonly waitMs: number;
  constructor(
    private readonly backend: Backend,
    opts: LockOptions = {},
  ) {
    this.opts = { staleMs: opts.staleMs ?? 5 * 60_000, heartbeatMs: opts.heartbeatMs ?? 30_000, now: opts.now ?? Date.now };
    this.waitMs = opts.waitMs ?? 0;
  }

  isStale(l: LockInfo): boolean {
    if (this.opts.now() - l.heartbeatAt > this.opts.staleMs) return true;
    return l.host === os.hostname() && !pidAlive(l.pid);
  }

  /** Live locks; stale ones are removed on the way. */
  async list(): Promise<LockInfo[]> {
    const out: LockInfo[] = [];
    for (const name of await this.backend.list('locks')) {
      if (!name.endsWith('.lock')) continue;
      let info: LockInfo;
      try {
        info = JSON.parse((await this.backend.readFile(`locks/${name}`)).toString()) as LockInfo;
      } catch {
        continue; // vanished or being replaced
      }
      if (this.isStale(info)) {
        await this.backend.remove(`locks/${name}`);
        continue;
      }
      out.push(info);
    }
    return out;
  }

  async acquire(kind: LockKind, purpose: string): Promise<Lock> {
    const deadline = this.opts.now() + this.waitMs;
    for (;;) {
      const now = this.opts.now();
      const info: LockInfo = { id: `${kind}-${crypto.randomBytes(8).toString('hex')}`, kind, purpose, pid: process.pid, host: os.hostname(), createdAt: now, heartbeatAt: now };
      const lock = new Lock(this.backend, info, this.opts);
      await this.backend.writeFileAtomic(lock.path, Buffer.from(JSON.stringify(info)));
      const others = (await this.list()).filter((l) => l.id !== info.id);
      const conflict = kind === 'exclusive' ? others[0] : others.find((l) => l.kind === 'exclusive');
      if (!conflict) {
        lock.startHeartbeat();
        return lock;
      }
      await this.backend.remove(lock.path);
      if (this.opts.now() >= deadline) {
        throw new LockedError(`repository is locked by ${conflict.kind} lock ${conflict.id} (${conflict.purpose}, pid ${conflict.pid} on ${conflict.host})`);
      }
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    }
  }
}
