/**
 * Reader for one hosted sparse extent (KDMV): monolithicSparse, an extent of
 * twoGbMaxExtentSparse, or a streamOptimized file. See sparse-header.ts for
 * the header, grain directory and grain table layout.
 *
 * Lookup: grain g lives in grain table floor(g / numGTEsPerGT), entry
 * g % numGTEsPerGT. A GD entry of 0 means the whole table is unallocated; a GTE
 * of 0 is an unallocated grain (reads as zeros: we do not follow parents); with
 * header flag bit 2 a GTE of 1 is an explicitly zeroed grain.
 *
 * Compressed extents (streamOptimized): the GTE is the sector of a grain
 * marker { u64 lba; u32 size; u8 data[size] } where data is a zlib (RFC 1950)
 * stream that inflates to one grain (the last grain may be shorter). When the
 * header's gdOffset is GD_AT_END, the usable header is the footer: the last
 * three sectors of the file are a FOOTER metadata marker, the footer (a copy of
 * the header with the real gdOffset) and the EOS marker. Without the markers
 * flag qemu stores bare zlib data; we accept both and recognise a grain marker
 * by its LBA.
 *
 * We use the primary grain directory. Every table and grain location is checked
 * against the file size; grains are checked to inflate to exactly their size.
 */
import { inflateRawSync, inflateSync } from 'node:zlib';
import { VmdkCorruptError, VmdkTruncatedError, VmdkError } from './errors.ts';
import type { ImageFile } from './image-file.ts';
import {
  FLAG_MARKERS,
  FLAG_ZERO_GRAIN,
  HEADER_SIZE,
  MARKER_EOS,
  MARKER_FOOTER,
  gdEntries,
  isCompressed,
  parseSparseHeader,
} from './sparse-header.ts';
import type { SparseHeader } from './sparse-header.ts';
import type { ByteRange, ExtentBackend } from './types.ts';

const SECTOR = 512;
const GT_CACHE_TABLES = 256;
const GRAIN_CACHE_GRAINS = 8;

export class SparseExtent implements ExtentBackend {
  readonly length: number;
  readonly grainBytes: number;
  readonly compressed: boolean;
  private readonly gtCache = new Map<number, Uint32Array>();
  private readonly grainCache = new Map<number, Buffer>();
  private readonly zeroGrainFlag: boolean;

  private constructor(
    readonly file: ImageFile,
    /** The effective header (the footer for GD_AT_END streams). */
    readonly header: SparseHeader & { gdOffset: number },
    private readonly gd: Uint32Array,
    /** Embedded descriptor text, if the extent has one. */
    readonly descriptorText: string | undefined,
  ) {
    this.length = header.capacity * SECTOR;
    this.grainBytes = header.grainSize * SECTOR;
    this.compressed = isCompressed(header);
    this.zeroGrainFlag = (header.flags & FLAG_ZERO_GRAIN) !== 0;
  }

  static async open(file: ImageFile): Promise<SparseExtent> {
    const path = file.path;
    const first = await file.readExact(0, HEADER_SIZE, 'sparse header');
    const header = parseSparseHeader(first, path);
    let effective: SparseHeader = header;

    if (header.gdOffset === 'end') {
      // streamOptimized with the grain directory at the end: use the footer.
      const end = Math.floor(file.size / SECTOR) * SECTOR;
      if (end < HEADER_SIZE + 3 * SECTOR) {
        throw new VmdkTruncatedError('streamOptimized: grain directory is at the end but the file is too short to hold a footer', { path });
      }
      const tail = await file.readExact(end - 3 * SECTOR, 3 * SECTOR, 'streamOptimized footer');
      const footerMarkerOk = tail.readUInt32LE(8) === 0 && tail.readUInt32LE(12) === MARKER_FOOTER;
      const eosOk = tail.readBigUInt64LE(1024) === 0n && tail.readUInt32LE(1024 + 8) === 0 && tail.readUInt32LE(1024 + 12) === MARKER_EOS;
      if (!footerMarkerOk || !eosOk) {
        throw new VmdkTruncatedError('streamOptimized: no footer marker + footer + end-of-stream marker at the end of the file (truncated stream?)', { path });
      }
      let footer: SparseHeader;
      try {
        footer = parseSparseHeader(tail.subarray(SECTOR, 2 * SECTOR), path, 'footer');
      } catch (e) {
        if (e instanceof VmdkError && e.code === 'BAD_MAGIC') throw new VmdkCorruptError(`streamOptimized: ${e.message}`, { path });
        throw e;
      }
      if (footer.gdOffset === 'end') throw new VmdkCorruptError('streamOptimized footer still says the grain directory is at the end', { path });
      if (footer.capacity !== header.capacity || footer.grainSize !== header.grainSize || footer.numGTEsPerGT !== header.numGTEsPerGT) {
        throw new VmdkCorruptError('streamOptimized footer disagrees with the header on capacity, grain size or table size', { path });
      }
      effective = footer;
    }
    const gdOffset = effective.gdOffset;
    if (gdOffset === 'end') throw new VmdkCorruptError('grain directory offset missing', { path });

    let descriptorText: string | undefined;
    if (header.descriptorOffset > 0 && header.descriptorSize > 0) {
      if (header.descriptorSize > 2048) throw new VmdkCorruptError(`embedded descriptor of ${header.descriptorSize} sectors is implausibly large`, { path });
      const raw = await file.readExact(header.descriptorOffset * SECTOR, header.descriptorSize * SECTOR, 'embedded descriptor');
      const nul = raw.indexOf(0);
      descriptorText = raw.subarray(0, nul >= 0 ? nul : raw.length).toString('utf8');
    }

    const n = gdEntries(effective);
    if (gdOffset === 0 && n > 0) throw new VmdkCorruptError('grain directory offset is 0', { path });
    if (gdOffset * SECTOR >= file.size) {
      throw new VmdkCorruptError(`grain directory at sector ${gdOffset} lies past the end of the file (${file.size} bytes; truncated?)`, { path });
    }
    const gdBuf = await file.readExact(gdOffset * SECTOR, n * 4, 'grain directory');
    const gd = new Uint32Array(n);
    const gtBytes = effective.numGTEsPerGT * 4;
    for (let i = 0; i < n; i++) {
      const v = gdBuf.readUInt32LE(i * 4);
      if (v !== 0 && v * SECTOR + gtBytes > file.size) {
        throw new VmdkCorruptError(`grain directory entry ${i} points to a grain table at sector ${v}, past the end of the file (${file.size} bytes)`, { path });
      }
      gd[i] = v;
    }
    return new SparseExtent(file, { ...effective, gdOffset }, gd, descriptorText);
  }

  private async table(index: number): Promise<Uint32Array | undefined> {
    const sector = this.gd[index] ?? 0;
    if (sector === 0) return undefined;
    const cached = this.gtCache.get(index);
    if (cached) return cached;
    const n = this.header.numGTEsPerGT;
    const buf = await this.file.readExact(sector * SECTOR, n * 4, `grain table ${index}`);
    const gt = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const v = buf.readUInt32LE(i * 4);
      if (v > 1 && v * SECTOR >= this.file.size) {
        // Hosted sparse files keep metadata in front of the grains: a grain past EOF means a cut-off file.
        throw new VmdkTruncatedError(`grain table ${index} entry ${i} points to sector ${v}, past the end of the file (${this.file.size} bytes): file truncated`, { path: this.file.path });
      }
      gt[i] = v;
    }
    if (this.gtCache.size >= GT_CACHE_TABLES) {
      const oldest = this.gtCache.keys().next();
      if (!oldest.done) this.gtCache.delete(oldest.value);
    }
    this.gtCache.set(index, gt);
    return gt;
  }

  /** Sector of grain `g`, or 0 when it reads as zeros. */
  private async grainSector(g: number): Promise<number> {
    const n = this.header.numGTEsPerGT;
    const gt = await this.table(Math.floor(g / n));
    if (!gt) return 0;
    const v = gt[g % n] ?? 0;
    if (v === 1 && this.zeroGrainFlag) return 0;
    return v;
  }

  /** Bytes of grain g that lie inside the extent (the last grain may be short). */
  private grainLength(g: number): number {
    return Math.min(this.grainBytes, this.length - g * this.grainBytes);
  }

  private async compressedGrain(g: number, sector: number): Promise<Buffer> {
    const hit = this.grainCache.get(g);
    if (hit) return hit;
    const path = this.file.path;
    const pos = sector * SECTOR;
    const need = this.grainLength(g);
    const maxCompressed = 2 * this.grainBytes + 4096;
    const head = await this.file.readUpTo(pos, Math.min(4096, maxCompressed));
    let data: Buffer;
    let hasMarker = (this.header.flags & FLAG_MARKERS) !== 0;
    if (!hasMarker && head.length >= 13) {
      // qemu writes bare zlib without the markers flag; VMware writes a grain marker.
      hasMarker = head.readBigUInt64LE(0) === BigInt(g * this.header.grainSize) && head.readUInt32LE(8) > 0 && head.readUInt32LE(8) <= maxCompressed;
    }
    if (hasMarker) {
      if (head.length < 12) throw new VmdkTruncatedError(`grain ${g}: file ends inside its grain marker`, { path });
      const lba = head.readBigUInt64LE(0);
      const size = head.readUInt32LE(8);
      if (size === 0) throw new VmdkCorruptError(`grain ${g}: grain table points at a metadata marker, not a grain`, { path });
      if (lba !== BigInt(g * this.header.grainSize)) {
        throw new VmdkCorruptError(`grain ${g}: marker at sector ${sector} carries LBA ${lba}, expected ${g * this.header.grainSize}`, { path });
      }
      if (size > maxCompressed) throw new VmdkCorruptError(`grain ${g}: compressed size ${size} is implausible`, { path });
      data = 12 + size <= head.length ? head.subarray(12, 12 + size) : await this.file.readExact(pos + 12, size, `grain ${g} compressed data`);
    } else {
      data = await this.file.readUpTo(pos, maxCompressed);
    }
    let out: Buffer;
    try {
      out = data[0] !== undefined && (data[0] & 0x0f) === 8 && ((data[0] << 8) | (data[1] ?? 0)) % 31 === 0
        ? inflateSync(data, { maxOutputLength: this.grainBytes })
        : inflateRawSync(data, { maxOutputLength: this.grainBytes });
    } catch (e) {
      const truncated = e instanceof Error && /unexpected end/i.test(e.message);
      const msg = `grain ${g} at sector ${sector} does not inflate: ${e instanceof Error ? e.message : String(e)}`;
      throw truncated ? new VmdkTruncatedError(msg, { path, cause: e }) : new VmdkCorruptError(msg, { path, cause: e });
    }
    if (out.length < need) throw new VmdkCorruptError(`grain ${g} inflates to ${out.length} bytes, expected ${need}`, { path });
    if (this.grainCache.size >= GRAIN_CACHE_GRAINS) {
      const oldest = this.grainCache.keys().next();
      if (!oldest.done) this.grainCache.delete(oldest.value);
    }
    this.grainCache.set(g, out);
    return out;
  }

  async readInto(offset: number, length: number, into: Buffer, intoOffset: number): Promise<void> {
    const gb = this.grainBytes;
    let off = offset;
    let at = intoOffset;
    let left = length;
    while (left > 0) {
      const g = Math.floor(off / gb);
      const inGrain = off - g * gb;
      let n = Math.min(left, gb - inGrain);
      const sector = await this.grainSector(g);
      if (sector === 0) {
        into.fill(0, at, at + n);
      } else if (this.compressed) {
        const grain = await this.compressedGrain(g, sector);
        grain.copy(into, at, inGrain, inGrain + n);
      } else {
        // Coalesce physically contiguous grains into one read.
        let next = g + 1;
        let expected = sector + this.header.grainSize;
        while (n < left && (await this.grainSector(next)) === expected) {
          n = Math.min(left, n + gb);
          next++;
          expected += this.header.grainSize;
        }
        await this.file.readExact(sector * SECTOR + inGrain, n, `grain ${g}`, into, at);
      }
      off += n;
      at += n;
      left -= n;
    }
  }

  async *allocated(): AsyncGenerator<ByteRange> {
    const n = this.header.numGTEsPerGT;
    const gb = this.grainBytes;
    let runStart = -1;
    let runEnd = -1;
    for (let t = 0; t < this.gd.length; t++) {
      const gt = await this.table(t);
      if (!gt) continue;
      for (let i = 0; i < n; i++) {
        const g = t * n + i;
        const start = g * gb;
        if (start >= this.length) break;
        const v = gt[i] ?? 0;
        if (v === 0 || (v === 1 && this.zeroGrainFlag)) continue;
        const end = Math.min(start + gb, this.length);
        if (start === runEnd) {
          runEnd = end;
        } else {
          if (runEnd > runStart && runStart >= 0) yield { offset: runStart, length: runEnd - runStart };
          runStart = start;
          runEnd = end;
        }
      }
    }
    if (runStart >= 0 && runEnd > runStart) yield { offset: runStart, length: runEnd - runStart };
  }
}
