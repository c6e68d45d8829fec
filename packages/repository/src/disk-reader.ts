/**
 * Reading a restore point's disk: random access with an LRU of decoded chunks
 * and read-ahead of stored blobs on sequential access, a Readable stream of the
 * whole image, and a fast sequential restore path into a file descriptor
 * (holes are skipped, so the target stays sparse).
 *
 * Stage reads are coalesced in read-coalescing.ts, sequential reads served by
 * the pipeline in read-ahead.ts, and the restore into a file is restore-to-file.ts.
 */
import { Readable } from 'node:stream';
import { HOLE_HEX, ID_BYTES, chunkCount } from './format.ts';
import type { Piece } from './format.ts';
import { ALIGN, giveSharedAligned, takeSharedAligned } from './backends/direct.ts';
import { ChunkPool } from './pool.ts';
import type { DecodeJob } from './pool.ts';
import type { DiskIndex } from './format.ts';
import { CorruptDataError, NotFoundError, RepositoryError } from './errors.ts';
import type { Repository } from './repository.ts';
import type { ExtentSink, ExtentSource, Manifest, RestorePointRef } from './types.ts';
import { StoredReader } from './read-coalescing.ts';
import type { StageReads } from './read-coalescing.ts';
import { SequentialStream, StreamCancelled } from './read-ahead.ts';
import { restoreToFile } from './restore-to-file.ts';

export interface ReaderOptions {
  /** Decoded chunks kept in memory (default 8). */
  cacheChunks?: number;
  /** Stored blobs fetched ahead on sequential access (default 4). */
  readAhead?: number;
}

export class DiskReader implements ExtentSource {
  readonly capacity: number;
  readonly chunkSize: number;
  readonly count: number;
  private readonly cache = new Map<number, Buffer>();
  private readonly prefetch = new Map<number, Promise<Buffer>>();
  private lastChunk = -2;

  private constructor(
    private readonly repo: Repository,
    readonly ref: RestorePointRef,
    readonly manifest: Manifest,
    readonly diskKey: string,
    private readonly index: DiskIndex,
    private readonly opts: Required<ReaderOptions>,
  ) {
    this.capacity = index.capacity;
    this.chunkSize = index.chunkSize;
    this.count = chunkCount(this.capacity, this.chunkSize);
  }

  static async open(repo: Repository, ref: RestorePointRef, diskKey: string, opts: ReaderOptions = {}): Promise<DiskReader> {
    const manifest = await repo.readManifest(ref);
    const index = await repo.readDiskIndex(ref, diskKey, manifest);
    return new DiskReader(repo, ref, manifest, diskKey, index, { cacheChunks: opts.cacheChunks ?? 8, readAhead: opts.readAhead ?? 4 });
  }

  chunkId(ci: number): string {
    return this.index.ids.toString('hex', ci * ID_BYTES, (ci + 1) * ID_BYTES);
  }

  chunkLen(ci: number): number {
    return Math.min(this.chunkSize, this.capacity - ci * this.chunkSize);
  }

  isHole(ci: number): boolean {
    return this.chunkId(ci) === HOLE_HEX;
  }

  /** Pieces of a split chunk (format v2), or undefined for a whole chunk or a hole. */
  piecesOf(ci: number): Piece[] | undefined {
    return this.index.pieces.get(ci);
  }

  /** Where chunk `ci` is, for error messages: `vm/restore point disk @offset`. */
  private where(ci: number): string {
    return `${this.ref.vmId}/${this.ref.id} ${this.diskKey} @${ci * this.chunkSize}`;
  }

  private what(id: string, ci: number): string {
    return `chunk ${id} (${this.where(ci)})`;
  }

  private readonly blobCache = new Map<string, Buffer>();
  /** A decoded blob for pieces (small LRU: neighbouring pieces usually share their parent blob). */
  private async decodedBlob(id: string, ci: number): Promise<Buffer> {
    const hit = this.blobCache.get(id);
    if (hit) return hit;
    const { stored, loc } = await this.repo.readStored(id);
    const out = Buffer.allocUnsafe(loc.rawLen);
    this.repo.decode(stored, id, loc.rawLen, out, this.what(id, ci));
    this.blobCache.set(id, out);
    while (this.blobCache.size > Math.max(4, this.opts.cacheChunks)) this.blobCache.delete(this.blobCache.keys().next().value!);
    return out;
  }

  private fetchStored(ci: number): Promise<Buffer> {
    const p = this.prefetch.get(ci);
    if (p) {
      this.prefetch.delete(ci);
      return p;
    }
    return this.repo.readStored(this.chunkId(ci)).then((r) => Buffer.from(r.stored));
  }

  private async decoded(ci: number): Promise<Buffer> {
    const hit = this.cache.get(ci);
    if (hit) {
      this.cache.delete(ci);
      this.cache.set(ci, hit);
      return hit;
    }
    const len = this.chunkLen(ci);
    let out: Buffer;
    const pieces = this.piecesOf(ci);
    if (pieces) {
      out = Buffer.allocUnsafe(len);
      for (const p of pieces) {
        if (p.id === HOLE_HEX) out.fill(0, p.start, p.start + p.len);
        else (await this.decodedBlob(p.id, ci)).copy(out, p.start, p.srcOff, p.srcOff + p.len);
      }
    } else if (this.isHole(ci)) out = Buffer.alloc(len);
    else {
      const stored = await this.fetchStored(ci);
      out = Buffer.allocUnsafe(len);
      const id = this.chunkId(ci);
      this.repo.decode(stored, id, this.repo.index.get(id)?.rawLen ?? len, out, this.what(id, ci));
    }
    if (ci === this.lastChunk + 1) this.startReadAhead(ci + 1);
    this.lastChunk = ci;
    this.cache.set(ci, out);
    while (this.cache.size > this.opts.cacheChunks) this.cache.delete(this.cache.keys().next().value!);
    return out;
  }

  private startReadAhead(from: number): void {
    for (let ci = from; ci < Math.min(this.count, from + this.opts.readAhead); ci++) {
      if (this.prefetch.has(ci) || this.cache.has(ci) || this.isHole(ci) || this.piecesOf(ci)) continue;
      const p = this.repo.readStored(this.chunkId(ci)).then((r) => Buffer.from(r.stored));
      p.catch(() => undefined);
      this.prefetch.set(ci, p);
    }
    if (this.prefetch.size > this.opts.readAhead * 4) {
      for (const k of this.prefetch.keys()) if (k < from) this.prefetch.delete(k);
    }
  }

  /**
   * Random-access read. Sequential reads of at least a chunk (each starting
   * where the previous ended) switch to the parallel restore pipeline of
   * `forEachExtent`, decoding ahead in the worker pool. `into` (at least
   * `length` bytes) is filled and returned instead of a new buffer: callers
   * that reuse one avoid a fresh allocation (and its page faults) per read.
   */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.capacity) throw new RepositoryError('INVALID_ARGUMENT', `read [${offset}, ${offset + length}) outside disk of ${this.capacity} bytes`);
    const sequential = offset === this.lastEnd && length >= this.chunkSize;
    this.lastEnd = offset + length;
    if (this.seq && (this.seq.pos !== offset || this.seq.isCancelled)) this.stopSequential();
    if (!this.seq) {
      this.sequentialReads = sequential ? this.sequentialReads + 1 : 0;
      if (this.sequentialReads >= 2) this.startSequential(offset);
    }
    if (into && into.length < length) throw new RepositoryError('INVALID_ARGUMENT', `read buffer of ${into.length} bytes is shorter than ${length}`);
    const out = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    this.inflight += 1;
    try {
      // The pipeline serves one reader reading in order. Concurrent reads (an NBD client with
      // several requests in flight, say) are served at random: it stops, and its in-flight read,
      // if any, finishes at random too.
      if (this.inflight > 1) {
        this.stopSequential();
        return await this.readRandom(offset, out);
      }
      if (this.seq) {
        const got = await this.readSequential(offset, out);
        if (got) return got;
      }
      return await this.readRandom(offset, out);
    } finally {
      this.inflight -= 1;
    }
  }

  private inflight = 0;

  private lastEnd = 0;
  private sequentialReads = 0;
  private seq: SequentialStream | null = null;

  private startSequential(offset: number): void {
    this.seq = new SequentialStream(this, offset);
  }

  private stopSequential(): void {
    this.seq?.cancel();
    this.seq = null;
    this.sequentialReads = 0;
  }

  /** Whether sequential reads are currently served by the parallel pipeline (diagnostics, tests). */
  get pipelined(): boolean {
    return this.seq !== null && !this.seq.isCancelled;
  }

  /** Stop any read-ahead pipeline (returns its workers); reads still work afterwards. */
  close(): void {
    this.stopSequential();
  }

  /** The pipeline's answer, or null when it was stopped meanwhile (the caller reads at random). */
  private async readSequential(offset: number, out: Buffer): Promise<Buffer | null> {
    const seq = this.seq!;
    try {
      return await seq.read(offset, out);
    } catch (err) {
      if (this.seq === seq) this.stopSequential();
      if (err instanceof StreamCancelled) return null;
      throw err;
    }
  }

  private async readRandom(offset: number, out: Buffer): Promise<Buffer> {
    const length = out.length;
    let pos = offset;
    while (pos < offset + length) {
      const ci = Math.floor(pos / this.chunkSize);
      const within = pos - ci * this.chunkSize;
      const n = Math.min(this.chunkLen(ci) - within, offset + length - pos);
      if (this.isHole(ci)) out.fill(0, pos - offset, pos - offset + n);
      else (await this.decoded(ci)).copy(out, pos - offset, within, within + n);
      pos += n;
    }
    return out;
  }

  /** The whole image as a stream of chunk-sized buffers. */
  stream(): Readable {
    async function* gen(self: DiskReader): AsyncGenerator<Buffer> {
      for (let ci = 0; ci < self.count; ci++) {
        if (self.isHole(ci)) yield Buffer.alloc(self.chunkLen(ci));
        else yield Buffer.from(await self.decoded(ci));
      }
    }
    return Readable.from(gen(this), { objectMode: false });
  }

  /**
   * Sequential decode of the whole image: calls `sink` for each run of
   * consecutive non-hole chunks (up to `runBytes`), in offset order; holes are
   * skipped (the sink sees gaps). The buffer passed to the sink is page-aligned
   * and reused after the sink returns/resolves — or, when the sink passes a
   * promise to `retain`, once that settles too: the next run's sink may then
   * start while this run's buffer is still being written (a rejected retained
   * promise fails the whole call).
   *
   * Pipeline (no per-chunk allocation): the main thread reads the stored blobs of
   * a stage into a shared input buffer (on the local backend with O_DIRECT, in
   * contiguous runs: packs hold a backup's blobs in disk order), the worker pool
   * decodes them straight into a shared output stage (two workers, half a stage
   * each), and the sink consumes stages in order while later ones are read and
   * decoded. STAGES stages are in flight.
   */
  async forEachExtent(sink: ExtentSink, runBytes = 4 * 1024 * 1024, fromChunk = 0): Promise<void> {
    const cs = this.chunkSize;
    const size = Math.max(runBytes - (runBytes % cs), cs);
    const perStage = size / cs;
    // Stored bytes of one stage: compressed blobs, plus alignment slack per read.
    const inputSize = size + 2 * cs + perStage * (2 * ALIGN + (cs >> 7) + 64) + ALIGN; // a split chunk may name up to 2x its size
    const STAGES = 4;
    const pool = await ChunkPool.take(this.repo.poolOptions());
    const io = new StoredReader(this.repo);
    const outs = Array.from({ length: STAGES }, () => takeSharedAligned(size));
    const ins = Array.from({ length: STAGES }, () => takeSharedAligned(inputSize));
    const free: Array<Promise<unknown>> = Array.from({ length: STAGES }, () => Promise.resolve());
    let chain: Promise<void> = Promise.resolve();
    let k = 0;
    let failed: unknown = null;
    try {
      let ci = fromChunk;
      while (ci < this.count && failed === null) {
        if (this.isHole(ci)) {
          ci++;
          continue;
        }
        await free[k];
        if (failed !== null) break;
        // Build one stage: consecutive non-hole chunks whose stored bytes fit the input buffer.
        const start = ci;
        const jobs: DecodeJob[] = [];
        const reads = io.begin(ins[k]!);
        let fill = 0;
        while (ci < this.count && fill + this.chunkLen(ci) <= size && !this.isHole(ci)) {
          const job = this.planDecode(ci, fill, reads);
          if (!job) break; // input buffer full: the stage ends here
          jobs.push(job);
          fill += this.chunkLen(ci);
          ci++;
        }
        if (jobs.length === 0) throw new RepositoryError('INVALID_ARGUMENT', `chunk ${ci} does not fit a restore stage`);
        const stage = k;
        const decoded = reads.run().then(() => {
          const half = Math.ceil(jobs.length / 2);
          const parts = jobs.length > 1 ? [jobs.slice(0, half), jobs.slice(half)] : [jobs];
          return Promise.all(parts.map((part) => pool.decode(ins[stage]!.sab, outs[stage]!.sab, part)));
        });
        decoded.catch(() => undefined);
        const offset = start * cs;
        const len = fill;
        const retained: Array<Promise<unknown>> = [];
        chain = chain.then(async () => {
          try {
            await decoded;
          } catch (err) {
            throw new CorruptDataError((err as Error).message, { cause: err });
          }
          await sink(offset, outs[stage]!.buf.subarray(0, len), (p) => {
            p.catch(() => undefined); // reported through `held`
            retained.push(p);
          });
        });
        chain.catch((err: unknown) => {
          failed ??= err;
        });
        const held = chain.then(() => Promise.all(retained));
        held.catch((err: unknown) => {
          failed ??= err;
        });
        free[k] = held.catch(() => undefined);
        k = (k + 1) % STAGES;
      }
      await chain;
      await Promise.all(free);
      if (failed !== null) throw failed;
    } finally {
      await Promise.allSettled([chain, ...free]);
      io.close();
      await pool.giveBack();
      for (const b of outs) giveSharedAligned(b);
      for (const b of ins) giveSharedAligned(b);
    }
  }

  /** The decode job for chunk `ci` at `dstOff` of a stage, queuing its blob reads; null when the input is full. */
  private planDecode(ci: number, dstOff: number, reads: StageReads): DecodeJob | null {
    const len = this.chunkLen(ci);
    const locate = (id: string) => {
      const loc = this.repo.index.get(id);
      if (!loc) throw new NotFoundError(this.what(id, ci));
      return loc;
    };
    const pieces = this.piecesOf(ci);
    if (!pieces) {
      const id = this.chunkId(ci);
      const loc = locate(id);
      const inOff = reads.add(id, loc);
      return inOff < 0 ? null : { where: this.where(ci), dstOff, len, id, inOff, storedLen: loc.storedLen, rawLen: loc.rawLen };
    }
    const mark = reads.mark();
    const out: Extract<DecodeJob, { pieces: unknown[] }>['pieces'] = [];
    for (const p of pieces) {
      if (p.id === HOLE_HEX) {
        out.push({ start: p.start, len: p.len, hole: true });
        continue;
      }
      const loc = locate(p.id);
      const inOff = reads.add(p.id, loc);
      if (inOff < 0) {
        reads.rewind(mark);
        return null;
      }
      out.push({ start: p.start, len: p.len, id: p.id, srcOff: p.srcOff, inOff, storedLen: loc.storedLen, rawLen: loc.rawLen });
    }
    return { where: this.where(ci), dstOff, len, pieces: out };
  }

  /**
   * Fast sequential restore into a raw image file (holes and all-zero blocks
   * are not written, so the file stays sparse): see restore-to-file.ts.
   */
  restoreToFile(path: string): Promise<number> {
    return restoreToFile(this, path);
  }
}
