/**
 * Reading a restore point's disk: random access with an LRU of decoded chunks
 * and read-ahead of stored blobs on sequential access, a Readable stream of the
 * whole image, and a fast sequential restore path into a file descriptor
 * (holes are skipped, so the target stays sparse).
 */
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { HOLE_HEX, ID_BYTES, chunkCount, packPath } from './format.ts';
import { LocalBackend } from './backends/local.ts';
import { ALIGN, giveAligned, openDirect, takeAligned } from './backends/direct.ts';
import type { DiskIndex } from './format.ts';
import { NotFoundError, RepositoryError } from './errors.ts';
import type { Repository } from './repository.ts';
import type { Manifest, RestorePointRef } from './types.ts';

function writeAsync(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, 0, buf.length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

export interface ReaderOptions {
  /** Decoded chunks kept in memory (default 8). */
  cacheChunks?: number;
  /** Stored blobs fetched ahead on sequential access (default 4). */
  readAhead?: number;
}

export class DiskReader {
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
    if (this.isHole(ci)) out = Buffer.alloc(len);
    else {
      const stored = await this.fetchStored(ci);
      out = Buffer.allocUnsafe(len);
      const id = this.chunkId(ci);
      this.repo.decode(stored, this.repo.index.get(id)?.rawLen ?? len, out, `chunk ${id} (${this.ref.vmId}/${this.ref.id} ${this.diskKey} @${ci * this.chunkSize})`);
    }
    if (ci === this.lastChunk + 1) this.startReadAhead(ci + 1);
    this.lastChunk = ci;
    this.cache.set(ci, out);
    while (this.cache.size > this.opts.cacheChunks) this.cache.delete(this.cache.keys().next().value!);
    return out;
  }

  private startReadAhead(from: number): void {
    for (let ci = from; ci < Math.min(this.count, from + this.opts.readAhead); ci++) {
      if (this.prefetch.has(ci) || this.cache.has(ci) || this.isHole(ci)) continue;
      const p = this.repo.readStored(this.chunkId(ci)).then((r) => Buffer.from(r.stored));
      p.catch(() => undefined);
      this.prefetch.set(ci, p);
    }
    if (this.prefetch.size > this.opts.readAhead * 4) {
      for (const k of this.prefetch.keys()) if (k < from) this.prefetch.delete(k);
    }
  }

  /** Random-access read. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.capacity) throw new RepositoryError('INVALID_ARGUMENT', `read [${offset}, ${offset + length}) outside disk of ${this.capacity} bytes`);
    const out = Buffer.allocUnsafe(length);
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
   * Sequential decode of the whole image with reused buffers: calls `sink` for
   * each run of consecutive non-hole chunks (up to `runBytes`), in offset
   * order; holes are skipped (the sink sees gaps). The buffer passed to the
   * sink is reused after it returns/resolves. On the local backend packs are
   * read through O_DIRECT windows (no fresh page-cache pages).
   */
  async forEachExtent(sink: (offset: number, data: Buffer) => void | Promise<void>, runBytes = 4 * 1024 * 1024): Promise<void> {
    const be = this.repo.backend;
    const win = be instanceof LocalBackend ? be.windowReader() : null;
    const size = Math.max(runBytes - (runBytes % this.chunkSize), this.chunkSize);
    // Two stages: the sink may still be consuming one (e.g. an async write) while we decode into the other.
    const stages = [takeAligned(size), takeAligned(size)];
    const busy: Array<Promise<void> | null> = [null, null];
    let cur = 0;
    const scratch = Buffer.allocUnsafe(this.chunkSize + (this.chunkSize >> 6) + 4096);
    let runStart = -1;
    let fill = 0;
    const flush = async () => {
      if (fill > 0) {
        const p = Promise.resolve(sink(runStart, stages[cur]!.subarray(0, fill)));
        p.catch(() => undefined);
        busy[cur] = p;
        cur ^= 1;
        if (busy[cur]) await busy[cur];
        busy[cur] = null;
      }
      runStart = -1;
      fill = 0;
    };
    try {
      for (let ci = 0; ci < this.count; ci++) {
        if (this.isHole(ci)) {
          await flush();
          continue;
        }
        const id = this.chunkId(ci);
        const loc = this.repo.index.get(id);
        if (!loc) throw new NotFoundError(`chunk ${id} (${this.ref.vmId}/${this.ref.id} ${this.diskKey} @${ci * this.chunkSize})`);
        const stored = win?.read(packPath(loc.pack), loc.offset, loc.storedLen) ?? (await this.repo.readStored(id, scratch)).stored;
        if (fill + this.chunkSize > size) await flush();
        if (runStart < 0) runStart = ci * this.chunkSize;
        fill += this.repo.decode(stored, loc.rawLen, stages[cur]!.subarray(fill, fill + this.chunkLen(ci)), `chunk ${id} (${this.ref.vmId}/${this.ref.id} ${this.diskKey} @${ci * this.chunkSize})`);
      }
      await flush();
      await Promise.all(busy.filter(Boolean));
    } finally {
      await Promise.allSettled(busy.filter(Boolean));
      win?.close();
      for (const s of stages) giveAligned(s);
    }
  }

  /**
   * Fast sequential restore into a raw image file. Holes are not written (the
   * file is sized to the capacity, so they read back as zeros). Aligned runs go
   * out with O_DIRECT where the filesystem supports it.
   */
  async restoreToFile(path: string): Promise<number> {
    const fd = fs.openSync(path, 'w');
    fs.ftruncateSync(fd, this.capacity);
    const dfd = openDirect(path, fs.constants.O_WRONLY);
    try {
      await this.forEachExtent(async (offset, data) => {
        const aligned = dfd !== null ? data.length - (data.length % ALIGN) : 0;
        let off = 0;
        // Aligned part: O_DIRECT in the libuv pool, overlapping the next run's decoding.
        while (off < aligned) off += await writeAsync(dfd!, data.subarray(off, aligned), offset + off);
        while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, offset + off);
      });
      if (dfd !== null) fs.fsyncSync(dfd);
      fs.fsyncSync(fd);
    } finally {
      if (dfd !== null) fs.closeSync(dfd);
      fs.closeSync(fd);
    }
    return this.capacity;
  }
}
