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
 * A writer killed before step 4 completes leaves at most unreferenced packs,
 * an unreferenced index file, tmp files or a directory without manifest: none
 * is visible, verify ignores them, GC removes them after its grace period.
 *
 * Incremental by reference: a disk opened in 'changed' mode starts from the
 * parent's chunk-id list. Unwritten chunks keep the parent's ids (never read).
 * A chunk fully covered by writes is hashed/compressed as new data; a chunk
 * partly covered is merged: the parent's blob is read from the repository
 * (never from the source) and decoded in a worker, which fills only the gaps.
 * Writes may come in any order and alignment; chunks are finalised when fully
 * covered, when writes move past them, or at close.
 */
import * as crypto from 'node:crypto';
import type { Backend, FileWriter } from './backends/backend.ts';
import { LocalBackend } from './backends/local.ts';
import { HOLE_HEX, HOLE_ID, ID_BYTES, SealedKind, chunkCount, encodeDiskIndex, encodeIndex, encodePackFooter, packPath } from './format.ts';
import type { BlobLocation, DiskIndex, PackEntry } from './format.ts';
import { RepositoryError, classifyFsError } from './errors.ts';
import type { Lock } from './locks.ts';
import { ChunkPool } from './pool.ts';
import type { Repository } from './repository.ts';
import { assertSafeName, newRestorePointId, sealFor } from './repository.ts';
import type { DiskManifest, Manifest, RestorePointRef, WriteStats } from './types.ts';
import { addStats, emptyStats } from './types.ts';

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

export interface DiskOptions {
  key: string;
  capacity: number;
  /** 'changed' (default when a parent exists): only changed areas are written, the rest comes from the parent.
   *  'full': the caller writes everything that is not zero; unwritten areas are zero. */
  mode?: 'changed' | 'full';
  /** Disk key in the parent restore point (default: same key). */
  parentKey?: string;
  format?: string;
  controller?: string;
  changeId?: string;
  transport?: string;
  /** Compute a flat SHA-256 of the image; requires mode 'full' and strictly sequential writes. */
  fullImageSha256?: boolean;
}

class PackWriter {
  private fw: FileWriter | null = null;
  private packId = '';
  private entries: PackEntry[] = [];
  private readonly commits: Promise<void>[] = [];
  private readonly writers: FileWriter[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  readonly written: string[] = [];
  constructor(
    private readonly backend: Backend,
    private readonly target: number,
  ) {}

  /** Serialised append; resolves once the data has been handed to the backend. */
  append(id: Buffer, data: Buffer, rawLen: number): Promise<BlobLocation> {
    const run = async (): Promise<BlobLocation> => {
      if (!this.fw) {
        this.packId = crypto.randomBytes(16).toString('hex');
        this.fw = await this.backend.openWriter(packPath(this.packId));
        this.entries = [];
      }
      const offset = this.fw.size;
      await this.fw.write(data);
      this.entries.push({ id, offset, storedLen: data.length, rawLen });
      const loc = { pack: this.packId, offset, storedLen: data.length, rawLen };
      if (this.fw.size >= this.target) await this.rotate();
      return loc;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async rotate(): Promise<void> {
    const fw = this.fw;
    if (!fw) return;
    this.fw = null;
    await fw.write(encodePackFooter(this.entries));
    this.written.push(this.packId);
    this.writers.push(fw);
    const c = fw.commit();
    c.catch(() => undefined);
    this.commits.push(c);
  }

  async finish(): Promise<void> {
    await this.chain;
    await this.rotate();
    await Promise.all(this.commits);
  }

  async abort(): Promise<void> {
    await this.chain.catch(() => undefined);
    if (this.fw) await this.fw.abort();
    this.fw = null;
    await Promise.allSettled(this.commits);
    // Failed commits leave their tmp file: abort() removes it (a no-op after a successful commit).
    for (const w of this.writers) await w.abort();
    for (const p of this.written) await this.backend.remove(packPath(p)).catch(() => undefined);
  }
}

interface PendingChunk {
  slot: number;
  covered: number[]; // sorted, merged [start,end) pairs
}

function addInterval(iv: number[], s: number, e: number): void {
  const out: number[] = [];
  let placed = false;
  for (let i = 0; i < iv.length; i += 2) {
    const a = iv[i]!;
    const b = iv[i + 1]!;
    if (b < s) out.push(a, b);
    else if (a > e) {
      if (!placed) {
        out.push(s, e);
        placed = true;
      }
      out.push(a, b);
    } else {
      s = Math.min(s, a);
      e = Math.max(e, b);
    }
  }
  if (!placed) out.push(s, e);
  iv.length = 0;
  iv.push(...out);
}

function gapsOf(iv: number[], len: number): number[] {
  const gaps: number[] = [];
  let pos = 0;
  for (let i = 0; i < iv.length; i += 2) {
    if (iv[i]! > pos) gaps.push(pos, iv[i]!);
    pos = iv[i + 1]!;
  }
  if (pos < len) gaps.push(pos, len);
  return gaps;
}

let ZERO = Buffer.alloc(0);
function zeroBuf(n: number): Buffer {
  if (ZERO.length < n) ZERO = Buffer.alloc(n);
  return ZERO.subarray(0, n);
}
export function isZero(b: Buffer): boolean {
  return b.equals(zeroBuf(b.length));
}

export class DiskWriter {
  readonly key: string;
  readonly capacity: number;
  readonly chunkSize: number;
  readonly mode: 'changed' | 'full';
  readonly stats: WriteStats = emptyStats();
  /** Current chunk ids (32 bytes each); starts as the parent's list or holes. */
  readonly ids: Buffer;
  private readonly touched: Uint8Array;
  private readonly pending = new Map<number, PendingChunk>();
  private readonly inflight = new Set<Promise<void>>();
  private error: unknown = null;
  private closed = false;
  private readonly startedAt = new Date();
  private closedAt: Date | null = null;
  private readonly flatHash: crypto.Hash | null;
  private flatPos = 0;
  manifest: DiskManifest | null = null;

  constructor(
    private readonly rp: RestorePointWriter,
    readonly opts: DiskOptions,
    base: DiskIndex | null,
  ) {
    this.key = opts.key;
    this.capacity = opts.capacity;
    this.chunkSize = rp.repo.config.chunkSize;
    this.mode = opts.mode ?? (base ? 'changed' : 'full');
    const n = chunkCount(this.capacity, this.chunkSize);
    this.ids = Buffer.alloc(n * ID_BYTES);
    this.touched = new Uint8Array(n);
    this.flatHash = opts.fullImageSha256 ? crypto.createHash('sha256') : null;
    if (base && this.mode === 'changed') {
      base.ids.copy(this.ids, 0, 0, Math.min(base.ids.length, this.ids.length));
      // A resized disk: the parent's last (short) chunk must be rewritten at full length.
      if (base.capacity !== this.capacity && base.capacity % this.chunkSize !== 0) {
        const last = Math.floor(base.capacity / this.chunkSize);
        if (last < n) this.forceMerge.add(last);
      }
    }
  }
  private readonly forceMerge = new Set<number>();

  private chunkLen(ci: number): number {
    return Math.min(this.chunkSize, this.capacity - ci * this.chunkSize);
  }

  private idHex(ci: number): string {
    return this.ids.toString('hex', ci * ID_BYTES, (ci + 1) * ID_BYTES);
  }

  private setId(ci: number, hex: string): void {
    this.ids.write(hex, ci * ID_BYTES, 'hex');
  }

  private check(): void {
    if (this.error) throw this.error;
    if (this.closed) throw new RepositoryError('INVALID_ARGUMENT', `disk ${this.key} is closed`);
  }

  /** Write changed (or, in full mode, all non-zero) bytes at `offset`. Any alignment. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check();
    if (offset < 0 || offset + data.length > this.capacity) throw new RepositoryError('INVALID_ARGUMENT', `write [${offset}, ${offset + data.length}) outside disk ${this.key} of ${this.capacity} bytes`);
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.stats.receivedBytes += buf.length;
    if (this.flatHash) {
      if (offset > this.flatPos) {
        this.hashZeros(offset - this.flatPos);
      } else if (offset < this.flatPos) throw new RepositoryError('INVALID_ARGUMENT', 'fullImageSha256 requires sequential writes');
      this.flatHash.update(buf);
      this.flatPos = offset + buf.length;
    }
    await this.flushBefore(offset);
    const cs = this.chunkSize;
    let pos = offset;
    let i = 0;
    while (i < buf.length) {
      const ci = Math.floor(pos / cs);
      const within = pos - ci * cs;
      const clen = this.chunkLen(ci);
      const n = Math.min(clen - within, buf.length - i);
      const part = buf.subarray(i, i + n);
      this.touched[ci] = 1;
      if (within === 0 && n === clen && !this.pending.has(ci)) {
        this.forceMerge.delete(ci);
        if (isZero(part)) {
          this.setHole(ci);
        } else {
          const slot = await this.rp.pool.acquire();
          part.copy(this.rp.pool.input, slot * cs);
          this.dispatch(ci, slot, clen, null);
        }
      } else {
        let p = this.pending.get(ci);
        if (!p) {
          if (this.pending.size >= this.rp.pool.slots / 2) await this.flushOldest();
          p = { slot: await this.rp.pool.acquire(), covered: [] };
          this.pending.set(ci, p);
        }
        part.copy(this.rp.pool.input, p.slot * cs + within);
        addInterval(p.covered, within, within + n);
        if (p.covered.length === 2 && p.covered[0] === 0 && p.covered[1] === clen) {
          this.pending.delete(ci);
          this.forceMerge.delete(ci);
          const slotBuf = this.rp.pool.inSlot(p.slot, clen);
          if (isZero(slotBuf)) {
            this.rp.pool.release(p.slot);
            this.setHole(ci);
          } else this.dispatch(ci, p.slot, clen, null);
        }
      }
      pos += n;
      i += n;
    }
  }

  /** Declare [offset, offset+length) all-zero / unallocated (e.g. CBT-reported holes). */
  async markZero(offset: number, length: number): Promise<void> {
    this.check();
    const cs = this.chunkSize;
    let pos = offset;
    const end = Math.min(offset + length, this.capacity);
    while (pos < end) {
      const ci = Math.floor(pos / cs);
      const within = pos - ci * cs;
      const n = Math.min(this.chunkLen(ci) - within, end - pos);
      if (within === 0 && n === this.chunkLen(ci) && !this.pending.has(ci)) {
        this.touched[ci] = 1;
        this.forceMerge.delete(ci);
        this.stats.receivedBytes += n;
        this.setHole(ci);
      } else {
        await this.write(pos, zeroBuf(n));
      }
      pos += n;
    }
  }

  private hashZeros(n: number): void {
    while (n > 0) {
      const k = Math.min(n, 1 << 20);
      this.flatHash!.update(zeroBuf(k));
      n -= k;
    }
  }

  private setHole(ci: number): void {
    HOLE_ID.copy(this.ids, ci * ID_BYTES);
    this.stats.zeroChunks++;
    this.stats.zeroBytes += this.chunkLen(ci);
  }

  private async flushBefore(offset: number): Promise<void> {
    if (this.pending.size === 0) return;
    const limit = Math.floor(offset / this.chunkSize);
    for (const ci of [...this.pending.keys()]) if (ci < limit) await this.finalize(ci);
  }

  private async flushOldest(): Promise<void> {
    const first = Math.min(...this.pending.keys());
    await this.finalize(first);
  }

  /** Finalise a partly covered chunk: fill its gaps from the base (parent or current) data. */
  private async finalize(ci: number): Promise<void> {
    const p = this.pending.get(ci);
    if (!p) return;
    this.pending.delete(ci);
    this.forceMerge.delete(ci);
    const clen = this.chunkLen(ci);
    const gaps = gapsOf(p.covered, clen);
    const baseHex = this.idHex(ci);
    if (baseHex === HOLE_HEX) {
      const slotBuf = this.rp.pool.inSlot(p.slot, clen);
      for (let g = 0; g < gaps.length; g += 2) slotBuf.fill(0, gaps[g], gaps[g + 1]);
      if (isZero(slotBuf)) {
        this.rp.pool.release(p.slot);
        this.setHole(ci);
        return;
      }
      this.dispatch(ci, p.slot, clen, null);
      return;
    }
    let blobLen: number;
    try {
      blobLen = await this.rp.readBaseIntoSlot(baseHex, p.slot);
    } catch (err) {
      this.rp.pool.release(p.slot);
      throw err;
    }
    this.stats.mergedChunks++;
    this.stats.baseReadBytes += blobLen;
    this.dispatch(ci, p.slot, clen, { blobLen, gaps });
  }

  private dispatch(ci: number, slot: number, len: number, merge: { blobLen: number; gaps: number[] } | null): void {
    const pool = this.rp.pool;
    const checkKnown = true;
    const job = (async () => {
      try {
        let r = merge ? await pool.mergeStore(slot, len, merge.blobLen, merge.gaps, checkKnown) : await pool.store(slot, len, checkKnown);
        this.stats.hashedChunks++;
        if (r.dup && !this.rp.has(r.id)) r = await pool.store(slot, len, false); // worker knew it, repository no longer does
        if (r.dup || this.rp.has(r.id)) {
          this.stats.dedupedChunks++;
          this.stats.dedupedBytes += len;
        } else {
          await this.rp.addBlob(r.id, pool.outSlot(slot, r.storedLen), len);
          this.stats.newChunks++;
          this.stats.newRawBytes += len;
          this.stats.newStoredBytes += r.storedLen;
        }
        this.setId(ci, r.id);
      } catch (err) {
        this.error ??= classifyFsError(err, `disk ${this.key}`);
      } finally {
        pool.release(slot);
      }
    })();
    this.inflight.add(job);
    void job.then(() => this.inflight.delete(job));
  }

  /** Finish all chunks of this disk. Idempotent. */
  async close(): Promise<DiskManifest> {
    if (this.manifest) return this.manifest;
    if (this.error) throw this.error;
    for (const ci of this.forceMerge) {
      // Resized disk: rewrite the parent's short last chunk at its new length (gaps become parent data + zeros).
      if (!this.pending.has(ci)) {
        this.pending.set(ci, { slot: await this.rp.pool.acquire(), covered: [] });
      }
    }
    for (const ci of [...this.pending.keys()].sort((a, b) => a - b)) await this.finalize(ci);
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.error) throw this.error;
    this.closed = true;
    if (this.flatHash && this.flatPos < this.capacity) this.hashZeros(this.capacity - this.flatPos);
    const n = this.touched.length;
    for (let ci = 0; ci < n; ci++) {
      if (this.touched[ci]) continue;
      if (this.mode === 'full') {
        this.setHole(ci);
      } else if (this.idHex(ci) === HOLE_HEX) {
        this.stats.zeroChunks++;
        this.stats.zeroBytes += this.chunkLen(ci);
      } else {
        this.stats.reusedChunks++;
        this.stats.reusedBytes += this.chunkLen(ci);
      }
    }
    this.closedAt = new Date();
    this.manifest = {
      key: this.key,
      file: '',
      indexSha256: '',
      capacity: this.capacity,
      chunkSize: this.chunkSize,
      format: this.opts.format,
      controller: this.opts.controller,
      changeId: this.opts.changeId,
      transport: this.opts.transport,
      mode: this.mode,
      imageDigest: crypto.createHash('sha256').update(this.ids).digest('hex'),
      sha256: this.flatHash ? this.flatHash.digest('hex') : undefined,
      stats: this.stats,
      timings: { startedAt: this.startedAt.toISOString(), closedAt: this.closedAt.toISOString(), durationMs: this.closedAt.getTime() - this.startedAt.getTime() },
    };
    return this.manifest;
  }

  fail(err: unknown): void {
    this.error ??= err;
  }
}

export class RestorePointWriter {
  readonly id: string;
  readonly vmId: string;
  readonly pool: ChunkPool;
  private readonly packs: PackWriter;
  private readonly session = new Map<string, BlobLocation>();
  private readonly disks: DiskWriter[] = [];
  private parentManifest: Manifest | null = null;
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
    const lock = await repo.locks.acquire('shared', `backup ${opts.vmId}`);
    try {
      // The index may have grown since open: re-read it under the lock so dedup
      // never references a chunk that a GC (which needed an exclusive lock) removed.
      await repo.reloadIndex();
      const pool = await ChunkPool.take({ workers: repo.workers, slots: opts.slots ?? 32, chunkSize: repo.config.chunkSize, level: repo.config.compression.level, hash: repo.config.hash, keys: repo.keys });
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
  async readBaseIntoSlot(id: string, slot: number): Promise<number> {
    const loc = this.repo.index.get(id);
    if (loc) {
      const into = this.pool.outSlot(slot, loc.storedLen);
      const be = this.repo.backend;
      if (be instanceof LocalBackend) be.readRangeDirect(packPath(loc.pack), loc.offset, loc.storedLen, into);
      else into.set(await be.readRange(packPath(loc.pack), loc.offset, loc.storedLen));
      return loc.storedLen;
    }
    // Written earlier in this session (out-of-order writes): make it readable first.
    throw new RepositoryError('INVALID_ARGUMENT', `chunk rewritten out of order within one session (chunk ${id}); write each area once`);
  }

  async openDisk(opts: DiskOptions): Promise<DiskWriter> {
    if (this.done) throw new RepositoryError('INVALID_ARGUMENT', 'restore point writer is finished');
    if (this.disks.some((d) => d.key === opts.key)) throw new RepositoryError('INVALID_ARGUMENT', `disk ${opts.key} already opened`);
    if (!Number.isSafeInteger(opts.capacity) || opts.capacity <= 0) throw new RepositoryError('INVALID_ARGUMENT', 'capacity must be a positive integer');
    let base: DiskIndex | null = null;
    const pkey = opts.parentKey ?? opts.key;
    if (this.parentManifest && this.parentManifest.disks.some((d) => d.key === pkey)) {
      base = await this.repo.readDiskIndex(this.opts.parent!, pkey, this.parentManifest);
      if (base.chunkSize !== this.repo.config.chunkSize) base = null;
    }
    if (opts.mode === 'changed' && !base) {
      throw new RepositoryError('INVALID_ARGUMENT', `disk ${opts.key}: mode 'changed' needs a parent restore point containing disk ${pkey}`);
    }
    if (base) this.pool.setKnown(base.ids);
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
      if (this.session.size > 0) await be.writeFileAtomic(`index/${this.id}-${crypto.randomBytes(4).toString('hex')}.idx`, sealFor(this.repo, SealedKind.Index, encodeIndex(this.session)));
      const dir = this.repo.rpDir({ vmId: this.vmId, id: this.id });
      for (let i = 0; i < this.disks.length; i++) {
        const d = this.disks[i]!;
        const m = diskManifests[i]!;
        const file = `disk-${i}.didx`;
        const sealed = sealFor(this.repo, SealedKind.DiskIndex, encodeDiskIndex({ capacity: d.capacity, chunkSize: d.chunkSize, ids: d.ids }));
        await be.writeFileAtomic(`${dir}/${file}`, sealed);
        m.file = file;
        m.indexSha256 = crypto.createHash('sha256').update(sealed).digest('hex');
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
        transport: this.opts.transport,
        vm: this.opts.vm ?? null,
        labels: this.opts.labels ?? {},
        disks: diskManifests,
        stats: this.stats,
        timings: { startedAt: this.startedAt.toISOString(), committedAt: committedAt.toISOString(), durationMs: committedAt.getTime() - this.startedAt.getTime() },
      };
      await be.writeFileAtomic(`${dir}/manifest`, sealFor(this.repo, SealedKind.Manifest, Buffer.from(JSON.stringify(manifest))));
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
    if (this.repo.backend instanceof LocalBackend) this.repo.backend.dropFds();
  }
}
