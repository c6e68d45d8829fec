/**
 * Worker pool for the write hot path. Owns two SharedArrayBuffers split into
 * fixed slots: the input slot holds one chunk's plaintext (the writer stages
 * incoming writes directly into it), the output slot receives the compressed
 * (and encrypted) blob. Slots are recycled, so a backup touches a fixed set of
 * pages however large the disk is.
 */
import { Worker } from 'node:worker_threads';
import type { ChunkHash, Keys } from './format.ts';

export interface StoreResult {
  id: string;
  dup: boolean;
  storedLen: number;
  /** Where the stored bytes start in the slot's output area. */
  outOff: number;
  /** A new blob's sampled entropy in bits per byte (entropy-sample.mjs); 0 for a duplicate. */
  entropy: number;
}

export interface StoreJob {
  slot: number;
  len: number;
  checkKnown: boolean;
  /** Store only these [start,end) ranges of the slot, one blob each (default: the whole slot). */
  runs?: number[] | null;
  /** Merge first: the parent's stored blob `id` (blobLen bytes, raw length baseRawLen) sits at the start of the
   *  slot's output area; its bytes fill `gaps` ([start,end) pairs) of the slot. */
  merge?: { id: string; blobLen: number; baseRawLen: number; gaps: number[] } | null;
}

export interface PoolOptions {
  workers: number;
  slots: number;
  chunkSize: number;
  level: number;
  hash: ChunkHash;
  keys: Keys | null;
  /** Format v3: encrypted blobs carry their id as AAD (see bindsBlobIds). */
  bindIds: boolean;
  /** Decoding re-hashes each blob to prove its id (mustRehashIds), else checks zstd's frame checksum. */
  rehashIds: boolean;
}

/** One chunk to decode into an output stage (see chunk-worker.mjs); `where` names its place in errors, next to the blob's id. */
export type DecodeJob =
  | { where: string; dstOff: number; len: number; id: string; inOff: number; storedLen: number; rawLen: number; pieces?: undefined }
  | { where: string; dstOff: number; len: number; pieces: Array<{ start: number; len: number; hole: true } | { start: number; len: number; hole?: false; id: string; srcOff: number; inOff: number; storedLen: number; rawLen: number }> };

interface Pending {
  resolve: (r: StoreResult[]) => void;
  reject: (e: Error) => void;
  /** Set for a batch message: one settle per job, in order. */
  batch?: Array<{ resolve: (r: StoreResult[]) => void; reject: (e: Error) => void }>;
}

interface Queued {
  job: StoreJob;
  resolve: (r: StoreResult[]) => void;
  reject: (e: Error) => void;
}

/** Jobs per worker that make a batch worth sending at once, and the in-flight jobs per worker below which the queue goes anyway (see flushIfDue). */
const BATCH_JOBS_PER_WORKER = 4;
const LOW_WATER_PER_WORKER = 2;

export class ChunkPool {
  readonly slots: number;
  readonly chunkSize: number;
  readonly outSlotSize: number;
  readonly input: Buffer;
  readonly output: Buffer;
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly free: number[] = [];
  private readonly waiters: Array<(slot: number) => void> = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private failed: Error | null = null;

  private constructor(workers: number, slots: number, chunkSize: number) {
    this.slots = slots;
    this.chunkSize = chunkSize;
    // zstd bound + encryption overhead, rounded up.
    this.outSlotSize = chunkSize + (chunkSize >> 7) + 4096;
    const inSab = new SharedArrayBuffer(slots * chunkSize);
    const outSab = new SharedArrayBuffer(slots * this.outSlotSize);
    this.input = Buffer.from(inSab);
    this.output = Buffer.from(outSab);
    for (let i = 0; i < slots; i++) this.free.push(i);
    for (let i = 0; i < workers; i++) {
      // Workers are ref'd while a writer uses the pool (so an await on a worker
      // result keeps the process alive) and unref'd while idle (so a warm idle
      // pool never keeps a process from exiting).
      const w = new Worker(new URL('./chunk-worker.mjs', import.meta.url));
      this.workers.push(w);
      this.busy.push(0);
      w.on('message', (m: { op: string; seq: number; results: StoreResult[]; settled?: Array<{ results?: StoreResult[]; error?: string }>; message?: string }) => {
        if (m.op === 'ready') return;
        const p = this.pending.get(m.seq);
        if (!p) return;
        this.pending.delete(m.seq);
        if (p.batch) {
          this.busy[i] = (this.busy[i] ?? p.batch.length) - p.batch.length;
          p.batch.forEach((b, k) => {
            const r = m.settled?.[k];
            if (m.op === 'error' || !r) b.reject(new Error(m.message ?? 'worker returned no result'));
            else if (r.error !== undefined) b.reject(new Error(r.error));
            else b.resolve(r.results!);
          });
          this.flushIfDue();
          return;
        }
        this.busy[i] = (this.busy[i] ?? 1) - 1;
        if (m.op === 'error') p.reject(new Error(m.message));
        else p.resolve(m.results);
      });
      w.on('error', (err) => {
        this.failed = err;
        for (const p of this.pending.values()) for (const b of p.batch ?? [p]) b.reject(err);
        this.pending.clear();
        for (const q of this.queue.splice(0)) q.reject(err);
      });
    }
    this.inSab = inSab;
    this.outSab = outSab;
  }
  private readonly inSab: SharedArrayBuffer;
  private readonly outSab: SharedArrayBuffer;

  static async create(opts: PoolOptions): Promise<ChunkPool> {
    const pool = new ChunkPool(opts.workers, opts.slots, opts.chunkSize);
    await Promise.all(
      pool.workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const onMsg = (m: { op: string }) => {
              if (m.op === 'ready') {
                w.off('message', onMsg);
                resolve();
              }
            };
            w.on('message', onMsg);
            w.once('error', reject);
            w.postMessage({
              op: 'init',
              inSab: pool.inSab,
              outSab: pool.outSab,
              chunkSize: opts.chunkSize,
              outSlotSize: pool.outSlotSize,
              level: opts.level,
              hash: opts.hash,
              encKey: opts.keys ? new Uint8Array(opts.keys.enc) : null,
              idKey: opts.keys ? new Uint8Array(opts.keys.id) : null,
              bindIds: opts.bindIds,
              rehashIds: opts.rehashIds,
            });
          }),
      ),
    );
    return pool;
  }

  inSlot(slot: number, len = this.chunkSize): Buffer {
    return this.input.subarray(slot * this.chunkSize, slot * this.chunkSize + len);
  }

  /** `len` bytes at `off` in the slot's output area. */
  outAt(slot: number, off: number, len: number): Buffer {
    return this.output.subarray(slot * this.outSlotSize + off, slot * this.outSlotSize + off + len);
  }

  outSlot(slot: number, len: number): Buffer {
    return this.output.subarray(slot * this.outSlotSize, slot * this.outSlotSize + len);
  }

  /** Ids the workers treat as already stored (skip compression); typically the parent's index. */
  setKnown(ids: Buffer): void {
    for (const w of this.workers) w.postMessage({ op: 'known', ids: new Uint8Array(ids) });
  }

  get freeSlots(): number {
    return this.free.length;
  }

  acquire(): Promise<number> | number {
    if (this.failed) throw this.failed;
    const s = this.free.pop();
    if (s !== undefined) return s;
    this.flushIfDue(); // a slot comes back when a job in flight (or, when they run low, a queued one) is done
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  // ---- batching: store jobs queued while a batch is open go out as one message per worker ----
  private queue: Queued[] = [];
  private depth = 0;

  beginBatch(): void {
    this.depth++;
  }

  endBatch(): void {
    if (--this.depth > 0) return;
    this.depth = 0;
    this.flushIfDue();
  }

  /**
   * Send the queue once it is worth a message (a few jobs per worker) or when
   * the workers are about to run dry. Called when a batch closes, when a
   * result comes back and before waiting for a slot; so queued jobs never wait
   * longer than the jobs ahead of them. One message per job (one scattered
   * 64 KiB change per write, slots coming back one at a time) costs both
   * threads more than hashing and compressing the run itself.
   */
  private flushIfDue(): void {
    if (this.queue.length === 0) return;
    let inFlight = 0;
    for (const b of this.busy) inFlight += b;
    if (this.queue.length >= BATCH_JOBS_PER_WORKER * this.workers.length || inFlight < LOW_WATER_PER_WORKER * this.workers.length) this.flush();
  }

  /** Send queued store jobs now: split in contiguous runs, one message per worker. */
  flush(): void {
    if (this.queue.length === 0) return;
    const q = this.queue;
    this.queue = [];
    if (this.failed) {
      for (const x of q) x.reject(this.failed);
      return;
    }
    const per = Math.ceil(q.length / this.workers.length);
    for (let w = 0; w < this.workers.length && w * per < q.length; w++) {
      const part = q.slice(w * per, (w + 1) * per);
      const seq = ++this.seq;
      const wi = this.pick();
      this.busy[wi] = (this.busy[wi] ?? 0) + part.length;
      this.pending.set(seq, { resolve: () => undefined, reject: () => undefined, batch: part });
      this.workers[wi]!.postMessage({ op: 'batch', seq, jobs: part.map((x) => x.job) });
    }
  }

  release(slot: number): void {
    const w = this.waiters.shift();
    if (w) w(slot);
    else this.free.push(slot);
  }

  private pick(): number {
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) if ((this.busy[i] ?? 0) < (this.busy[best] ?? 0)) best = i;
    return best;
  }

  private submit(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<StoreResult[]> {
    if (this.failed) return Promise.reject(this.failed);
    const seq = ++this.seq;
    const wi = this.pick();
    this.busy[wi] = (this.busy[wi] ?? 0) + 1;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.workers[wi]!.postMessage({ ...msg, seq }, transfer);
    });
  }

  /** Decode stored blobs from `input` into `output` (both shared buffers); rejects with the first damaged chunk. */
  decode(input: SharedArrayBuffer, output: SharedArrayBuffer, jobs: DecodeJob[]): Promise<unknown> {
    return this.submit({ op: 'decode', inSab: input, outSab: output, jobs });
  }

  /** Hash, dedup-check and compress one slot (or the given runs of it), after an optional merge. */
  store(job: StoreJob): Promise<StoreResult[]> {
    if (this.depth === 0) return this.submit({ op: 'store', ...job });
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => this.queue.push({ job, resolve, reject }));
  }

  inUse = false;
  key = '';
  private static readonly idle = new Map<string, ChunkPool>();

  /**
   * Pools are kept warm per process (worker start-up costs ~0.3-0.5 s here):
   * a writer takes an idle pool with the same parameters or creates one, and
   * gives it back with `giveBack()`.
   */
  static async take(opts: PoolOptions): Promise<ChunkPool> {
    const key = JSON.stringify([opts.workers, opts.slots, opts.chunkSize, opts.level, opts.hash, opts.bindIds, opts.rehashIds, opts.keys?.enc.toString('hex') ?? '', opts.keys?.id.toString('hex') ?? '']);
    const idle = ChunkPool.idle.get(key);
    if (idle && !idle.failed) {
      ChunkPool.idle.delete(key);
      idle.inUse = true;
      for (const w of idle.workers) w.ref();
      idle.setKnown(Buffer.alloc(0));
      return idle;
    }
    const pool = await ChunkPool.create(opts);
    pool.key = key;
    pool.inUse = true;
    return pool;
  }

  async giveBack(): Promise<void> {
    this.inUse = false;
    if (this.failed || this.pending.size > 0 || this.free.length !== this.slots || ChunkPool.idle.has(this.key)) {
      await this.close();
      return;
    }
    for (const w of this.workers) w.unref();
    ChunkPool.idle.set(this.key, this);
  }

  /** Stop all idle worker pools (tests, clean shutdown). */
  static async shutdownIdle(): Promise<void> {
    const pools = [...ChunkPool.idle.values()];
    ChunkPool.idle.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
