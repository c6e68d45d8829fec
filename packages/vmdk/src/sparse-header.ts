/**
 * Hosted sparse extent header ("KDMV"), shared by monolithicSparse,
 * twoGbMaxExtentSparse extents and streamOptimized. All fields little-endian,
 * 512 bytes, packed:
 *
 *   off size field
 *     0   4  magicNumber        0x564d444b ("KDMV" on disk)
 *     4   4  version            1, 2 or 3 (3 = streamOptimized / CBT-aware)
 *     8   4  flags              bit 0  valid new-line detection test (bytes 73..76 must be "\n \r\n")
 *                               bit 1  redundant grain table in use (rgdOffset valid)
 *                               bit 2  zeroed-grain GTEs: a GTE of 1 means "reads as zeros"
 *                               bit 16 grains are compressed
 *                               bit 17 metadata markers present (streamOptimized)
 *    12   8  capacity           disk size in sectors
 *    20   8  grainSize          sectors per grain (power of two; 128 = 64 KiB is usual)
 *    28   8  descriptorOffset   sector of the embedded descriptor, 0 if none
 *    36   8  descriptorSize     sectors reserved for it
 *    44   4  numGTEsPerGT       grain-table entries per grain table (512)
 *    48   8  rgdOffset          sector of the redundant grain directory
 *    56   8  gdOffset           sector of the grain directory; 0xffffffffffffffff ("GD_AT_END")
 *                               in a streamOptimized header: the real header is the footer
 *    64   8  overHead           sectors before the first grain
 *    72   1  uncleanShutdown
 *    73   4  "\n", " ", "\r", "\n" (corruption check for text-mode transfers)
 *    77   2  compressAlgorithm  0 none, 1 deflate (zlib stream, RFC 1950)
 *    79 433  padding
 *
 * Grain directory (GD): ceil(capacity / (grainSize * numGTEsPerGT)) u32 sector
 * offsets of grain tables (0 = table absent, all its grains unallocated). A grain
 * table (GT): numGTEsPerGT u32 sector offsets of grains (0 = unallocated).
 */
import { VmdkBadMagicError, VmdkCorruptError, VmdkUnsupportedError } from './errors.ts';

export const SPARSE_MAGIC = 0x564d444b; // 'KDMV' read as LE u32
export const COWD_MAGIC = 0x44574f43; // 'COWD' (vmfsSparse redo log) read as LE u32
export const SESPARSE_MAGIC = 0x00000000cafebabe; // seSparse const header starts with this u64
export const GD_AT_END = 0xffffffffffffffffn;

export const FLAG_NEWLINE_TEST = 1 << 0;
export const FLAG_REDUNDANT_GT = 1 << 1;
export const FLAG_ZERO_GRAIN = 1 << 2;
export const FLAG_COMPRESSED = 1 << 16;
export const FLAG_MARKERS = 1 << 17;

export const COMPRESSION_NONE = 0;
export const COMPRESSION_DEFLATE = 1;

export const HEADER_SIZE = 512;

export interface SparseHeader {
  version: number;
  flags: number;
  capacity: number;
  grainSize: number;
  descriptorOffset: number;
  descriptorSize: number;
  numGTEsPerGT: number;
  rgdOffset: number;
  /** Grain directory sector, or `'end'` when the header says GD_AT_END (read the footer). */
  gdOffset: number | 'end';
  overHead: number;
  uncleanShutdown: number;
  compressAlgorithm: number;
}

function u64(buf: Buffer, off: number, field: string, path: string | undefined): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VmdkCorruptError(`sparse header field ${field} out of range: ${v}`, { path });
  return Number(v);
}

/**
 * Parse and validate a sparse header. `what` names it in errors ("header"/"footer").
 * Validation is what every reader relies on: bounded grain size and table sizes,
 * known compression, intact new-line check bytes.
 */
export function parseSparseHeader(buf: Buffer, path?: string, what = 'header'): SparseHeader {
  if (buf.length < HEADER_SIZE) throw new VmdkCorruptError(`sparse ${what} shorter than 512 bytes`, { path });
  const magic = buf.readUInt32LE(0);
  if (magic !== SPARSE_MAGIC) throw new VmdkBadMagicError(`sparse ${what}: bad magic 0x${magic.toString(16).padStart(8, '0')}, expected "KDMV"`, { path });
  const version = buf.readUInt32LE(4);
  if (version < 1 || version > 3) throw new VmdkUnsupportedError(`sparse ${what}: version ${version} not supported (1..3)`, { path });
  const flags = buf.readUInt32LE(8);
  const gdRaw = buf.readBigUInt64LE(56);
  const h: SparseHeader = {
    version,
    flags,
    capacity: u64(buf, 12, 'capacity', path),
    grainSize: u64(buf, 20, 'grainSize', path),
    descriptorOffset: u64(buf, 28, 'descriptorOffset', path),
    descriptorSize: u64(buf, 36, 'descriptorSize', path),
    numGTEsPerGT: buf.readUInt32LE(44),
    rgdOffset: u64(buf, 48, 'rgdOffset', path),
    gdOffset: gdRaw === GD_AT_END ? 'end' : u64(buf, 56, 'gdOffset', path),
    overHead: u64(buf, 64, 'overHead', path),
    uncleanShutdown: buf.readUInt8(72),
    compressAlgorithm: buf.readUInt16LE(77),
  };
  if (flags & FLAG_NEWLINE_TEST) {
    if (buf[73] !== 0x0a || buf[74] !== 0x20 || buf[75] !== 0x0d || buf[76] !== 0x0a) {
      throw new VmdkCorruptError(`sparse ${what}: new-line check bytes damaged (file transferred in text mode?)`, { path });
    }
  }
  const g = h.grainSize;
  if (g < 1 || g > 65536 || (g & (g - 1)) !== 0) throw new VmdkCorruptError(`sparse ${what}: grainSize ${g} is not a power of two in 1..65536 sectors`, { path });
  const n = h.numGTEsPerGT;
  if (n < 1 || n > 65536) throw new VmdkCorruptError(`sparse ${what}: numGTEsPerGT ${n} out of range`, { path });
  // Keep byte offsets exact in a JS number: capacity < 2^53 bytes.
  if (h.capacity > Number.MAX_SAFE_INTEGER / 512) throw new VmdkCorruptError(`sparse ${what}: capacity ${h.capacity} sectors too large`, { path });
  if (h.compressAlgorithm !== COMPRESSION_NONE && h.compressAlgorithm !== COMPRESSION_DEFLATE) {
    throw new VmdkUnsupportedError(`sparse ${what}: compression algorithm ${h.compressAlgorithm} not supported`, { path });
  }
  return h;
}

export function isCompressed(h: SparseHeader): boolean {
  return (h.flags & FLAG_COMPRESSED) !== 0 || h.compressAlgorithm === COMPRESSION_DEFLATE;
}

/** Number of grain-directory entries (= grain tables) for a header. */
export function gdEntries(h: Pick<SparseHeader, 'capacity' | 'grainSize' | 'numGTEsPerGT'>): number {
  return Math.ceil(h.capacity / (h.grainSize * h.numGTEsPerGT));
}

/** Encode a header (used by the writer for both header and footer). */
export function encodeSparseHeader(h: SparseHeader): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  buf.writeUInt32LE(SPARSE_MAGIC, 0);
  buf.writeUInt32LE(h.version, 4);
  buf.writeUInt32LE(h.flags >>> 0, 8);
  buf.writeBigUInt64LE(BigInt(h.capacity), 12);
  buf.writeBigUInt64LE(BigInt(h.grainSize), 20);
  buf.writeBigUInt64LE(BigInt(h.descriptorOffset), 28);
  buf.writeBigUInt64LE(BigInt(h.descriptorSize), 36);
  buf.writeUInt32LE(h.numGTEsPerGT, 44);
  buf.writeBigUInt64LE(BigInt(h.rgdOffset), 48);
  buf.writeBigUInt64LE(h.gdOffset === 'end' ? GD_AT_END : BigInt(h.gdOffset), 56);
  buf.writeBigUInt64LE(BigInt(h.overHead), 64);
  buf.writeUInt8(h.uncleanShutdown, 72);
  buf[73] = 0x0a;
  buf[74] = 0x20;
  buf[75] = 0x0d;
  buf[76] = 0x0a;
  buf.writeUInt16LE(h.compressAlgorithm, 77);
  return buf;
}

// ---- streamOptimized markers ----
// Every marker starts with { u64 value; u32 size }. size != 0: a compressed grain
// (value = LBA in sectors, then `size` bytes of zlib data). size == 0: a metadata
// marker occupying one whole sector: { u64 numSectors; u32 0; u32 type; pad to 512 },
// followed by numSectors sectors of metadata. Everything is sector aligned.
export const MARKER_EOS = 0;
export const MARKER_GT = 1;
export const MARKER_GD = 2;
export const MARKER_FOOTER = 3;

export function encodeMetadataMarker(type: number, numSectors: number): Buffer {
  const buf = Buffer.alloc(512);
  buf.writeBigUInt64LE(BigInt(numSectors), 0);
  buf.writeUInt32LE(0, 8);
  buf.writeUInt32LE(type, 12);
  return buf;
}
