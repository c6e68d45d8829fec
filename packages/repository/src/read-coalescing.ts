/**
 * Read coalescing for restore stages: blob reads adjacent in a pack are merged
 * into one (aligned, O_DIRECT on the local backend) read.
 */
import * as fs from 'node:fs';
import type { LocalFiles } from './backends/backend.ts';
import { ALIGN, openDirect } from './backends/direct.ts';
import type { SharedAligned } from './backends/direct.ts';
import { CorruptDataError } from './errors.ts';
import { packPath } from './format.ts';
import type { BlobLocation } from './format.ts';
import type { Repository } from './repository.ts';

/**
 * Reads the stored blobs of one restore stage into a shared input buffer:
 * blobs adjacent in the same pack are coalesced into one read; on the local
 * backend reads are aligned O_DIRECT preads (no page-cache pages), elsewhere
 * plain ranged reads.
 */
export class StoredReader {
  private readonly local: LocalFiles | null;
  private readonly fds = new Map<string, number | null>();
  constructor(private readonly repo: Repository) {
    this.local = repo.backend.local ?? null;
  }

  begin(into: SharedAligned): StageReads {
    return new StageReads(this, into);
  }

  /** O_DIRECT fd for a pack, or null (no direct I/O there, or not the local backend). */
  directFd(pack: string): number | null {
    if (!this.local) return null;
    let fd = this.fds.get(pack);
    if (fd === undefined) {
      fd = openDirect(this.local.absolute(packPath(pack)), fs.constants.O_RDONLY);
      this.fds.set(pack, fd);
    }
    return fd;
  }

  async readPlain(pack: string, offset: number, into: Buffer): Promise<void> {
    const got = await this.repo.backend.readRange(packPath(pack), offset, into.length, into);
    if (got !== into && got.buffer !== into.buffer) into.set(got);
  }

  close(): void {
    for (const fd of this.fds.values()) if (fd !== null) fs.closeSync(fd);
    this.fds.clear();
  }
}

interface Segment {
  pack: string;
  start: number; // file offset of the first blob
  end: number; // file offset past the last blob
  at: number; // position in the input buffer of file offset `start` (after alignment slack)
}

export class StageReads {
  private readonly segs: Segment[] = [];
  private readonly placed = new Map<string, number>();
  private pos = 0;
  constructor(
    private readonly reader: StoredReader,
    private readonly into: SharedAligned,
  ) {}

  mark(): { segs: number; pos: number; placed: string[] } {
    return { segs: this.segs.length, pos: this.pos, placed: [...this.placed.keys()] };
  }

  rewind(m: { segs: number; pos: number; placed: string[] }): void {
    const last = this.segs[m.segs - 1];
    this.segs.length = m.segs;
    this.pos = m.pos;
    const keep = new Set(m.placed);
    for (const id of [...this.placed.keys()]) if (!keep.has(id)) this.placed.delete(id);
    // A segment extended after the mark is cut back to its extent at the mark.
    if (last) last.end = Math.min(last.end, last.start + (m.pos - last.at));
  }

  /** Position of the blob in the input buffer (queued for reading), or -1 when it does not fit. */
  add(id: string, loc: BlobLocation): number {
    const seen = this.placed.get(id);
    if (seen !== undefined) return seen;
    const last = this.segs[this.segs.length - 1];
    let at: number;
    // The next blob of the same pack (packs may hold up to 7 padding bytes between blobs): extend the read.
    if (last && last.pack === loc.pack && loc.offset >= last.end && loc.offset - last.end < 8) {
      at = last.at + (loc.offset - last.start);
      if (Math.ceil((at + loc.storedLen) / ALIGN) * ALIGN > this.into.buf.length) return -1;
      last.end = loc.offset + loc.storedLen;
    } else {
      const slack = loc.offset % ALIGN;
      const base = Math.ceil(this.pos / ALIGN) * ALIGN;
      at = base + slack;
      if (Math.ceil((at + loc.storedLen) / ALIGN) * ALIGN > this.into.buf.length) return -1;
      this.segs.push({ pack: loc.pack, start: loc.offset, end: loc.offset + loc.storedLen, at });
    }
    this.pos = at + loc.storedLen;
    this.placed.set(id, at);
    return at;
  }

  async run(): Promise<void> {
    await Promise.all(
      this.segs.map(async (s) => {
        const fd = this.reader.directFd(s.pack);
        if (fd === null) return this.reader.readPlain(s.pack, s.start, this.into.buf.subarray(s.at, s.at + (s.end - s.start)));
        const fileStart = s.start - (s.start % ALIGN);
        const bufStart = s.at - (s.start - fileStart);
        const len = Math.ceil((s.end - fileStart) / ALIGN) * ALIGN;
        let got = 0;
        while (got < s.end - fileStart) {
          const n = await preadAsync(fd, this.into.buf, bufStart + got, len - got, fileStart + got);
          if (n === 0) throw new CorruptDataError(`short read: pack ${s.pack} has fewer than ${s.end} bytes`);
          got += n;
          if (n % ALIGN !== 0) break;
        }
        if (got < s.end - fileStart) throw new CorruptDataError(`short read: pack ${s.pack} has fewer than ${s.end} bytes`);
      }),
    );
  }
}

function preadAsync(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
