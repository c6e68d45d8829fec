/**
 * streamOptimized VMDK writer (what a user downloads, what OVF import takes).
 *
 * Output layout, all sector (512 B) aligned, produced strictly front to back:
 *
 *   sector 0         sparse header: version 3, flags = new-line test | compressed | markers,
 *                    grainSize 128 (64 KiB), numGTEsPerGT 512, gdOffset = GD_AT_END,
 *                    compressAlgorithm 1 (deflate)
 *   sector 1..       embedded descriptor (createType "streamOptimized", one SPARSE extent)
 *   ..overHead       zero padding up to the first grain boundary
 *   per grain        { u64 lba; u32 size } + zlib data, padded to a sector — only grains
 *                    that are not all zero, in ascending LBA order
 *   per grain table  after the last grain of each 512-grain (32 MiB) window that has data:
 *                    GT marker { numSectors 4, size 0, type 1 } + 512 u32 grain sectors
 *   grain directory  GD marker { numSectors, 0, type 2 } + one u32 GT sector per window
 *                    (0 for windows without data)
 *   footer           FOOTER marker { 1, 0, 3 } + header copy with the real gdOffset
 *   end of stream    EOS marker: a zero sector
 *
 * Memory is bounded: two batches of grains (default 16 grains = 1 MiB each; the
 * next one is read and deflated while the current one is emitted), one grain
 * table (2 KiB) and the grain directory (4 bytes per 32 MiB of disk). Grains of
 * a batch are deflated concurrently on the libuv pool.
 */
import { Readable } from 'node:stream';
import { deflate } from 'node:zlib';
import { promisify } from 'node:util';
import { buildDescriptor } from './create.ts';
import type { DescriptorOptions } from './create.ts';
import { formatDescriptor } from './descriptor.ts';
import { VmdkRangeError } from './errors.ts';
import {
  COMPRESSION_DEFLATE,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  FLAG_NEWLINE_TEST,
  MARKER_FOOTER,
  MARKER_GD,
  MARKER_GT,
  encodeMetadataMarker,
  encodeSparseHeader,
} from './sparse-header.ts';
import type { SparseHeader } from './sparse-header.ts';
import type { ByteRange } from './types.ts';

const deflateAsync = promisify(deflate);

const SECTOR = 512;
const GRAIN_SECTORS = 128;
const GRAIN_BYTES = GRAIN_SECTORS * SECTOR;
const GTES = 512;

export interface DiskSource {
  /** Size in bytes; a size that is not a multiple of 512 is padded with zeros to a whole sector. */
  capacity: number;
  /**
   * Exactly `length` bytes at `offset`. The writer keeps the returned buffer while it
   * deflates (and reads the next batch meanwhile), so do not reuse or modify it afterwards.
   */
  read(offset: number, length: number): Promise<Buffer>;
  /** Ascending allocated ranges; when given, nothing outside them is read (it is written as unallocated). */
  allocatedExtents?(): AsyncIterable<ByteRange>;
}

export interface StreamOptimizedOptions extends Omit<DescriptorOptions, 'thinProvisioned' | 'changeTrackPath'> {
  /** zlib level 0..9, default 6. */
  compressionLevel?: number;
  /** File name recorded in the embedded descriptor's extent line. */
  fileName?: string;
  /** Grains read and compressed per batch (memory ~ 2 x batch x 64 KiB). Default 16. */
  batchGrains?: number;
  /** Filled in while the stream is produced: data grains written so far (64 KiB each; all-zero grains are not written). */
  stats?: { grains: number };
}

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

function pad(buf: Buffer, sectors: number): Buffer {
  const out = Buffer.alloc(sectors * SECTOR);
  buf.copy(out);
  return out;
}

/** Grain ranges [first, first+count) to read, ascending, each at most `batch` long. */
async function* grainBatches(source: DiskSource, totalGrains: number, batch: number): AsyncGenerator<{ first: number; count: number }> {
  const ranges: AsyncIterable<ByteRange> = source.allocatedExtents
    ? source.allocatedExtents()
    : (async function* () {
        yield { offset: 0, length: source.capacity };
      })();
  let next = 0;
  let lastOffset = -1;
  for await (const r of ranges) {
    if (r.offset < lastOffset) throw new VmdkRangeError(`allocatedExtents must be ascending: ${r.offset} after ${lastOffset}`);
    lastOffset = r.offset;
    if (r.length <= 0) continue;
    const g0 = Math.max(next, Math.floor(r.offset / GRAIN_BYTES));
    const g1 = Math.min(totalGrains, Math.ceil((r.offset + r.length) / GRAIN_BYTES));
    for (let g = g0; g < g1; g += batch) yield { first: g, count: Math.min(batch, g1 - g) };
    next = Math.max(next, g1);
  }
}

/** The bytes of a streamOptimized VMDK of `source`, as an async generator of chunks. */
export async function* streamOptimizedChunks(source: DiskSource, opts: StreamOptimizedOptions = {}): AsyncGenerator<Buffer> {
  const capacity = source.capacity;
  if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new VmdkRangeError(`capacity must be a positive integer, got ${capacity}`);
  const level = opts.compressionLevel ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new VmdkRangeError(`compressionLevel must be 0..9, got ${level}`);
  const batch = Math.max(1, Math.floor(opts.batchGrains ?? 16));

  const capSectors = Math.ceil(capacity / SECTOR);
  const totalGrains = Math.ceil(capSectors / GRAIN_SECTORS);
  const numGTs = Math.ceil(totalGrains / GTES);
  const gdSectors = Math.ceil((numGTs * 4) / SECTOR);

  const descriptor = buildDescriptor(
    'streamOptimized',
    [{ access: 'RW', sectors: capSectors, type: 'SPARSE', fileName: opts.fileName ?? 'disk.vmdk' }],
    opts,
  );
  const descText = Buffer.from(formatDescriptor(descriptor), 'utf8');
  const descSectors = Math.max(20, Math.ceil(descText.length / SECTOR)); // VMware reserves 20 sectors
  const overHead = roundUp(1 + descSectors, GRAIN_SECTORS);
  const header: SparseHeader = {
    version: 3,
    flags: FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS,
    capacity: capSectors,
    grainSize: GRAIN_SECTORS,
    descriptorOffset: 1,
    descriptorSize: descSectors,
    numGTEsPerGT: GTES,
    rgdOffset: 0,
    gdOffset: 'end',
    overHead,
    uncleanShutdown: 0,
    compressAlgorithm: COMPRESSION_DEFLATE,
  };

  yield encodeSparseHeader(header);
  yield pad(descText, descSectors);
  yield Buffer.alloc((overHead - 1 - descSectors) * SECTOR);
  let sector = overHead;

  const gd = Buffer.alloc(gdSectors * SECTOR);
  let gt = Buffer.alloc(GTES * 4);
  let gtIndex = -1;
  let gtUsed = false;
  const checkSector = (s: number): number => {
    if (s > 0xffffffff) throw new VmdkRangeError('streamOptimized output exceeds 2 TiB of compressed data (32-bit sector offsets)');
    return s;
  };
  function* flushTable(): Generator<Buffer> {
    if (gtIndex < 0 || !gtUsed) return;
    yield encodeMetadataMarker(MARKER_GT, (GTES * 4) / SECTOR);
    sector += 1;
    gd.writeUInt32LE(checkSector(sector), gtIndex * 4);
    yield gt;
    sector += (GTES * 4) / SECTOR;
    gt = Buffer.alloc(GTES * 4);
    gtUsed = false;
  }

  const zero = Buffer.alloc(GRAIN_BYTES);
  type Batch = { grains: number[]; compressed: Promise<Buffer[]> };
  const batches = grainBatches(source, totalGrains, batch)[Symbol.asyncIterator]();
  // Read a batch, drop all-zero grains and start deflating the rest on the libuv pool.
  const load = async (): Promise<Batch | undefined> => {
    const next = await batches.next();
    if (next.done) return undefined;
    const { first, count } = next.value;
    const start = first * GRAIN_BYTES;
    const length = Math.min(count * GRAIN_BYTES, capacity - start);
    const data = await source.read(start, length);
    if (data.length !== length) throw new VmdkRangeError(`source returned ${data.length} bytes for a read of ${length} at ${start}`);
    const grains: number[] = [];
    const jobs: Promise<Buffer>[] = [];
    for (let i = 0; i < count; i++) {
      let bytes = data.subarray(i * GRAIN_BYTES, Math.min(length, (i + 1) * GRAIN_BYTES));
      if (bytes.length === 0) break;
      if (bytes.length < GRAIN_BYTES) bytes = pad(bytes, GRAIN_SECTORS); // last grain: zero-fill the tail
      if (bytes.equals(zero)) continue;
      grains.push(first + i);
      jobs.push(deflateAsync(bytes, { level }));
    }
    const compressed = Promise.all(jobs);
    compressed.catch(() => {}); // awaited below; never an unhandled rejection if the consumer stops early
    return { grains, compressed };
  };
  const prefetch = (): Promise<Batch | undefined> => {
    const p = load();
    p.catch(() => {});
    return p;
  };

  // One batch is read and compressed ahead while the current one is emitted.
  let pending = prefetch();
  for (;;) {
    const current = await pending;
    if (!current) break;
    pending = prefetch();
    const compressed = await current.compressed;
    for (const [i, g] of current.grains.entries()) {
      const c = compressed[i];
      if (!c) continue;
      const t = Math.floor(g / GTES);
      if (t !== gtIndex) {
        yield* flushTable();
        gtIndex = t;
      }
      const out = Buffer.alloc(roundUp(12 + c.length, SECTOR));
      out.writeBigUInt64LE(BigInt(g * GRAIN_SECTORS), 0);
      out.writeUInt32LE(c.length, 8);
      c.copy(out, 12);
      gt.writeUInt32LE(checkSector(sector), (g % GTES) * 4);
      gtUsed = true;
      if (opts.stats) opts.stats.grains++;
      yield out;
      sector += out.length / SECTOR;
    }
  }
  yield* flushTable();

  yield encodeMetadataMarker(MARKER_GD, gdSectors);
  sector += 1;
  const gdSector = checkSector(sector);
  yield gd;
  sector += gdSectors;
  yield encodeMetadataMarker(MARKER_FOOTER, 1);
  yield encodeSparseHeader({ ...header, gdOffset: gdSector });
  yield Buffer.alloc(SECTOR); // EOS marker
}

/** A Node Readable of a streamOptimized VMDK of `source` (pulled lazily, back-pressure aware). */
export function writeStreamOptimized(source: DiskSource, opts: StreamOptimizedOptions = {}): Readable {
  return Readable.from(streamOptimizedChunks(source, opts), { objectMode: false, highWaterMark: 1024 * 1024 });
}

/** The raw bytes of `source` as a stream; holes outside `allocatedExtents` are emitted as zeros without reading. */
export async function* rawChunks(source: DiskSource, opts: { chunkSize?: number } = {}): AsyncGenerator<Buffer> {
  const chunk = Math.max(SECTOR, opts.chunkSize ?? 1024 * 1024);
  const zeros = Buffer.alloc(chunk);
  const capacity = source.capacity;
  const ranges: AsyncIterable<ByteRange> = source.allocatedExtents
    ? source.allocatedExtents()
    : (async function* () {
        yield { offset: 0, length: capacity };
      })();
  let pos = 0;
  const emitZeros = function* (until: number): Generator<Buffer> {
    while (pos < until) {
      const n = Math.min(chunk, until - pos);
      yield zeros.subarray(0, n);
      pos += n;
    }
  };
  for await (const r of ranges) {
    const start = Math.max(pos, r.offset);
    const end = Math.min(capacity, r.offset + r.length);
    if (r.offset < pos && r.offset + r.length <= pos) continue;
    if (end <= start) continue;
    yield* emitZeros(start);
    while (pos < end) {
      const n = Math.min(chunk, end - pos);
      const data = await source.read(pos, n);
      if (data.length !== n) throw new VmdkRangeError(`source returned ${data.length} bytes for a read of ${n} at ${pos}`);
      yield data;
      pos += n;
    }
  }
  yield* emitZeros(capacity);
}

export function writeRaw(source: DiskSource, opts: { chunkSize?: number } = {}): Readable {
  return Readable.from(rawChunks(source, opts), { objectMode: false, highWaterMark: 1024 * 1024 });
}
