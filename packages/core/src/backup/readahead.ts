/**
 * Read-ahead for the backup copy loop.
 *
 * The repository writer asks for one chunk (256 KiB) at a time, in offset order, and waits for each. A source
 * that answers one small request at a time then spends most of its time waiting on round trips (a Range GET
 * over the LAN, a read through a loop device), and a network reader's parallel streams are never used. This
 * keeps `depth` requests of `segmentBytes` in flight ahead of the writer, over exactly the areas the copy will
 * ask for (so nothing outside them is read), and serves the writer's chunk-sized requests from them.
 *
 * Memory: at most `depth` segments. Errors surface at the request that needs the failed segment, never earlier,
 * so a caller's failover can take over from there (`restart`).
 */
import type { Area, SourceReader } from './ports.ts';

export interface ReadAheadOptions {
  /** bytes per source request */
  segmentBytes: number;
  /** source requests in flight */
  depth: number;
}

interface Segment {
  start: number;
  length: number;
  data: Promise<Buffer>;
  /** the buffer it reads into (reused once the segment was consumed) */
  own: Buffer;
  consumed: boolean;
}

/** How much to read ahead from a source: its own preference, else one request of 1 MiB, four in flight. */
export function readAheadFor(reader: SourceReader): ReadAheadOptions {
  return reader.readAhead ?? { segmentBytes: 1024 * 1024, depth: 4 };
}

export class ReadAhead {
  private readonly queue: Segment[] = [];
  /** buffers of consumed segments, for the next requests */
  private free: Buffer[] = [];
  /** next area and offset within it not yet requested */
  private areaIndex = 0;
  private areaPos = 0;

  constructor(
    private reader: SourceReader,
    private readonly areas: readonly Area[],
    private opts: ReadAheadOptions,
  ) {
    if (!(opts.segmentBytes > 0) || !(opts.depth >= 1)) throw new RangeError(`bad read-ahead ${JSON.stringify(opts)}`);
  }

  /** Fill `into` with the source's bytes at `at`; [at, at + into.length) must lie inside the areas, requested in offset order. */
  async readInto(into: Buffer, at: number): Promise<void> {
    const end = at + into.length;
    let pos = at;
    while (pos < end) {
      let seg: Segment | undefined;
      for (;;) {
        this.dropBefore(pos);
        this.fill();
        seg = this.queue[0];
        if (!seg || seg.start + seg.length > pos) break;
      }
      if (!seg || pos < seg.start) throw new RangeError(`read-ahead: [${pos}, ${end}) is not inside the areas to copy (or not in offset order)`);
      const data = await seg.data;
      seg.consumed = true;
      const n = Math.min(end, seg.start + seg.length) - pos;
      data.copy(into, pos - at, pos - seg.start, pos - seg.start + n);
      pos += n;
    }
  }

  /**
   * Continue from `at` with another reader (failover): what is in flight on the old one is dropped (its
   * failures ignored) and reading ahead starts again at `at`.
   */
  restart(reader: SourceReader, at: number): void {
    this.queue.length = 0;
    // A read still in flight on the old reader may yet write into its buffer: those are not reused.
    this.free = [];
    this.reader = reader;
    this.opts = readAheadFor(reader);
    this.areaIndex = 0;
    this.areaPos = 0;
    while (this.areaIndex < this.areas.length) {
      const a = this.areas[this.areaIndex]!;
      if (at < a.start + a.length) {
        this.areaPos = Math.max(0, at - a.start);
        break;
      }
      this.areaIndex++;
    }
  }

  /** Drops what is in flight (ignoring its outcome); the reader itself is the caller's to close. */
  stop(): void {
    this.queue.length = 0;
    this.free = [];
    this.areaIndex = this.areas.length;
  }

  private dropBefore(pos: number): void {
    while (this.queue.length > 0 && this.queue[0]!.start + this.queue[0]!.length <= pos) {
      const seg = this.queue.shift()!;
      if (seg.consumed && seg.own.length === this.opts.segmentBytes) this.free.push(seg.own);
    }
  }

  private fill(): void {
    while (this.queue.length < this.opts.depth && this.areaIndex < this.areas.length) {
      const a = this.areas[this.areaIndex]!;
      const start = a.start + this.areaPos;
      const length = Math.min(this.opts.segmentBytes, a.length - this.areaPos);
      const own = this.free.pop() ?? this.reader.allocate?.(this.opts.segmentBytes) ?? Buffer.allocUnsafe(this.opts.segmentBytes);
      const data = this.reader.read(start, length, own);
      // Observed later by readInto; never an unhandled rejection in between.
      data.catch(() => undefined);
      this.queue.push({ start, length, data, own, consumed: false });
      this.areaPos += length;
      if (this.areaPos >= a.length) {
        this.areaIndex++;
        this.areaPos = 0;
      }
    }
  }
}
