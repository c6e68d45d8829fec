/**
 * Disk writer: one disk of a restore point, cut into chunks that go to the
 * worker pool to be hashed, compressed and stored (see restore-point-writer.ts
 * for how they become durable).
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
import { HOLE_HEX, HOLE_ID, ID_BYTES, SPLIT_ID, chunkCount, encodeDiskIndex } from './format.ts';
import type { DiskIndex, Piece } from './format.ts';
import { RepositoryError, classifyFsError } from './errors.ts';
import { addInterval, gapsOf, intersect } from './intervals.ts';
import type { ChunkPool, StoreJob } from './pool.ts';
import type { Repository } from './repository.ts';
import type { DiskManifest, WriteStats } from './types.ts';
import { addNewBlob, emptyChangedData, type ChangedDataStats } from './entropy.ts';
import { emptyStats } from './types.ts';

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

/** What a disk writer uses of its restore point writer (RestorePointWriter implements it). */
export interface DiskWriterSession {
  readonly repo: Repository;
  readonly pool: ChunkPool;
  has(id: string): boolean;
  addBlob(id: string, data: Buffer, rawLen: number): Promise<void>;
  readBaseIntoSlot(id: string, slot: number): Promise<{ storedLen: number; rawLen: number }>;
  decodeBase(id: string, stats: WriteStats): Promise<Buffer>;
  rawLen(id: string): number;
}

interface PendingChunk {
  slot: number;
  covered: number[]; // sorted, merged [start,end) pairs
}

/** Merge neighbouring pieces that continue the same blob (or are both zeros). */
function normalizePieces(ps: Piece[]): Piece[] {
  const out: Piece[] = [];
  for (const p of ps) {
    const q = out[out.length - 1];
    if (q && q.id === p.id && (p.id === HOLE_HEX || q.srcOff + q.len === p.srcOff)) q.len += p.len;
    else out.push({ ...p });
  }
  return out;
}

/** A partly changed chunk stored as pieces: new blobs for the changed runs, references for the rest. */
interface PiecePlan {
  /** Changed [start,end) runs (piece-aligned) that become new blobs. */
  runs: number[];
  /** The chunk's layout in order: base pieces, or a new run by its index in `runs` (as start/2). */
  layout: Array<Piece | number>;
}

/** Restore reads of a split chunk decode each distinct blob it names: keep that within 2x the chunk. */
const MAX_DECODE_FACTOR = 2;

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
  /** Compressibility and sampled entropy of the blobs this disk stored anew (recorded in its manifest). */
  readonly changedData: ChangedDataStats = emptyChangedData();
  /**
   * Milliseconds write()/writeFrom() spent waiting for a free chunk slot, i.e. for the workers to finish
   * hashing and compressing earlier chunks: the caller's "processing" share of the time (not recorded in
   * the manifest).
   */
  workerWaitMs = 0;
  /** How the disk was read, as recorded in its manifest: the transport it started with, and any it failed over to. */
  private transports: string[];
  /** Current chunk ids (32 bytes each); starts as the parent's list or holes. */
  readonly ids: Buffer;
  /** Split chunks (format v2): chunk -> pieces; starts as the parent's. */
  readonly pieces = new Map<number, Piece[]>();
  /** Partly changed chunks become pieces (v2, 'changed' mode, pieceSize < chunkSize). */
  private readonly piecesOn: boolean;
  private readonly pieceSize: number;
  private readonly baseCapacity: number;
  private readonly touched: Uint8Array;
  private readonly pending = new Map<number, PendingChunk>();
  private readonly inflight = new Set<Promise<void>>();
  /** The store job in flight per chunk. */
  private readonly jobs = new Map<number, Promise<void>>();
  private error: unknown = null;
  private closed = false;
  private readonly startedAt = new Date();
  private closedAt: Date | null = null;
  private readonly flatHash: crypto.Hash | null;
  private flatPos = 0;
  manifest: DiskManifest | null = null;

  constructor(
    private readonly rp: DiskWriterSession,
    readonly opts: DiskOptions,
    base: DiskIndex | null,
  ) {
    this.key = opts.key;
    this.capacity = opts.capacity;
    this.chunkSize = rp.repo.config.chunkSize;
    this.mode = opts.mode ?? (base ? 'changed' : 'full');
    this.transports = opts.transport ? [opts.transport] : [];
    const n = chunkCount(this.capacity, this.chunkSize);
    this.ids = Buffer.alloc(n * ID_BYTES);
    this.touched = new Uint8Array(n);
    this.flatHash = opts.fullImageSha256 ? crypto.createHash('sha256') : null;
    const cfg = rp.repo.config;
    this.pieceSize = cfg.pieceSize ?? this.chunkSize;
    this.piecesOn = cfg.version >= 2 && this.mode === 'changed' && this.pieceSize < this.chunkSize;
    this.baseCapacity = base && this.mode === 'changed' ? base.capacity : 0;
    if (base && this.mode === 'changed') {
      base.ids.copy(this.ids, 0, 0, Math.min(base.ids.length, this.ids.length));
      for (const [ci, ps] of base.pieces) if (ci < n) this.pieces.set(ci, ps);
      // A resized disk: a chunk whose length differs from the parent's (its old or new last chunk)
      // must be rewritten at the new length (parent data, then zeros).
      const baseCount = base.ids.length / ID_BYTES;
      for (const ci of [baseCount - 1, n - 1]) {
        if (ci >= 0 && ci < n && ci < baseCount && this.baseLen(ci) !== this.chunkLen(ci)) this.forceMerge.add(ci);
      }
    }
  }

  /** Wait for chunk `ci`'s store job (sending any queued jobs first). */
  private async waitJob(ci: number): Promise<void> {
    this.rp.pool.flush();
    await this.jobs.get(ci);
  }

  /** Length of chunk `ci`'s base: the parent's (0 past its end), or the full length once stored in this session. */
  private baseLen(ci: number): number {
    if (this.settled.has(ci)) return this.chunkLen(ci);
    return Math.max(0, Math.min(this.chunkSize, this.baseCapacity - ci * this.chunkSize));
  }
  /** Chunks whose id/pieces were set in this session (their base is now this session's content). */
  private readonly settled = new Set<number>();
  private readonly forceMerge = new Set<number>();

  private chunkLen(ci: number): number {
    return Math.min(this.chunkSize, this.capacity - ci * this.chunkSize);
  }

  private idHex(ci: number): string {
    return this.ids.toString('hex', ci * ID_BYTES, (ci + 1) * ID_BYTES);
  }

  private setId(ci: number, hex: string): void {
    this.settled.add(ci);
    this.pieces.delete(ci);
    this.ids.write(hex, ci * ID_BYTES, 'hex');
  }

  /** Record a chunk's pieces; collapses to a whole id or a hole when that is what they are. */
  private setPieces(ci: number, raw: Piece[], rawLenOf: (id: string) => number): void {
    const ps = normalizePieces(raw);
    const only = ps.length === 1 ? ps[0]! : null;
    if (only && only.id === HOLE_HEX) return this.setHole(ci);
    if (only && only.srcOff === 0 && rawLenOf(only.id) === only.len) return this.setId(ci, only.id);
    this.settled.add(ci);
    SPLIT_ID.copy(this.ids, ci * ID_BYTES);
    this.pieces.set(ci, ps);
    this.stats.splitChunks++;
  }

  /** The parent's content of [s,e) of chunk `ci` as pieces (zeros past the parent's end). */
  private basePieces(ci: number, s: number, e: number): Piece[] {
    const out: Piece[] = [];
    const dataEnd = Math.min(this.baseLen(ci), e);
    if (s < dataEnd) {
      const ps = this.pieces.get(ci);
      const hex = this.idHex(ci);
      if (ps) {
        for (const p of ps) {
          const a = Math.max(s, p.start);
          const b = Math.min(dataEnd, p.start + p.len);
          if (a < b) out.push({ start: a, len: b - a, id: p.id, srcOff: p.id === HOLE_HEX ? 0 : p.srcOff + (a - p.start) });
        }
      } else out.push({ start: s, len: dataEnd - s, id: hex, srcOff: hex === HOLE_HEX ? 0 : s });
    }
    const z = Math.max(s, dataEnd);
    if (z < e) out.push({ start: z, len: e - z, id: HOLE_HEX, srcOff: 0 });
    return out;
  }

  private check(): void {
    if (this.error) throw this.error;
    if (this.closed) throw new RepositoryError('INVALID_ARGUMENT', `disk ${this.key} is closed`);
  }

  /** Write changed (or, in full mode, all non-zero) bytes at `offset`. Any alignment. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await this.writeFrom(offset, buf.length, (into, at) => {
      buf.copy(into, 0, at - offset, at - offset + into.length);
    });
  }

  /**
   * Zero-copy write: `fill(into, diskOffset)` is called, in offset order, with
   * views of the writer's own chunk slots (shared memory the workers hash and
   * compress from) and must fill each completely with the disk's bytes at
   * `diskOffset` — e.g. `fs.readSync(fd, into, 0, into.length, diskOffset)` or
   * a source reader that reads into a caller-supplied buffer. Saves copying
   * every byte once more on the writer's thread. Same rules as `write()`.
   */
  async writeFrom(offset: number, length: number, fill: (into: Buffer, diskOffset: number) => void | Promise<void>): Promise<void> {
    this.check();
    if (offset < 0 || length < 0 || offset + length > this.capacity) throw new RepositoryError('INVALID_ARGUMENT', `write [${offset}, ${offset + length}) outside disk ${this.key} of ${this.capacity} bytes`);
    this.stats.receivedBytes += length;
    if (this.flatHash) {
      if (offset > this.flatPos) {
        this.hashZeros(offset - this.flatPos);
      } else if (offset < this.flatPos) throw new RepositoryError('INVALID_ARGUMENT', 'fullImageSha256 requires sequential writes');
      this.flatPos = offset + length;
    }
    const pool = this.rp.pool;
    // Store jobs of this call go to the workers in one message each (flushed before any wait on them).
    pool.beginBatch();
    try {
      await this.fillChunks(offset, length, fill);
    } finally {
      pool.endBatch();
    }
  }

  private async fillChunks(offset: number, length: number, fill: (into: Buffer, diskOffset: number) => void | Promise<void>): Promise<void> {
    await this.flushBefore(offset);
    const cs = this.chunkSize;
    const input = this.rp.pool.input;
    const fillAt = (view: Buffer, at: number): void | Promise<void> => {
      const r = fill(view, at);
      if (r && typeof (r as Promise<void>).then === 'function') this.rp.pool.flush(); // the source is slow: let the workers start
      return r;
    };
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const ci = Math.floor(pos / cs);
      const within = pos - ci * cs;
      const clen = this.chunkLen(ci);
      const n = Math.min(clen - within, end - pos);
      this.touched[ci] = 1;
      // A chunk written again in this session: its earlier store must land first (it is the base now).
      if (this.jobs.has(ci) && !this.pending.has(ci)) await this.waitJob(ci);
      if (within === 0 && n === clen && !this.pending.has(ci)) {
        this.forceMerge.delete(ci);
        const slot = await this.acquireSlot();
        const view = input.subarray(slot * cs, slot * cs + clen);
        try {
          await fillAt(view, pos);
        } catch (err) {
          this.rp.pool.release(slot);
          throw err;
        }
        this.flatHash?.update(view);
        if (isZero(view)) {
          this.rp.pool.release(slot);
          this.setHole(ci);
        } else this.dispatch(ci, { slot, len: clen }, null);
      } else {
        let p = this.pending.get(ci);
        if (!p) {
          if (this.pending.size >= this.rp.pool.slots / 2) await this.flushOldest();
          p = { slot: await this.acquireSlot(), covered: [] };
          this.pending.set(ci, p);
        }
        const view = input.subarray(p.slot * cs + within, p.slot * cs + within + n);
        await fillAt(view, pos);
        this.flatHash?.update(view);
        addInterval(p.covered, within, within + n);
        if (p.covered.length === 2 && p.covered[0] === 0 && p.covered[1] === clen) {
          this.pending.delete(ci);
          this.forceMerge.delete(ci);
          const slotBuf = this.rp.pool.inSlot(p.slot, clen);
          if (isZero(slotBuf)) {
            this.rp.pool.release(p.slot);
            this.setHole(ci);
          } else this.dispatch(ci, { slot: p.slot, len: clen }, null);
        }
      }
      pos += n;
    }
  }

  /** A chunk slot of the worker pool, timing the wait (workerWaitMs). */
  private async acquireSlot(): Promise<number> {
    const t0 = performance.now();
    const slot = await this.rp.pool.acquire();
    this.workerWaitMs += performance.now() - t0;
    return slot;
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
        if (this.jobs.has(ci)) await this.waitJob(ci);
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
    this.settled.add(ci);
    this.pieces.delete(ci);
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

  /**
   * Finalise a partly covered chunk. With pieces on, only the changed piece-sized
   * blocks are hashed and stored and the rest references the parent's blobs;
   * otherwise (or when the pieces would get too fragmented) the chunk is
   * completed from the parent's data and stored whole.
   */
  private async finalize(ci: number): Promise<void> {
    const p = this.pending.get(ci);
    if (!p) return;
    this.pending.delete(ci);
    this.forceMerge.delete(ci);
    const clen = this.chunkLen(ci);
    const gaps = gapsOf(p.covered, clen);
    let job: Omit<StoreJob, 'checkKnown'>;
    let plan: PiecePlan | null = null;
    try {
      plan = this.piecesOn ? this.planPieces(ci, p.covered, clen) : null;
      if (plan) {
        // Changed blocks that were only partly written need the parent's bytes for their gaps.
        const needed = intersect(gaps, plan.runs);
        const merge = needed.length > 0 ? await this.fillBase(ci, p.slot, needed) : null;
        if (!merge) this.dropZeroRuns(p.slot, plan);
        if (plan.runs.length === 0) {
          this.rp.pool.release(p.slot);
          this.setPieces(ci, plan.layout as Piece[], (id) => this.rp.rawLen(id));
          return;
        }
        job = { slot: p.slot, len: clen, runs: plan.runs, merge };
      } else {
        const merge = gaps.length > 0 ? await this.fillBase(ci, p.slot, gaps) : null;
        if (!merge && isZero(this.rp.pool.inSlot(p.slot, clen))) {
          this.rp.pool.release(p.slot);
          this.setHole(ci);
          return;
        }
        job = { slot: p.slot, len: clen, merge };
      }
    } catch (err) {
      this.rp.pool.release(p.slot);
      throw err;
    }
    this.dispatch(ci, job, plan);
  }

  /**
   * Pieces for a partly changed chunk, or null to store it whole (every block
   * changed, or the result would make a restore decode more than
   * MAX_DECODE_FACTOR x the chunk).
   */
  private planPieces(ci: number, covered: number[], clen: number): PiecePlan | null {
    const B = this.pieceSize;
    const nb = Math.ceil(clen / B);
    const touched = new Uint8Array(nb);
    for (let i = 0; i < covered.length; i += 2) {
      for (let b = Math.floor(covered[i]! / B); b * B < covered[i + 1]!; b++) touched[b] = 1;
    }
    if (touched.every((t) => t === 1)) return null;
    const runs: number[] = [];
    const layout: Array<Piece | number> = [];
    let cost = 0;
    const seen = new Set<string>();
    for (let b = 0; b < nb; ) {
      let e = b;
      while (e < nb && touched[e] === touched[b]) e++;
      const s0 = b * B;
      const e0 = Math.min(e * B, clen);
      if (touched[b]) {
        layout.push(runs.length / 2);
        runs.push(s0, e0);
        cost += e0 - s0;
      } else {
        for (const bp of this.basePieces(ci, s0, e0)) {
          layout.push(bp);
          if (bp.id !== HOLE_HEX && !seen.has(bp.id)) {
            seen.add(bp.id);
            cost += this.rp.rawLen(bp.id);
          }
        }
      }
      b = e;
    }
    if (cost > MAX_DECODE_FACTOR * clen || layout.length > 2 * nb) return null;
    return { runs, layout };
  }

  /** New runs that are all zeros become hole pieces instead of blobs. */
  private dropZeroRuns(slot: number, plan: PiecePlan): void {
    const input = this.rp.pool.inSlot(slot);
    const keep: number[] = [];
    const renumber = new Map<number, number>();
    for (let r = 0; r < plan.runs.length; r += 2) {
      const s = plan.runs[r]!;
      const e = plan.runs[r + 1]!;
      if (isZero(input.subarray(s, e))) continue;
      renumber.set(r / 2, keep.length / 2);
      keep.push(s, e);
    }
    if (keep.length === plan.runs.length) return;
    plan.layout = plan.layout.map((x) => {
      if (typeof x !== 'number') return x;
      const n = renumber.get(x);
      return n !== undefined ? n : { start: plan.runs[x * 2]!, len: plan.runs[x * 2 + 1]! - plan.runs[x * 2]!, id: HOLE_HEX, srcOff: 0 };
    });
    plan.runs = keep;
  }

  /**
   * Give `ranges` of the slot the parent's bytes. When they all come from one
   * whole parent blob (the common case) its stored bytes are read into the
   * slot's output area and the worker decodes them (returned merge job);
   * zeros are filled here; pieces of several blobs are decoded here.
   */
  private async fillBase(ci: number, slot: number, ranges: number[]): Promise<StoreJob['merge']> {
    const input = this.rp.pool.inSlot(slot);
    const hex = this.idHex(ci);
    if (!this.pieces.has(ci) && hex !== HOLE_HEX && ranges[0]! < this.baseLen(ci)) {
      const { storedLen, rawLen } = await this.rp.readBaseIntoSlot(hex, slot);
      this.stats.mergedChunks++;
      this.stats.baseReadBytes += storedLen;
      return { id: hex, blobLen: storedLen, baseRawLen: rawLen, gaps: ranges };
    }
    let read = false;
    for (let i = 0; i < ranges.length; i += 2) {
      for (const bp of this.basePieces(ci, ranges[i]!, ranges[i + 1]!)) {
        if (bp.id === HOLE_HEX) input.fill(0, bp.start, bp.start + bp.len);
        else {
          const plain = await this.rp.decodeBase(bp.id, this.stats);
          plain.copy(input, bp.start, bp.srcOff, bp.srcOff + bp.len);
          read = true;
        }
      }
    }
    if (read) this.stats.mergedChunks++;
    return null;
  }

  private dispatch(ci: number, job: Omit<StoreJob, 'checkKnown'>, plan: PiecePlan | null): void {
    const pool = this.rp.pool;
    const run = (async () => {
      try {
        let rs = await pool.store({ ...job, checkKnown: true });
        // A worker may know an id the repository no longer has: store for real (the slot is already merged).
        if (rs.some((r) => r.dup && !this.rp.has(r.id))) rs = await pool.store({ slot: job.slot, len: job.len, runs: job.runs ?? null, checkKnown: false });
        this.stats.hashedChunks += rs.length;
        for (let k = 0; k < rs.length; k++) {
          const r = rs[k]!;
          const rawLen = job.runs ? job.runs[k * 2 + 1]! - job.runs[k * 2]! : job.len;
          if (r.dup || this.rp.has(r.id)) {
            this.stats.dedupedChunks++;
            this.stats.dedupedBytes += rawLen;
          } else {
            await this.rp.addBlob(r.id, pool.outAt(job.slot, r.outOff, r.storedLen), rawLen);
            addNewBlob(this.changedData, rawLen, r.storedLen, r.entropy);
            this.stats.newChunks++;
            this.stats.newRawBytes += rawLen;
            this.stats.newStoredBytes += r.storedLen;
          }
        }
        if (!plan) this.setId(ci, rs[0]!.id);
        else {
          const runs = job.runs!;
          const layout = plan.layout.map((x) => (typeof x === 'number' ? { start: runs[x * 2]!, len: runs[x * 2 + 1]! - runs[x * 2]!, id: rs[x]!.id, srcOff: 0 } : x));
          this.setPieces(ci, layout, (id) => this.rp.rawLen(id));
        }
      } catch (err) {
        this.error ??= classifyFsError(err, `disk ${this.key}`);
      } finally {
        pool.release(job.slot);
      }
    })();
    this.inflight.add(run);
    this.jobs.set(ci, run);
    void run.then(() => {
      this.inflight.delete(run);
      if (this.jobs.get(ci) === run) this.jobs.delete(ci);
    });
  }

  /** Finish all chunks of this disk. Idempotent. */
  /** The rest of the disk is read another way (a failover): its manifest names both. */
  switchedTransport(transport: string): void {
    if (!this.transports.includes(transport)) this.transports.push(transport);
  }

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
    this.rp.pool.flush();
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.error) throw this.error;
    this.closed = true;
    if (this.flatHash && this.flatPos < this.capacity) this.hashZeros(this.capacity - this.flatPos);
    const n = this.touched.length;
    for (let ci = 0; ci < n; ci++) {
      if (this.touched[ci]) continue;
      if (this.mode === 'full') {
        this.setHole(ci);
      } else if (this.idHex(ci) === HOLE_HEX && !this.pieces.has(ci)) {
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
      transport: this.transports.length > 0 ? this.transports.join(',') : undefined,
      mode: this.mode,
      imageDigest: this.imageDigest(),
      sha256: this.flatHash ? this.flatHash.digest('hex') : undefined,
      stats: this.stats,
      changedData: this.changedData,
      timings: { startedAt: this.startedAt.toISOString(), closedAt: this.closedAt.toISOString(), durationMs: this.closedAt.getTime() - this.startedAt.getTime() },
    };
    return this.manifest;
  }

  fail(err: unknown): void {
    this.error ??= err;
  }

  /** The disk index as committed. */
  diskIndex(): DiskIndex {
    return { capacity: this.capacity, chunkSize: this.chunkSize, ids: this.ids, pieces: this.pieces };
  }

  /** v1: SHA-256 over the id list (`chunklist-sha256-v1`); v2: over the whole disk-index payload (`didx-sha256-v2`). */
  private imageDigest(): string {
    const v = this.rp.repo.config.version;
    return crypto.createHash('sha256').update(v === 1 ? this.ids : encodeDiskIndex(this.diskIndex(), v)).digest('hex');
  }
}
