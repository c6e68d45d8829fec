/**
 * Test helper: the bytes of partition tables as ESXi and partitioning tools
 * write them, built here (no sgdisk/sfdisk needed) and checked against
 * util-linux's partx in partitions.test.ts, so the parser is not only tested
 * against its own idea of the format.
 */
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export const VMFS_TYPE = 'AA31E02A-400F-11DB-9590-000C2911D1B8';
export const VMKCORE_TYPE = '9D275380-40AD-11DB-BF97-000C2911D1B8';
export const LINUX_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

/** The on-disk form of a GUID: the first three groups byte-swapped (little-endian), the rest as written. */
export function guidBytes(guid: string): Buffer {
  const g = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(g)) throw new Error(`not a GUID: ${guid}`);
  const b = Buffer.from(g, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

export interface GptPart {
  type: string;
  firstLba: number;
  lastLba: number;
  name?: string;
  /** Slot in the entry array (0-based); the next free one when absent. */
  slot?: number;
}

export interface GptLayout {
  sectorSize: number;
  /** Whole device, in sectors. */
  sectors: number;
  parts: GptPart[];
}

/** Regions to write: [byte offset, bytes]: the protective MBR, the primary header and array, the backup array and header. */
export function gptRegions(l: GptLayout): [number, Buffer][] {
  const ss = l.sectorSize;
  const entryCount = 128;
  const entrySize = 128;
  const arraySectors = Math.ceil((entryCount * entrySize) / ss);
  const lastLba = l.sectors - 1;
  const firstUsable = 2 + arraySectors;
  const lastUsable = lastLba - 1 - arraySectors;

  const array = Buffer.alloc(entryCount * entrySize);
  l.parts.forEach((p, i) => {
    const o = (p.slot ?? i) * entrySize;
    guidBytes(p.type).copy(array, o);
    guidBytes(`5eed0000-0000-4000-8000-${(i + 1).toString(16).padStart(12, '0')}`).copy(array, o + 16);
    array.writeBigUInt64LE(BigInt(p.firstLba), o + 32);
    array.writeBigUInt64LE(BigInt(p.lastLba), o + 40);
    if (p.name) array.write(p.name, o + 56, 72, 'utf16le');
  });

  const header = (myLba: number, otherLba: number, arrayLba: number) => {
    const h = Buffer.alloc(ss);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(myLba), 24);
    h.writeBigUInt64LE(BigInt(otherLba), 32);
    h.writeBigUInt64LE(BigInt(firstUsable), 40);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    guidBytes('0da7a000-1111-4222-8333-444455556666').copy(h, 56);
    h.writeBigUInt64LE(BigInt(arrayLba), 72);
    h.writeUInt32LE(entryCount, 80);
    h.writeUInt32LE(entrySize, 84);
    h.writeUInt32LE(crc32(array), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };

  const mbr = mbrSector([{ type: 0xee, lba: 1, sectors: Math.min(l.sectors - 1, 0xffffffff) }]);
  return [
    [0, mbr],
    [ss, header(1, lastLba, 2)],
    [2 * ss, array],
    [(lastLba - arraySectors) * ss, array],
    [lastLba * ss, header(lastLba, 1, lastLba - arraySectors)],
  ];
}

export interface MbrPart {
  type: number;
  lba: number;
  sectors: number;
  status?: number;
}

/** A 512-byte MBR with up to four primary entries (CHS fields set to the "use LBA" maximum, as modern tools do). */
export function mbrSector(parts: MbrPart[]): Buffer {
  const b = Buffer.alloc(512);
  parts.forEach((p, i) => {
    const o = 446 + i * 16;
    b[o] = p.status ?? 0;
    b.writeUIntBE(0xfeffff, o + 1, 3);
    b[o + 4] = p.type;
    b.writeUIntBE(0xfeffff, o + 5, 3);
    b.writeUInt32LE(p.lba, o + 8);
    b.writeUInt32LE(p.sectors, o + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** The regions laid out in one buffer of `size` bytes (for the pure parser tests). */
export function imageBuffer(size: number, regions: [number, Buffer][]): Buffer {
  const b = Buffer.alloc(size);
  for (const [o, data] of regions) data.copy(b, o);
  return b;
}

/** Writes the regions into `file` (created sparse, `size` bytes). */
export async function writeRegions(file: string, size: number, regions: [number, Buffer][]): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.truncate(size);
    for (const [o, data] of regions) await fh.write(data, 0, data.length, o);
  } finally {
    await fh.close();
  }
}
