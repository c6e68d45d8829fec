/**
 * Forward-only decoder for a streamOptimized VMDK that arrives as one byte
 * stream, the way vSphere's HttpNfcLease export (ExportVm / ExportSnapshot)
 * sends a disk over HTTP: no Range requests, no seeking, chunks of any size.
 *
 * What the stream holds, front to back (every structure starts on a 512-byte
 * sector boundary counted from the first byte of the stream):
 *
 *   sector 0              sparse header (sparse-header.ts); version 3 with the
 *                         compressed-grains and markers flags, deflate compression
 *   descriptorOffset..    embedded descriptor text, descriptorSize sectors
 *   ..overHead            whatever else the producer put before the data (VMware: zeros;
 *                         qemu: its grain directory and tables) — skipped
 *   from overHead on      a sequence of markers, each beginning { u64 val; u32 size }:
 *     size != 0           a grain: val is its first sector (LBA), `size` bytes of zlib
 *                         data follow, then zero padding to the next sector
 *     size == 0           metadata: one sector { u64 sectors; u32 0; u32 type; padding },
 *                         followed by `sectors` sectors of payload. type 1 grain table,
 *                         2 grain directory, 3 footer (a copy of the header),
 *                         0 end of stream (nothing is read after it)
 *
 * The grain tables and directory only say where grains sit in the file; a
 * sequential reader learns the same from the grain markers, so their payloads
 * are skipped. The footer is checked against the header.
 *
 * Checks: grains must be grain aligned, inside the capacity and in strictly
 * ascending order (exports write them so; anything else would be an overlap
 * or a rewind we cannot honour), each must inflate to exactly a grain (the last
 * grain of a disk whose size is not a grain multiple to the remainder, or to a
 * whole grain, which is then cut at the capacity), and the
 * stream must end with the end-of-stream marker. A grain's compressed size is
 * bounded before anything is buffered, so memory stays at about one compressed
 * grain, one inflated grain and the current input chunk, whatever the disk size.
 * Every failure is a VmdkError whose message names the byte position in the stream.
 *
 * Grains absent from the stream read as zeros; they are simply not yielded.
 */
import { inflate } from 'node:zlib';
import { promisify } from 'node:util';
import { VmdkBadMagicError, VmdkCorruptError, VmdkError, VmdkRangeError, VmdkTruncatedError, VmdkUnsupportedError } from './errors.ts';
import {
  COMPRESSION_DEFLATE,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  HEADER_SIZE,
  MARKER_EOS,
  MARKER_FOOTER,
  MARKER_GD,
  MARKER_GT,
  parseSparseHeader,
} from './sparse-header.ts';
import type { SparseHeader } from './sparse-header.ts';

const inflateAsync = promisify(inflate);

const SECTOR = 512;
/** Largest embedded descriptor we read (1 MiB), the same limit as the file reader's. */
const MAX_DESCRIPTOR_SECTORS = 2048;
const EMPTY = Buffer.alloc(0);

/** One grain of data from the stream. */
export interface StreamGrain {
  /** Byte offset of the grain in the disk (a multiple of the grain size). */
  offset: number;
  /** The inflated grain: `grainBytes` long, or shorter for the last grain of a disk that is not a grain multiple. */
  data: Buffer;
}

/** What the header (and the embedded descriptor) of the stream say. */
export interface StreamOptimizedInfo {
  /** Disk size in bytes. */
  capacity: number;
  /** Grain size in bytes. */
  grainBytes: number;
  /** The parsed sparse header (sizes in sectors). */
  header: SparseHeader;
  /** Embedded descriptor text (up to its first NUL), or undefined when the stream has none. */
  descriptor: string | undefined;
}

export interface StreamOptimizedReadOptions {
  /** Refuse (VmdkRangeError) a disk whose capacity is larger than this many bytes. */
  maxCapacity?: number;
  /** Names the stream in error messages (e.g. the export URL or disk name); shown like a file path. */
  name?: string;
}

/** Pulls exact byte counts out of an async iterable of arbitrary chunks, counting the position. */
class ByteSource {
  private readonly it: AsyncIterator<Uint8Array>;
  private chunk: Buffer = EMPTY;
  private at = 0;
  private ended = false;
  /** Bytes consumed so far = stream position of the next byte. */
  position = 0;

  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly path: string | undefined,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Make sure the current chunk has unread bytes; false at the end of the source. */
  async more(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        this.chunk = EMPTY;
        this.at = 0;
        return false;
      }
      const v: unknown = r.value;
      if (!(v instanceof Uint8Array)) throw new TypeError(`streamOptimized source yielded ${typeof v}, expected Uint8Array chunks`);
      this.chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.at = 0;
    }
    return true;
  }

  private truncated(what: string, start: number, n: number): VmdkTruncatedError {
    return new VmdkTruncatedError(`streamOptimized stream ends at byte ${this.position} inside the ${what} (bytes ${start}..${start + n - 1})`, { path: this.path });
  }

  /**
   * Exactly `n` bytes. A slice of the current input chunk when it holds them all, else a copy.
   * The result is only valid until the next call (the source may be asked for more).
   */
  async read(n: number, what: string): Promise<Buffer> {
    const start = this.position;
    if (n === 0) return EMPTY;
    if (!(await this.more())) throw this.truncated(what, start, n);
    if (this.chunk.length - this.at >= n) {
      const out = this.chunk.subarray(this.at, this.at + n);
      this.at += n;
      this.position += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!(await this.more())) throw this.truncated(what, start, n);
      const take = Math.min(n - got, this.chunk.length - this.at);
      this.chunk.copy(out, got, this.at, this.at + take);
      this.at += take;
      got += take;
      this.position += take;
    }
    return out;
  }

  /** Discard `n` bytes without keeping them. */
  async skip(n: number, what: string): Promise<void> {
    const start = this.position;
    let left = n;
    while (left > 0) {
      if (!(await this.more())) throw this.truncated(what, start, n);
      const take = Math.min(left, this.chunk.length - this.at);
      this.at += take;
      left -= take;
      this.position += take;
    }
  }

  /** Stop reading and let the source release what it holds (e.g. an HTTP connection). */
  async close(): Promise<void> {
    this.chunk = EMPTY;
    this.at = 0;
    if (this.ended) return;
    this.ended = true;
    await this.it.return?.();
  }
}

/** Re-raise a header/footer validation error with the stream position in front, keeping its code. */
function withPosition(e: unknown, prefix: string, path: string | undefined, footer = false): unknown {
  if (!(e instanceof VmdkError)) return e;
  const message = `${prefix}: ${e.message}`;
  if (footer || e.code === 'CORRUPT') return new VmdkCorruptError(message, { path });
  if (e.code === 'BAD_MAGIC') return new VmdkBadMagicError(message, { path });
  if (e.code === 'UNSUPPORTED') return new VmdkUnsupportedError(message, { path });
  return e;
}

/**
 * Sequential streamOptimized decoder. Typical use:
 *
 *   const disk = readStreamOptimized(response.body, { maxCapacity });
 *   const { capacity } = await disk.header();      // reads only the header and descriptor
 *   for await (const { offset, data } of disk) { ... } // grains in ascending offset order
 *
 * `header()` may be awaited any number of times (and is read on demand by the
 * iteration); the grains can be iterated once. When iteration ends — after the
 * end-of-stream marker, on an error, or because the consumer stopped — the
 * source iterator is closed (`return()`), so an HTTP body is released; nothing
 * after the end-of-stream marker is read.
 */
export class StreamOptimizedReader implements AsyncIterable<StreamGrain> {
  private readonly src: ByteSource;
  private readonly path: string | undefined;
  private readonly maxCapacity: number | undefined;
  private info: Promise<StreamOptimizedInfo> | undefined;
  private iterated = false;

  constructor(source: AsyncIterable<Uint8Array>, opts: StreamOptimizedReadOptions = {}) {
    this.path = opts.name;
    this.maxCapacity = opts.maxCapacity;
    this.src = new ByteSource(source, this.path);
  }

  /** Stream bytes consumed so far. */
  get position(): number {
    return this.src.position;
  }

  /** Header and embedded descriptor; reads no further than the first marker. */
  header(): Promise<StreamOptimizedInfo> {
    this.info ??= this.readHeader().catch(async (e: unknown) => {
      await this.src.close();
      throw e;
    });
    return this.info;
  }

  [Symbol.asyncIterator](): AsyncGenerator<StreamGrain, StreamOptimizedInfo, undefined> {
    return this.grains();
  }

  /** Close the source without reading on (for a caller that only wanted the header). */
  async close(): Promise<void> {
    await this.src.close();
  }

  private corrupt(message: string): VmdkCorruptError {
    return new VmdkCorruptError(`streamOptimized stream: ${message}`, { path: this.path });
  }

  private async readHeader(): Promise<StreamOptimizedInfo> {
    const src = this.src;
    const path = this.path;
    const raw = await src.read(HEADER_SIZE, 'sparse header');
    let header: SparseHeader;
    try {
      header = parseSparseHeader(raw);
    } catch (e) {
      throw withPosition(e, 'streamOptimized stream, header at byte 0', path);
    }
    if (header.version !== 3) {
      throw new VmdkUnsupportedError(`streamOptimized stream, header at byte 0: version ${header.version}, expected 3`, { path });
    }
    const missing = [
      (header.flags & FLAG_COMPRESSED) === 0 ? 'compressed grains (bit 16)' : '',
      (header.flags & FLAG_MARKERS) === 0 ? 'markers (bit 17)' : '',
    ].filter(Boolean);
    if (missing.length > 0) {
      throw new VmdkUnsupportedError(
        `streamOptimized stream, header at byte 0: flags 0x${header.flags.toString(16)} lack ${missing.join(' and ')}; not a streamOptimized disk`,
        { path },
      );
    }
    if (header.compressAlgorithm !== COMPRESSION_DEFLATE) {
      throw new VmdkUnsupportedError(`streamOptimized stream, header at byte 0: compression algorithm ${header.compressAlgorithm}, expected 1 (deflate)`, { path });
    }
    const capacity = header.capacity * SECTOR;
    if (this.maxCapacity !== undefined && capacity > this.maxCapacity) {
      throw new VmdkRangeError(`streamOptimized stream, header at byte 0: capacity ${capacity} bytes exceeds the allowed maximum of ${this.maxCapacity} bytes${path ? ` (${path})` : ''}`);
    }

    let descriptor: string | undefined;
    let dataStart = HEADER_SIZE;
    if (header.descriptorOffset > 0 && header.descriptorSize > 0) {
      if (header.descriptorSize > MAX_DESCRIPTOR_SECTORS) {
        throw this.corrupt(`header at byte 0: embedded descriptor of ${header.descriptorSize} sectors is implausibly large`);
      }
      const start = header.descriptorOffset * SECTOR;
      await src.skip(start - src.position, 'gap before the embedded descriptor');
      const text = await src.read(header.descriptorSize * SECTOR, 'embedded descriptor');
      const nul = text.indexOf(0);
      descriptor = text.subarray(0, nul >= 0 ? nul : text.length).toString('utf8');
      dataStart = start + text.length;
    }
    const firstMarker = header.overHead * SECTOR;
    if (firstMarker < dataStart) {
      throw this.corrupt(`header at byte 0: overHead ${header.overHead} sectors puts the first grain at byte ${firstMarker}, inside the header or descriptor (which end at byte ${dataStart})`);
    }
    await src.skip(firstMarker - src.position, 'space before the first grain (overHead)');
    return { capacity, grainBytes: header.grainSize * SECTOR, header, descriptor };
  }

  /**
   * The grains in stream order (ascending offsets). Returns the header info once the
   * end-of-stream marker has been read. Only one iteration per reader.
   */
  async *grains(): AsyncGenerator<StreamGrain, StreamOptimizedInfo, undefined> {
    if (this.iterated) throw new Error('the grains of a streamOptimized stream can be iterated only once');
    this.iterated = true;
    const src = this.src;
    try {
      const info = await this.header();
      const { header, capacity, grainBytes } = info;
      // zlib never grows data by more than a few bytes per 16 KiB plus its framing;
      // this bound is far above that and still keeps one marker's buffer near one grain.
      const maxCompressed = grainBytes + (grainBytes >>> 10) + 1024;
      let minLba = 0; // the next grain must start here or later
      for (;;) {
        const at = src.position;
        if (!(await src.more())) {
          throw new VmdkTruncatedError(`streamOptimized stream ends at byte ${at} without an end-of-stream marker`, { path: this.path });
        }
        const m = await src.read(12, `marker at byte ${at}`);
        const val = m.readBigUInt64LE(0);
        const size = m.readUInt32LE(8);

        if (size === 0) {
          const type = (await src.read(4, `metadata marker at byte ${at}`)).readUInt32LE(0);
          await src.skip(SECTOR - 16, `metadata marker at byte ${at}`);
          if (type === MARKER_EOS) return info;
          if (type !== MARKER_GT && type !== MARKER_GD && type !== MARKER_FOOTER) {
            throw this.corrupt(`metadata marker at byte ${at} has unknown type ${type}`);
          }
          if (val > BigInt(Math.floor(Number.MAX_SAFE_INTEGER / SECTOR))) throw this.corrupt(`metadata marker at byte ${at} announces ${val} sectors`);
          let sectors = Number(val);
          if (type === MARKER_FOOTER && sectors > 0) {
            const footerAt = src.position;
            let footer: SparseHeader;
            try {
              footer = parseSparseHeader(await src.read(HEADER_SIZE, `footer at byte ${footerAt}`));
            } catch (e) {
              throw withPosition(e, `streamOptimized stream, footer at byte ${footerAt}`, this.path, true);
            }
            if (footer.capacity !== header.capacity || footer.grainSize !== header.grainSize) {
              throw this.corrupt(
                `footer at byte ${footerAt} says capacity ${footer.capacity} sectors / grain ${footer.grainSize} sectors, the header ${header.capacity} / ${header.grainSize}`,
              );
            }
            sectors -= 1;
          }
          const kind = type === MARKER_GT ? 'grain table' : type === MARKER_GD ? 'grain directory' : 'footer';
          await src.skip(sectors * SECTOR, `${kind} after the marker at byte ${at}`);
          continue;
        }

        if (size > maxCompressed) {
          throw this.corrupt(`grain marker at byte ${at} announces ${size} compressed bytes, more than a ${grainBytes}-byte grain can need (${maxCompressed})`);
        }
        if (val >= BigInt(header.capacity)) {
          throw this.corrupt(`grain marker at byte ${at}: LBA ${val} lies beyond the capacity of ${header.capacity} sectors`);
        }
        const lba = Number(val);
        if (lba % header.grainSize !== 0) {
          throw this.corrupt(`grain marker at byte ${at}: LBA ${lba} is not a multiple of the grain size (${header.grainSize} sectors)`);
        }
        if (lba < minLba) {
          throw this.corrupt(
            `grain marker at byte ${at}: LBA ${lba} is out of order (overlaps or precedes the previous grain; the next grain may start at LBA ${minLba} at the earliest)`,
          );
        }
        const compressed = await src.read(size, `compressed grain at byte ${at}`);
        const offset = lba * SECTOR;
        const expected = Math.min(grainBytes, capacity - offset);
        let data: Buffer;
        try {
          data = await inflateAsync(compressed, { maxOutputLength: grainBytes });
        } catch (e) {
          const tooLarge = e instanceof RangeError && (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
          const why = tooLarge ? `inflates to more than the grain size (${grainBytes} bytes)` : `does not inflate: ${e instanceof Error ? e.message : String(e)}`;
          throw new VmdkCorruptError(`streamOptimized stream: grain at byte ${at} (LBA ${lba}) ${why}`, { path: this.path, cause: e });
        }
        if (data.length !== expected) {
          // Producers differ on the partial last grain: qemu stores just the part inside the
          // disk, others (our writer among them) a whole grain. Accept both; keep the part inside.
          if (expected < grainBytes && data.length === grainBytes) data = data.subarray(0, expected);
          else throw this.corrupt(`grain at byte ${at} (LBA ${lba}) inflates to ${data.length} bytes, expected ${expected}`);
        }
        const end = at + 12 + size;
        await src.skip(Math.ceil(end / SECTOR) * SECTOR - end, `padding of the grain at byte ${at}`);
        minLba = lba + header.grainSize;
        yield { offset, data };
      }
    } finally {
      await src.close();
    }
  }
}

/**
 * Decode a streamOptimized VMDK from a forward-only stream of chunks (an HTTP
 * body, a Node Readable, ...). See StreamOptimizedReader for the shape.
 */
export function readStreamOptimized(source: AsyncIterable<Uint8Array>, opts?: StreamOptimizedReadOptions): StreamOptimizedReader {
  return new StreamOptimizedReader(source, opts);
}
