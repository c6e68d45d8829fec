/**
 * Restore-point writer.
 *
 * Crash safety — the order of durable steps is the whole story:
 *   1. chunk blobs are appended to pack files written under a tmp name; a pack
 *      is fsynced and renamed into place when full (in the libuv pool, so the
 *      pipeline keeps running: durable writes are batched per ~32 MiB pack);
 *   2. commit: the last pack is finished and every pack fsync is awaited;
 *   3. one index file for this session's new chunks (tmp, fsync, rename, fsync dir);
 *   4. the disk indexes, then the manifest, the same way. The manifest pins
 *      each disk index by SHA-256, and its presence is what makes the restore
 *      point visible.
 * On storage that enforces immutability (immutability.ts), a point with `lockedUntil` locks its packs,
 * index file, disk indexes and the config between steps 4's disk indexes and its manifest, then the
 * manifest: a point that is visible is already undeletable.
 * A writer killed before step 4 completes leaves at most unreferenced packs,
 * an unreferenced index file, tmp files or a directory without manifest: none
 * is visible, verify ignores them, GC removes them after its grace period.
 *
 * Disks are written by DiskWriter (disk-writer.ts), packs by PackWriter (pack-writer.ts).
 */
import * as crypto from 'node:crypto';
import { SealedKind, encodeDiskIndex, encodeIndex, packPath } from './format.ts';
import type { BlobLocation, DiskIndex } from './format.ts';
import { RepositoryError, classifyFsError } from './errors.ts';
import type { Lock } from './locks.ts';
import { ChunkPool } from './pool.ts';
import type { Repository } from './repository.ts';
import { assertSafeName, newRestorePointId, sealFor } from './repository.ts';
import type { DiskManifest, Manifest, RestorePointRef, WriteStats } from './types.ts';
import { addStats, emptyStats } from './types.ts';
import { DiskWriter } from './disk-writer.ts';
import type { DiskOptions, DiskWriterSession } from './disk-writer.ts';
import { PackWriter } from './pack-writer.ts';
import { assertCanLock, lockAll, lockGeneration, lockPacks, packsOf } from './immutability.ts';

export interface RestorePointOptions {
  vmId: string;
  /** Restore point this one is based on (its disks are the default parents). */
  parent?: RestorePointRef | null;
  vm?: unknown;
  transport?: string;
  labels?: Record<string, string>;
  /** Immutability: the restore point cannot be pruned or deleted before this date. */
  lockedUntil?: Date | null;
  /** Pool slots (chunk buffers in flight). Default 32. */
  slots?: number;
}

export class RestorePointWriter implements DiskWriterSession {
  readonly id: string;
  readonly vmId: string;
  readonly pool: ChunkPool;
  private readonly packs: PackWriter;
  private readonly session = new Map<string, BlobLocation>();
  private readonly disks: DiskWriter[] = [];
  private parentManifest: Manifest | null = null;
  /** The parent's disk indexes this point was written against (their packs may be locked already). */
  private readonly parentIndexes: DiskIndex[] = [];
  private done = false;
  private readonly startedAt: Date;

  private constructor(
    readonly repo: Repository,
    readonly opts: RestorePointOptions,
    private readonly lock: Lock,
    pool: ChunkPool,
  ) {
    this.vmId = opts.vmId;
    this.startedAt = new Date(repo.now());
    this.id = newRestorePointId(repo.now());
    this.pool = pool;
    this.packs = new PackWriter(repo.backend, repo.config.packTargetSize);
  }

  static async open(repo: Repository, opts: RestorePointOptions): Promise<RestorePointWriter> {
    assertSafeName('vmId', opts.vmId);
    assertCanLock(repo.backend, opts.lockedUntil);
    const lock = await repo.locks.acquire('shared', `backup ${opts.vmId}`);
    try {
      // The index may have grown since open: re-read it under the lock so dedup
      // never references a chunk that a GC (which needed an exclusive lock) removed.
      await repo.reloadIndex();
      const pool = await ChunkPool.take(repo.poolOptions(opts.slots ?? 32));
      const w = new RestorePointWriter(repo, opts, lock, pool);
      if (opts.parent) {
        if (opts.parent.vmId !== opts.vmId) throw new RepositoryError('INVALID_ARGUMENT', 'parent restore point belongs to another VM');
        w.parentManifest = await repo.readManifest(opts.parent);
      }
      return w;
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  has(id: string): boolean {
    return this.session.has(id) || this.repo.index.has(id);
  }

  async addBlob(id: string, data: Buffer, rawLen: number): Promise<void> {
    if (this.has(id)) return;
    const loc = await this.packs.append(Buffer.from(id, 'hex'), data, rawLen);
    this.session.set(id, loc);
  }

  /** Read a parent chunk's stored blob into the slot's output area (no allocation). */
  async readBaseIntoSlot(id: string, slot: number): Promise<{ storedLen: number; rawLen: number }> {
    const loc = this.baseLocation(id);
    const into = this.pool.outSlot(slot, loc.storedLen);
    const be = this.repo.backend;
    if (be.local) be.local.readRangeDirect(packPath(loc.pack), loc.offset, loc.storedLen, into);
    else into.set(await be.readRange(packPath(loc.pack), loc.offset, loc.storedLen));
    return { storedLen: loc.storedLen, rawLen: loc.rawLen };
  }

  private baseLocation(id: string): BlobLocation {
    const loc = this.repo.index.get(id);
    if (loc) return loc;
    // Written earlier in this session (out-of-order writes): not readable yet.
    throw new RepositoryError('INVALID_ARGUMENT', `chunk rewritten out of order within one session (chunk ${id}); write each area once`);
  }

  private baseScratch: { stored: Buffer; plain: Buffer } | null = null;
  /** Decode a committed blob on this thread (rare paths: re-assembling split chunks). Valid until the next call. */
  async decodeBase(id: string, stats: WriteStats): Promise<Buffer> {
    const loc = this.baseLocation(id);
    const cs = this.repo.config.chunkSize;
    this.baseScratch ??= { stored: Buffer.allocUnsafe(cs + (cs >> 7) + 4096), plain: Buffer.allocUnsafe(cs) };
    const { stored } = await this.repo.readStored(id, this.baseScratch.stored);
    stats.baseReadBytes += loc.storedLen;
    const n = this.repo.decode(stored, id, loc.rawLen, this.baseScratch.plain, `chunk ${id}`);
    return this.baseScratch.plain.subarray(0, n);
  }

  /** Raw length of a stored blob (committed or written in this session). */
  rawLen(id: string): number {
    return (this.session.get(id) ?? this.repo.index.get(id))?.rawLen ?? 0;
  }

  async openDisk(opts: DiskOptions): Promise<DiskWriter> {
    if (this.done) throw new RepositoryError('INVALID_ARGUMENT', 'restore point writer is finished');
    if (this.disks.some((d) => d.key === opts.key)) throw new RepositoryError('INVALID_ARGUMENT', `disk ${opts.key} already opened`);
    if (!Number.isSafeInteger(opts.capacity) || opts.capacity <= 0) throw new RepositoryError('INVALID_ARGUMENT', 'capacity must be a positive integer');
    let base: DiskIndex | null = null;
    const pkey = opts.parentKey ?? opts.key;
    if (this.parentManifest && this.parentManifest.disks.some((d) => d.key === pkey)) {
      base = await this.repo.readDiskIndex(this.opts.parent!, pkey, this.parentManifest);
      this.parentIndexes.push(base);
      if (base.chunkSize !== this.repo.config.chunkSize) base = null;
    }
    if (opts.mode === 'changed' && !base) {
      throw new RepositoryError('INVALID_ARGUMENT', `disk ${opts.key}: mode 'changed' needs a parent restore point containing disk ${pkey}`);
    }
    if (base) {
      const pieceIds = [...base.pieces.values()].flat().map((p) => Buffer.from(p.id, 'hex'));
      this.pool.setKnown(pieceIds.length > 0 ? Buffer.concat([base.ids, ...pieceIds]) : base.ids);
    }
    const d = new DiskWriter(this, opts, base);
    this.disks.push(d);
    return d;
  }

  get stats(): WriteStats {
    return this.disks.reduce((a, d) => addStats(a, d.stats), emptyStats());
  }

  /** Make the restore point durable and visible. */
  async commit(): Promise<Manifest> {
    if (this.done) throw new RepositoryError('INVALID_ARGUMENT', 'restore point writer is finished');
    try {
      const diskManifests: DiskManifest[] = [];
      for (const d of this.disks) diskManifests.push(await d.close());
      await this.packs.finish();
      await this.lock.check();
      const be = this.repo.backend;
      // The index file and the disk indexes become durable together (their fsyncs overlap); the manifest follows.
      const writes: Array<Promise<void>> = [];
      const written: string[] = [];
      if (this.session.size > 0) {
        const indexFile = `index/${this.id}-${crypto.randomBytes(4).toString('hex')}.idx`;
        writes.push(be.writeFileAtomic(indexFile, sealFor(this.repo, SealedKind.Index, encodeIndex(this.session))));
        written.push(indexFile);
      }
      const dir = this.repo.rpDir({ vmId: this.vmId, id: this.id });
      const diskIndexes: DiskIndex[] = [];
      for (let i = 0; i < this.disks.length; i++) {
        const d = this.disks[i]!;
        const m = diskManifests[i]!;
        const file = `disk-${i}.didx`;
        const index = d.diskIndex();
        diskIndexes.push(index);
        const sealed = sealFor(this.repo, SealedKind.DiskIndex, encodeDiskIndex(index, this.repo.config.version));
        writes.push(be.writeFileAtomic(`${dir}/${file}`, sealed));
        written.push(`${dir}/${file}`);
        m.file = file;
        m.indexSha256 = crypto.createHash('sha256').update(sealed).digest('hex');
      }
      const settled = await Promise.allSettled(writes);
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;
      const until = this.opts.lockedUntil;
      // The date every pack this point references (and the config) is locked to at least.
      let packsUntil = until && be.retention ? lockGeneration(until, this.repo.now()) : null;
      if (until && packsUntil) {
        const locate = (id: string) => this.session.get(id) ?? this.repo.index.get(id);
        const parentLocked = this.parentManifest?.packsLockedUntil ? new Date(this.parentManifest.packsLockedUntil) : null;
        if (parentLocked && parentLocked.getTime() >= until.getTime()) {
          // The parent locked its packs and the config past our date already: lock only what is new.
          const lockedAlready = packsOf(this.parentIndexes, locate);
          await lockAll(be, [...packsOf(diskIndexes, locate)].filter((p) => !lockedAlready.has(p)).map(packPath), packsUntil);
          if (parentLocked < packsUntil) packsUntil = parentLocked;
        } else {
          await lockPacks(be, diskIndexes, locate, packsUntil);
          await lockAll(be, ['config'], packsUntil);
        }
        await lockAll(be, written, until);
      }
      const committedAt = new Date(this.repo.now());
      const manifest: Manifest = {
        formatVersion: this.repo.config.version,
        id: this.id,
        vmId: this.vmId,
        parent: this.opts.parent?.id ?? null,
        createdAt: this.startedAt.toISOString(),
        committedAt: committedAt.toISOString(),
        lockedUntil: this.opts.lockedUntil ? this.opts.lockedUntil.toISOString() : null,
        ...(packsUntil ? { packsLockedUntil: packsUntil.toISOString() } : {}),
        // What the disks were read with, failovers included (else what the caller said).
        transport: [...new Set(diskManifests.flatMap((m) => m.transport?.split(',') ?? []))].join(',') || this.opts.transport,
        vm: this.opts.vm ?? null,
        labels: this.opts.labels ?? {},
        disks: diskManifests,
        stats: this.stats,
        timings: { startedAt: this.startedAt.toISOString(), committedAt: committedAt.toISOString(), durationMs: committedAt.getTime() - this.startedAt.getTime() },
      };
      await be.writeFileAtomic(`${dir}/manifest`, sealFor(this.repo, SealedKind.Manifest, Buffer.from(JSON.stringify(manifest))));
      if (until && be.retention) await lockAll(be, [`${dir}/manifest`], until);
      this.done = true;
      for (const [id, loc] of this.session) this.repo.index.set(id, loc);
      await this.cleanup();
      return manifest;
    } catch (err) {
      await this.abort();
      throw classifyFsError(err, `restore point ${this.vmId}/${this.id}`);
    }
  }

  /** Discard everything written by this writer. */
  async abort(): Promise<void> {
    if (this.done && !this.lockHeld) return;
    const wasDone = this.done;
    this.done = true;
    for (const d of this.disks) d.fail(new RepositoryError('ABORTED', 'restore point aborted'));
    if (!wasDone) {
      await this.packs.abort();
      const dir = this.repo.rpDir({ vmId: this.vmId, id: this.id });
      for (const name of await this.repo.backend.list(dir).catch(() => [] as string[])) await this.repo.backend.remove(`${dir}/${name}`).catch(() => undefined);
      await this.repo.backend.removeDir(dir);
    }
    await this.cleanup();
  }

  private lockHeld = true;
  private async cleanup(): Promise<void> {
    if (!this.lockHeld) return;
    this.lockHeld = false;
    await this.pool.giveBack();
    await this.lock.release();
    this.repo.backend.local?.dropFds();
  }
}
