/**
 * Opened repositories, kept between requests. Opening one derives its key
 * (scrypt: ~100 ms of a thread-pool thread); a listing or a figure should not
 * pay that every time, and a burst of requests for one repository shares a
 * single opening. Entries are opened without the global index: what needs
 * chunk locations (stats, downloads) calls reloadIndex(), which reads only
 * index files named since.
 *
 * Every opening compares the storage with the identity PostgreSQL recorded
 * (services/repositories.ts): a repository that is not the recorded one is a 409.
 * A kept entry whose config file changed on storage since it was opened is
 * opened afresh at its next use, so those checks apply to every request.
 * Local repositories stay open in a bounded LRU keyed by the repository's id,
 * kind, location and a hash of its sealed secrets, so a row that changed opens
 * afresh (its old entry is retired); a row that is gone is forgotten; an entry
 * unused for a while is closed. An error other than a refusal or a missing file
 * (a repository replaced under the same path) retires the entry too, so the
 * next request opens it again. SFTP connections are not kept: the pinned host
 * key is checked on every use (an open connection would not notice a server
 * that changed keys), but their derived keys are remembered like all others.
 */
import { createHash } from 'node:crypto';
import type { RepositoryRow } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import { deriveKek, NotFoundError, type KdfParams, type Repository } from '@vaultline/repository';
import { AppError } from '../errors.ts';
import { openRecordedRepository } from './repositories.ts';

export type CachedRepositoryRow = RepositoryRow & { id: string };

export interface RepositoryLease {
  repo: Repository;
  /** Done with it; `err` (what went wrong, if anything) may retire the entry. Idempotent. */
  release(err?: unknown): void;
}

interface Entry {
  key: string;
  id: string;
  opening: Promise<Repository>;
  users: number;
  lastUsed: number;
  retired: boolean;
  closed: boolean;
}

export interface RepositoryCacheOptions {
  /** Repositories kept open at most (default 16; more while all are in use). */
  max?: number;
  /** Close one unused this long (default 10 min). */
  idleMs?: number;
}

const keyOf = (row: CachedRepositoryRow) =>
  `${row.id} ${createHash('sha256')
    .update(JSON.stringify([row.kind, row.location, row.passphraseSealed, row.sftpKeySealed, row.sftpHostKeySha256 ?? null]))
    .digest('hex')}`;

/** Errors that say nothing about the opened repository itself. */
const harmless = (err: unknown) => err === undefined || err instanceof AppError || err instanceof NotFoundError;

export class RepositoryCache {
  /** In order of use: the first is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;
  private readonly max: number;
  private readonly idleMs: number;
  /** Key-encryption keys by passphrase and KDF parameters (bounded; the first is the oldest). */
  private readonly keks = new Map<string, Promise<Buffer>>();
  /** Repositories opened so far. */
  opened = 0;
  /** Keys derived (scrypt runs) so far. */
  keysDerived = 0;

  constructor(
    private readonly db: Db,
    private readonly secretKey: Buffer,
    opts: RepositoryCacheOptions = {},
  ) {
    this.max = opts.max ?? 16;
    this.idleMs = opts.idleMs ?? 10 * 60_000;
    this.timer = setInterval(() => this.closeIdle(), Math.min(60_000, this.idleMs / 2));
    this.timer.unref();
  }

  /** deriveKek, remembered: the same passphrase with the same salt and cost gives the same key. */
  private readonly kek = (passphrase: string, kdf: KdfParams): Promise<Buffer> => {
    const id = createHash('sha256').update(JSON.stringify([passphrase, kdf.salt, kdf.N, kdf.r, kdf.p])).digest('hex');
    let k = this.keks.get(id);
    if (!k) {
      this.keysDerived++;
      k = deriveKek(passphrase, kdf);
      k.catch(() => this.keks.delete(id));
      this.keks.set(id, k);
      if (this.keks.size > 4 * this.max) this.keks.delete(this.keks.keys().next().value!);
    }
    return k;
  };

  /** The repository, opened if needed, kept open (never evicted) until release(). */
  async lease(row: CachedRepositoryRow): Promise<RepositoryLease> {
    if (row.kind !== 'local') {
      this.opened++;
      const repo = await openRecordedRepository(this.db, row, this.secretKey, { index: false, kek: this.kek });
      let released = false;
      return {
        repo,
        release: () => {
          if (released) return;
          released = true;
          void repo.close().catch(() => undefined);
        },
      };
    }
    const key = keyOf(row);
    let entry = this.entries.get(key);
    const kept = entry !== undefined;
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      entry.users++;
    } else {
      for (const other of this.entries.values()) if (other.id === row.id) this.retire(other); // the row changed
      const opened: Entry = { key, id: row.id, opening: openRecordedRepository(this.db, row, this.secretKey, { index: false, kek: this.kek }), users: 1, lastUsed: Date.now(), retired: false, closed: false };
      opened.opening.catch(() => this.retire(opened)); // a failed opening is not kept
      this.opened++;
      this.entries.set(key, opened);
      this.trim();
      entry = opened;
    }
    const e = entry;
    let repo: Repository;
    try {
      repo = await e.opening;
    } catch (err) {
      e.users--;
      throw err;
    }
    if (kept && (await repo.configChanged().catch(() => true))) {
      // Somebody changed the config on storage since it was opened: open it afresh, through the identity checks.
      e.users--;
      this.retire(e);
      if (e.users === 0) this.closeEntry(e);
      return this.lease(row);
    }
    let released = false;
    return {
      repo,
      release: (err?: unknown) => {
        if (released) return;
        released = true;
        e.users--;
        e.lastUsed = Date.now();
        if (!harmless(err)) this.retire(e);
        if (e.retired && e.users === 0) this.closeEntry(e);
      },
    };
  }

  /** Runs `f` with the repository open; it stays open for the next request. */
  async use<T>(row: CachedRepositoryRow, f: (repo: Repository) => Promise<T>): Promise<T> {
    const lease = await this.lease(row);
    try {
      const result = await f(lease.repo);
      lease.release();
      return result;
    } catch (err) {
      lease.release(err);
      throw err;
    }
  }

  /** A repository row that no longer exists: its entries go. */
  forget(id: string): void {
    for (const e of this.entries.values()) if (e.id === id) this.retire(e);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.filter((e) => !e.closed).map((e) => ((e.closed = true), e.opening.then((r) => r.close()).catch(() => undefined))));
  }

  private retire(e: Entry): void {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    e.retired = true;
    if (e.users === 0) this.closeEntry(e);
  }

  private closeEntry(e: Entry): void {
    if (e.closed) return;
    e.closed = true;
    void e.opening.then((r) => r.close()).catch(() => undefined);
  }

  private trim(): void {
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.max) return;
      if (e.users === 0) this.retire(e);
    }
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const e of [...this.entries.values()]) if (e.users === 0 && now - e.lastUsed >= this.idleMs) this.retire(e);
  }
}
