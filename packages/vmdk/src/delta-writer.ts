/**
 * Writers for snapshot delta links: the data file (vmfsSparse "COWD" or seSparse)
 * plus its descriptor, linked to a parent the way ESXi links them:
 *
 *   # Disk DescriptorFile
 *   version=1
 *   encoding="UTF-8"
 *   CID=<new 8 hex digits>
 *   parentCID=<the parent's CID>
 *   isNativeSnapshot="no"
 *   createType="vmfsSparse" | "seSparse"
 *   parentFileNameHint="<parent descriptor>"
 *   RW <sectors> VMFSSPARSE "<name>-delta.vmdk" | RW <sectors> SESPARSE "<name>-sesparse.vmdk"
 *   ddb.grain = "8" (seSparse), ddb.longContentID = "..."
 *
 * Layouts (see delta-extent.ts for the fields):
 *   vmfsSparse: 2048-byte header (version 1, flags 3, grain 1 sector, GD at sector 4),
 *     the grain directory, the grain tables in use (16 KiB each, directory order), then
 *     the grains; freeSector = file size in sectors.
 *   seSparse: the extents as ESXi sizes them (sectors): const header 0, volatile
 *     header <1:1>, journal header <2:2>, journal <2048:2048>, grain directory at 4096,
 *     then grain tables, free bitmap and backmap, each rounded up to 2048 sectors
 *     (directory: 8 bytes per 16 MiB; tables: 64 sectors per 16 MiB; bitmap: one bit
 *     per grain; backmap: as big as the tables), then the grains area (capacity). The
 *     file holds the whole metadata area and the grains written; grain tables are
 *     numbered in directory order, grains in disk order. The free bitmap marks each
 *     grain in use, the backmap holds its grain table's number, the journal is empty.
 *
 * Operations apply in order. A data write that covers a grain only partly takes the
 * rest of the grain from `parent` (copy-on-write, as ESXi does), so `parent` is needed
 * for unaligned writes. `zero` / `unmap` (seSparse only) need whole grains; on
 * vmfsSparse `zero` writes zero-filled grains (COWD has no zero state).
 *
 * Output is a list of positioned chunks (seSparse metadata of a large disk is
 * mostly holes); `writeDeltaLink` puts them in files.
 */
import { randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDescriptor } from './descriptor.ts';
import type { VmdkDescriptor } from './descriptor.ts';
import {
  COWD_GTES_PER_GT,
  COWD_HEADER_SIZE,
  SESPARSE_CONST_MAGIC,
  SESPARSE_GRAIN_SECTORS,
  SESPARSE_GTES_PER_GT,
  SESPARSE_GT_SECTORS,
  SESPARSE_VERSION,
  SESPARSE_VOLATILE_MAGIC,
} from './delta-extent.ts';
import type { DeltaFormat } from './delta-extent.ts';
import { VmdkRangeError } from './errors.ts';

const SECTOR = 512;
const MAX_VMFSSPARSE_SECTORS = 0xffffffff;

export type DeltaOp =
  | { offset: number; data: Buffer }
  | { offset: number; length: number; zero: true }
  | { offset: number; length: number; unmap: true };

export interface DeltaLinkOptions {
  format: DeltaFormat;
  /** Disk size in bytes (the parent's), a multiple of 512. */
  capacity: number;
  /** Descriptor name without ".vmdk", e.g. "web01-000001"; the data file is "<name>-delta.vmdk" / "<name>-sesparse.vmdk". */
  name: string;
  /** The parent's descriptor file name as the hint (relative to this descriptor). */
  parentFileName: string;
  /** The parent's CID (8 hex digits). */
  parentCid: string;
  ops: DeltaOp[];
  /** This link's CID; random when absent. */
  cid?: string;
  longContentId?: string;
  /** Where grains partly written come from (the disk as the parent chain reads it). */
  parent?: { read(offset: number, length: number): Promise<Buffer> };
}

export interface DeltaLink {
  format: DeltaFormat;
  cid: string;
  descriptorFileName: string;
  descriptor: string;
  dataFileName: string;
  /** Data file size in bytes. */
  size: number;
  /** Data file content: everything not in a chunk is zero. */
  chunks: { position: number; data: Buffer }[];
}

type Grain = Buffer | 'zero' | 'unmap';

async function applyOps(opts: DeltaLinkOptions, grainBytes: number): Promise<Map<number, Grain>> {
  const { capacity } = opts;
  const grains = new Map<number, Grain>();
  const grainLen = (g: number): number => Math.min(grainBytes, capacity - g * grainBytes);
  for (const op of opts.ops) {
    const length = 'data' in op ? op.data.length : op.length;
    if (!Number.isSafeInteger(op.offset) || op.offset < 0 || length < 0 || op.offset + length > capacity) {
      throw new VmdkRangeError(`operation at ${op.offset} of ${length} bytes lies outside the disk (${capacity} bytes)`);
    }
    const first = Math.floor(op.offset / grainBytes);
    const last = Math.ceil((op.offset + length) / grainBytes);
    for (let g = first; g < last; g++) {
      const gStart = g * grainBytes;
      const a = Math.max(op.offset, gStart);
      const b = Math.min(op.offset + length, gStart + grainLen(g));
      const whole = a === gStart && b === gStart + grainLen(g);
      if (!('data' in op)) {
        if (!whole) throw new VmdkRangeError(`${'zero' in op ? 'zero' : 'unmap'} range ${op.offset}+${length} does not cover whole ${grainBytes}-byte grains`);
        if ('unmap' in op && opts.format !== 'seSparse') throw new VmdkRangeError('unmap is only recorded by seSparse deltas');
        grains.set(g, opts.format === 'seSparse' ? ('zero' in op ? 'zero' : 'unmap') : Buffer.alloc(grainBytes));
        continue;
      }
      let buf: Buffer;
      const prev = grains.get(g);
      if (whole) buf = Buffer.alloc(grainBytes);
      else if (Buffer.isBuffer(prev)) buf = prev;
      else if (prev === 'zero' || prev === 'unmap') buf = Buffer.alloc(grainBytes);
      else {
        if (!opts.parent) throw new VmdkRangeError(`write at ${op.offset}+${length} covers grain ${g} only partly: pass \`parent\` to copy the rest`);
        buf = Buffer.alloc(grainBytes);
        (await opts.parent.read(gStart, grainLen(g))).copy(buf);
      }
      op.data.copy(buf, a - gStart, a - op.offset, b - op.offset);
      grains.set(g, buf);
    }
  }
  return grains;
}

function descriptorFor(opts: DeltaLinkOptions, cid: string, dataFileName: string): string {
  const longContentId = (opts.longContentId ?? randomBytes(12).toString('hex') + cid).toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(longContentId)) throw new VmdkRangeError(`longContentId must be 32 hex digits: ${longContentId}`);
  const ddb = new Map<string, string>();
  if (opts.format === 'seSparse') ddb.set('ddb.grain', String(SESPARSE_GRAIN_SECTORS));
  ddb.set('ddb.longContentID', longContentId);
  const d: VmdkDescriptor = {
    version: 1,
    cid,
    parentCid: opts.parentCid.toLowerCase(),
    createType: opts.format,
    header: new Map([
      ['encoding', 'UTF-8'],
      ['isNativeSnapshot', 'no'],
      ['parentFileNameHint', opts.parentFileName],
    ]),
    extents: [{ access: 'RW', sectors: opts.capacity / SECTOR, type: opts.format === 'seSparse' ? 'SESPARSE' : 'VMFSSPARSE', fileName: dataFileName }],
    ddb,
  };
  return formatDescriptor(d);
}

function vmfsSparseData(capacity: number, grains: Map<number, Grain>): { size: number; chunks: DeltaLink['chunks'] } {
  const sectors = capacity / SECTOR;
  const gdEntries = Math.ceil(sectors / COWD_GTES_PER_GT);
  const gdOffset = COWD_HEADER_SIZE / SECTOR;
  const gdSectors = Math.ceil((gdEntries * 4) / SECTOR);
  const gtSectors = (COWD_GTES_PER_GT * 4) / SECTOR;
  const tables = [...new Set([...grains.keys()].map((g) => Math.floor(g / COWD_GTES_PER_GT)))].sort((a, b) => a - b);
  const gd = Buffer.alloc(gdSectors * SECTOR);
  const gtBuf = Buffer.alloc(tables.length * gtSectors * SECTOR);
  const gtAt = new Map<number, number>();
  let next = gdOffset + gdSectors;
  for (const [i, t] of tables.entries()) {
    gd.writeUInt32LE(next, t * 4);
    gtAt.set(t, i);
    next += gtSectors;
  }
  const order = [...grains.keys()].sort((a, b) => a - b);
  const data = Buffer.alloc(order.length * SECTOR);
  for (const [i, g] of order.entries()) {
    const t = Math.floor(g / COWD_GTES_PER_GT);
    gtBuf.writeUInt32LE(next, ((gtAt.get(t) ?? 0) * COWD_GTES_PER_GT + (g % COWD_GTES_PER_GT)) * 4);
    const grain = grains.get(g);
    if (Buffer.isBuffer(grain)) grain.copy(data, i * SECTOR);
    next += 1;
  }
  const header = Buffer.alloc(COWD_HEADER_SIZE);
  header.write('COWD', 0, 'latin1');
  header.writeUInt32LE(1, 4); // version
  header.writeUInt32LE(3, 8); // flags
  header.writeUInt32LE(sectors, 12);
  header.writeUInt32LE(1, 16); // grain size: one sector
  header.writeUInt32LE(gdOffset, 20);
  header.writeUInt32LE(gdEntries, 24);
  header.writeUInt32LE(next, 28); // freeSector
  const gtStart = (gdOffset + gdSectors) * SECTOR;
  return {
    size: next * SECTOR,
    chunks: [
      { position: 0, data: header },
      { position: gdOffset * SECTOR, data: gd },
      { position: gtStart, data: gtBuf },
      { position: gtStart + gtBuf.length, data },
    ],
  };
}

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

/** The seSparse extents ESXi lays out for a capacity (sectors). */
export function seSparseLayout(capacitySectors: number): {
  gdOffset: number; gdSectors: number; gtOffset: number; gtSectors: number; bitmapOffset: number; bitmapSectors: number;
  backmapOffset: number; backmapSectors: number; grainsOffset: number; grainsSectors: number; tables: number;
} {
  const coverage = SESPARSE_GTES_PER_GT * SESPARSE_GRAIN_SECTORS;
  const tables = Math.ceil(capacitySectors / coverage);
  const gdOffset = 4096;
  const gdSectors = roundUp(Math.ceil((tables * 8) / SECTOR), 2048);
  const gtOffset = gdOffset + gdSectors;
  const gtSectors = roundUp(tables * SESPARSE_GT_SECTORS, 2048);
  const bitmapOffset = gtOffset + gtSectors;
  const bitmapSectors = roundUp(Math.ceil(Math.ceil(capacitySectors / SESPARSE_GRAIN_SECTORS) / 8 / SECTOR), 2048);
  const backmapOffset = bitmapOffset + bitmapSectors;
  const backmapSectors = gtSectors;
  const grainsOffset = backmapOffset + backmapSectors;
  const grainsSectors = roundUp(capacitySectors, SESPARSE_GRAIN_SECTORS);
  return { gdOffset, gdSectors, gtOffset, gtSectors, bitmapOffset, bitmapSectors, backmapOffset, backmapSectors, grainsOffset, grainsSectors, tables };
}

function seSparseData(capacity: number, grains: Map<number, Grain>): { size: number; chunks: DeltaLink['chunks'] } {
  const sectors = capacity / SECTOR;
  const L = seSparseLayout(sectors);
  const grainBytes = SESPARSE_GRAIN_SECTORS * SECTOR;
  const gtBytes = SESPARSE_GT_SECTORS * SECTOR;
  const tables = [...new Set([...grains.keys()].map((g) => Math.floor(g / SESPARSE_GTES_PER_GT)))].sort((a, b) => a - b);
  const gd = Buffer.alloc(Math.ceil((L.tables * 8) / SECTOR) * SECTOR);
  const gts = Buffer.alloc(tables.length * gtBytes);
  const gtIndex = new Map<number, number>();
  for (const [i, t] of tables.entries()) {
    gd.writeBigUInt64LE(0x1000000000000000n | BigInt(i), t * 8);
    gtIndex.set(t, i);
  }
  const order = [...grains.keys()].sort((a, b) => a - b);
  const allocated = order.filter((g) => Buffer.isBuffer(grains.get(g)));
  const data = Buffer.alloc(allocated.length * grainBytes);
  const bitmap = Buffer.alloc(Math.ceil(allocated.length / 8));
  const backmap = Buffer.alloc(allocated.length * 8);
  let n = 0;
  for (const g of order) {
    const grain = grains.get(g);
    const gi = gtIndex.get(Math.floor(g / SESPARSE_GTES_PER_GT)) ?? 0;
    const at = gi * gtBytes + (g % SESPARSE_GTES_PER_GT) * 8;
    if (grain === 'zero') gts.writeBigUInt64LE(0x2000000000000000n, at);
    else if (grain === 'unmap') gts.writeBigUInt64LE(0x1000000000000000n, at);
    else if (grain) {
      const idx = BigInt(n);
      gts.writeBigUInt64LE(0x3000000000000000n | ((idx & 0xfffn) << 48n) | (idx >> 12n), at);
      grain.copy(data, n * grainBytes);
      bitmap[n >> 3] = (bitmap[n >> 3] ?? 0) | (1 << (n & 7));
      backmap.writeBigUInt64LE(BigInt(gi), n * 8);
      n++;
    }
  }
  const cst = Buffer.alloc(SECTOR);
  const fields: (bigint | number)[] = [
    SESPARSE_CONST_MAGIC, SESPARSE_VERSION, sectors, SESPARSE_GRAIN_SECTORS, SESPARSE_GT_SECTORS, 0, 0, 0, 0, 0,
    1, 1, 2, 2, 2048, 2048,
    L.gdOffset, L.gdSectors, L.gtOffset, L.gtSectors, L.bitmapOffset, L.bitmapSectors, L.backmapOffset, L.backmapSectors, L.grainsOffset, L.grainsSectors,
  ];
  fields.forEach((v, i) => cst.writeBigUInt64LE(BigInt(v), i * 8));
  const vol = Buffer.alloc(SECTOR);
  vol.writeBigUInt64LE(SESPARSE_VOLATILE_MAGIC, 0);
  vol.writeBigUInt64LE(BigInt(tables.length), 8); // freeGTNumber: the next grain table to hand out
  return {
    size: L.grainsOffset * SECTOR + data.length,
    chunks: [
      { position: 0, data: cst },
      { position: SECTOR, data: vol },
      { position: L.gdOffset * SECTOR, data: gd },
      { position: L.gtOffset * SECTOR, data: gts },
      { position: L.bitmapOffset * SECTOR, data: bitmap },
      { position: L.backmapOffset * SECTOR, data: backmap },
      { position: L.grainsOffset * SECTOR, data },
    ],
  };
}

/** Build a delta link (data file and descriptor) over a parent. */
export async function buildDeltaLink(opts: DeltaLinkOptions): Promise<DeltaLink> {
  const { capacity, format } = opts;
  if (!Number.isSafeInteger(capacity) || capacity <= 0 || capacity % SECTOR !== 0) {
    throw new VmdkRangeError(`capacity must be a positive multiple of 512 bytes, got ${capacity}`);
  }
  if (format === 'vmfsSparse' && capacity / SECTOR > MAX_VMFSSPARSE_SECTORS) throw new VmdkRangeError('vmfsSparse deltas hold less than 2 TiB; use seSparse');
  if (!/^[0-9a-f]{8}$/i.test(opts.parentCid)) throw new VmdkRangeError(`parent CID must be 8 hex digits: ${opts.parentCid}`);
  const cid = (opts.cid ?? randomBytes(4).toString('hex')).toLowerCase();
  if (!/^[0-9a-f]{8}$/.test(cid) || cid === 'ffffffff') throw new VmdkRangeError(`CID must be 8 hex digits other than ffffffff: ${cid}`);
  const grainBytes = format === 'seSparse' ? SESPARSE_GRAIN_SECTORS * SECTOR : SECTOR;
  const grains = await applyOps(opts, grainBytes);
  const dataFileName = `${opts.name}-${format === 'seSparse' ? 'sesparse' : 'delta'}.vmdk`;
  const body = format === 'seSparse' ? seSparseData(capacity, grains) : vmfsSparseData(capacity, grains);
  return { format, cid, descriptorFileName: `${opts.name}.vmdk`, descriptor: descriptorFor(opts, cid, dataFileName), dataFileName, ...body };
}

/** Write a link's descriptor and data file into `dir` (holes stay holes). */
export async function writeDeltaLink(dir: string, link: DeltaLink): Promise<{ descriptorPath: string; dataPath: string }> {
  const descriptorPath = join(dir, link.descriptorFileName);
  const dataPath = join(dir, link.dataFileName);
  const fh = await open(dataPath, 'w');
  try {
    for (const c of link.chunks) if (c.data.length > 0) await fh.write(c.data, 0, c.data.length, c.position);
    await fh.truncate(link.size);
  } finally {
    await fh.close();
  }
  await writeFile(descriptorPath, link.descriptor);
  return { descriptorPath, dataPath };
}
