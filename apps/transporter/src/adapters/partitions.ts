/**
 * Partition tables of a LUN, read from its first and last sectors: GPT (the
 * protective MBR, the primary header at LBA 1, the backup header at the last
 * LBA when the primary is damaged) and plain MBR (the four primary entries).
 * ESXi 5 and later put a datastore's VMFS in partition 1 of a GPT at sector
 * 2048; VMFS3-era LUNs used an MBR entry of type 0xFB. Partitions are numbered
 * from 1 as vSphere (HostScsiDiskPartition.partition) and Linux number them:
 * by their slot in the GPT entry array or the MBR.
 *
 * Pure: reads through a small byte-source interface, so it is tested on
 * buffers as well as on real devices.
 */
import { crc32 } from 'node:zlib';

export class PartitionTableError extends Error {
  override name = 'PartitionTableError';
}

export interface Partition {
  /** 1-based, as vSphere and Linux number it. */
  number: number;
  /** Byte offset from the start of the device. */
  start: number;
  /** Bytes. */
  size: number;
  /** GPT: the type GUID, upper case ("AA31E02A-400F-11DB-9590-000C2911D1B8"); MBR: the type byte ("0xfb"). */
  type: string;
  /** A short name for the type when it is a well-known one ("VMFS", "vmkcore", …). */
  typeName?: string;
  /** A VMFS datastore partition (GPT type AA31E02A-… or MBR 0xFB). */
  vmfs: boolean;
  /** GPT partition name, when set. */
  name?: string;
}

export interface PartitionTable {
  scheme: 'gpt' | 'mbr';
  /** Logical sector size the table was found with. */
  sectorSize: number;
  partitions: Partition[];
  /** What was odd but survivable (a damaged primary GPT header, an extended partition not followed). */
  notes: string[];
}

/** Where the table is read from: a device or a buffer. Reads past `size` are not made. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export function bufferSource(buf: Buffer): ByteSource {
  return { size: buf.length, read: async (o, l) => buf.subarray(o, o + l) };
}

export const VMFS_GPT_TYPE = 'AA31E02A-400F-11DB-9590-000C2911D1B8';

const GPT_TYPE_NAMES: Record<string, string> = {
  [VMFS_GPT_TYPE]: 'VMFS',
  '9D275380-40AD-11DB-BF97-000C2911D1B8': 'vmkcore',
  '9198EFFC-31C0-11DB-8F78-000C2911D1B8': 'VMware reserved',
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI system',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 'Linux filesystem',
};

const MBR_TYPE_NAMES: Record<number, string> = {
  0xfb: 'VMFS',
  0xfc: 'vmkcore',
  0xee: 'GPT protective',
  0x05: 'extended',
  0x0f: 'extended',
  0x85: 'extended',
  0x83: 'Linux',
  0x07: 'NTFS/exFAT',
};

/**
 * A GUID as written on disk: the first three fields little-endian, the last
 * eight bytes in order. Returns the usual text form, upper case.
 */
export function guidFromBytes(b: Buffer): string {
  const hex = (buf: Buffer) => buf.toString('hex');
  const le = (o: number, n: number) => hex(Buffer.from(b.subarray(o, o + n)).reverse());
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${hex(b.subarray(8, 10))}-${hex(b.subarray(10, 16))}`.toUpperCase();
}

const MAX_ENTRY_ARRAY = 1024 * 1024; // bytes; real tables hold 128 entries of 128 bytes (16 KiB)

/** A u64 field that must fit a JS number (every real LBA does). */
function u64(b: Buffer, o: number, what: string): number {
  const v = b.readBigUInt64LE(o);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PartitionTableError(`${what} ${v} is out of range`);
  return Number(v);
}

async function readExact(src: ByteSource, offset: number, length: number, what: string): Promise<Buffer> {
  if (offset < 0 || offset + length > src.size) throw new PartitionTableError(`${what} at byte ${offset} (+${length}) lies past the end of the device (${src.size} bytes): truncated?`);
  const b = await src.read(offset, length);
  if (b.length !== length) throw new PartitionTableError(`short read of ${what} at byte ${offset}: ${b.length} of ${length} bytes`);
  return b;
}

const hasGptSignature = (b: Buffer) => b.length >= 8 && b.toString('latin1', 0, 8) === 'EFI PART';

/**
 * Parses and checks the GPT header at `lba` and its entry array; throws
 * PartitionTableError saying what is wrong.
 */
async function gptAt(src: ByteSource, sectorSize: number, lba: number, which: 'primary' | 'backup'): Promise<Partition[]> {
  const where = `${which} GPT header (LBA ${lba}, ${sectorSize}-byte sectors)`;
  const sector = await readExact(src, lba * sectorSize, sectorSize, where);
  if (!hasGptSignature(sector)) throw new PartitionTableError(`${where}: no "EFI PART" signature`);
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < 92 || headerSize > sectorSize) throw new PartitionTableError(`${where}: header size ${headerSize} is not between 92 and ${sectorSize}`);
  const header = Buffer.from(sector.subarray(0, headerSize));
  const storedCrc = header.readUInt32LE(16);
  header.writeUInt32LE(0, 16);
  const crc = crc32(header);
  if (crc !== storedCrc) throw new PartitionTableError(`${where}: header CRC32 mismatch (stored ${hex32(storedCrc)}, computed ${hex32(crc)})`);
  const myLba = u64(sector, 24, `${where}: its own LBA`);
  if (myLba !== lba) throw new PartitionTableError(`${where}: says it lies at LBA ${myLba}`);
  const firstUsable = u64(sector, 40, `${where}: first usable LBA`);
  const lastUsable = u64(sector, 48, `${where}: last usable LBA`);
  const entriesLba = u64(sector, 72, `${where}: entry array LBA`);
  const count = sector.readUInt32LE(80);
  const entrySize = sector.readUInt32LE(84);
  const entriesCrc = sector.readUInt32LE(88);
  if (entrySize < 128 || entrySize % 8 !== 0) throw new PartitionTableError(`${where}: entry size ${entrySize} (must be 128 or a larger multiple of 8)`);
  if (count * entrySize > MAX_ENTRY_ARRAY) throw new PartitionTableError(`${where}: ${count} entries of ${entrySize} bytes is more than any real table holds`);
  const entries = await readExact(src, entriesLba * sectorSize, count * entrySize, `${where}: entry array`);
  const ecrc = crc32(entries);
  if (ecrc !== entriesCrc) throw new PartitionTableError(`${where}: entry array CRC32 mismatch (stored ${hex32(entriesCrc)}, computed ${hex32(ecrc)})`);

  const deviceSectors = Math.floor(src.size / sectorSize);
  const out: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const e = entries.subarray(i * entrySize, i * entrySize + 128);
    if (e.subarray(0, 16).every((x) => x === 0)) continue; // unused slot
    const number = i + 1;
    const first = u64(e, 32, `partition ${number}: first LBA`);
    const last = u64(e, 40, `partition ${number}: last LBA`);
    if (last < first) throw new PartitionTableError(`${where}: partition ${number} ends (LBA ${last}) before it starts (LBA ${first})`);
    if (first < firstUsable || last > lastUsable) throw new PartitionTableError(`${where}: partition ${number} (LBA ${first}–${last}) lies outside the usable LBAs ${firstUsable}–${lastUsable}`);
    if (last >= deviceSectors) throw new PartitionTableError(`partition ${number} (LBA ${first}–${last}) runs past the end of the device (${deviceSectors} sectors): truncated?`);
    const type = guidFromBytes(e.subarray(0, 16));
    const name = e.toString('utf16le', 56, 128).replace(/\0[\s\S]*$/, '');
    out.push({ number, start: first * sectorSize, size: (last - first + 1) * sectorSize, type, ...(GPT_TYPE_NAMES[type] ? { typeName: GPT_TYPE_NAMES[type] } : {}), vmfs: type === VMFS_GPT_TYPE, ...(name ? { name } : {}) });
  }
  checkOverlaps(out, 'GPT');
  return out;
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function checkOverlaps(parts: Partition[], scheme: string): void {
  const sorted = [...parts].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.start < a.start + a.size) throw new PartitionTableError(`${scheme} partitions ${a.number} and ${b.number} overlap`);
  }
}

interface MbrEntry {
  slot: number;
  status: number;
  type: number;
  lba: number;
  sectors: number;
}

function mbrEntries(sector0: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let slot = 0; slot < 4; slot++) {
    const o = 446 + slot * 16;
    const type = sector0[o + 4]!;
    if (type === 0) continue;
    out.push({ slot, status: sector0[o]!, type, lba: sector0.readUInt32LE(o + 8), sectors: sector0.readUInt32LE(o + 12) });
  }
  return out;
}

const mbrType = (t: number) => `0x${t.toString(16).padStart(2, '0')}`;

function mbrPartitions(entries: MbrEntry[], src: ByteSource, sectorSize: number, notes: string[]): Partition[] {
  const deviceSectors = Math.floor(src.size / sectorSize);
  const out: Partition[] = [];
  for (const e of entries) {
    const number = e.slot + 1;
    if (e.status !== 0x00 && e.status !== 0x80) throw new PartitionTableError(`MBR entry ${number} has status byte ${mbrType(e.status)} (only 0x00 and 0x80 are valid): not a partition table, or a garbled one`);
    if (e.lba === 0 || e.sectors === 0) throw new PartitionTableError(`MBR entry ${number} (type ${mbrType(e.type)}) starts at sector ${e.lba} with ${e.sectors} sectors: garbled`);
    if (e.lba + e.sectors > deviceSectors) throw new PartitionTableError(`MBR partition ${number} (sectors ${e.lba}–${e.lba + e.sectors - 1}) runs past the end of the device (${deviceSectors} sectors): truncated?`);
    if (MBR_TYPE_NAMES[e.type] === 'extended') notes.push(`MBR partition ${number} is an extended partition; the logical partitions in it are not read`);
    out.push({ number, start: e.lba * sectorSize, size: e.sectors * sectorSize, type: mbrType(e.type), ...(MBR_TYPE_NAMES[e.type] ? { typeName: MBR_TYPE_NAMES[e.type] } : {}), vmfs: e.type === 0xfb });
  }
  checkOverlaps(out, 'MBR');
  return out;
}

/**
 * The device's partition table, or null when it has none (no MBR signature
 * and no GPT header: an unpartitioned device such as a whole-device
 * filesystem). Throws PartitionTableError for a table that is there but
 * cannot be trusted (bad CRCs on both GPT copies, entries past the end, …).
 *
 * GPT is found at LBA 1 with 512- or 4096-byte sectors (whichever has the
 * header); a damaged primary falls back to the backup at the last LBA, and the
 * notes say so. MBR sector numbers are read in `mbrSectorSize` units (the
 * device's logical sector size; 512 unless told).
 */
export async function readPartitionTable(src: ByteSource, opts: { mbrSectorSize?: number } = {}): Promise<PartitionTable | null> {
  if (src.size < 512) throw new PartitionTableError(`the device has ${src.size} bytes, less than one sector: truncated?`);
  const sector0 = await readExact(src, 0, 512, 'the MBR');
  const mbrSigned = sector0[510] === 0x55 && sector0[511] === 0xaa;
  const entries = mbrSigned ? mbrEntries(sector0) : [];
  const protective = entries.some((e) => e.type === 0xee);

  // The primary GPT header: LBA 1 is byte 512 or byte 4096.
  let primary: { sectorSize: number; error?: string } | null = null;
  for (const ss of [512, 4096]) {
    if (src.size < 2 * ss) continue;
    const head = await readExact(src, ss, 8, `LBA 1 (${ss}-byte sectors)`);
    if (hasGptSignature(head)) {
      primary = { sectorSize: ss };
      break;
    }
  }
  if (primary || protective) {
    const tried: string[] = [];
    if (primary) {
      try {
        return { scheme: 'gpt', sectorSize: primary.sectorSize, partitions: await gptAt(src, primary.sectorSize, 1, 'primary'), notes: [] };
      } catch (err) {
        if (!(err instanceof PartitionTableError)) throw err;
        tried.push(err.message);
      }
    } else {
      tried.push('no primary GPT header at LBA 1 (512- or 4096-byte sectors)');
    }
    // The backup header at the device's last LBA, with the sector size the primary was found with (or either).
    for (const ss of primary ? [primary.sectorSize] : [512, 4096]) {
      if (src.size % ss !== 0 || src.size < 2 * ss) continue;
      const last = src.size / ss - 1;
      try {
        const partitions = await gptAt(src, ss, last, 'backup');
        return { scheme: 'gpt', sectorSize: ss, partitions, notes: [`${tried.join('; ')}: using the backup GPT header at LBA ${last}`] };
      } catch (err) {
        if (!(err instanceof PartitionTableError)) throw err;
        tried.push(err.message);
      }
    }
    throw new PartitionTableError(`no valid GPT: ${tried.join('; ')}`);
  }
  if (!mbrSigned) return null;
  const sectorSize = opts.mbrSectorSize ?? 512;
  const notes: string[] = [];
  return { scheme: 'mbr', sectorSize, partitions: mbrPartitions(entries, src, sectorSize, notes), notes };
}

/** "1 MiB", "64 KiB", "12345 bytes": for messages. */
export function formatOffset(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/** "1 (VMFS at 1 MiB, 500 MiB), 2 (vmkcore at 600 MiB, 110 MiB)": what a table holds, for messages. */
export function describePartitions(t: PartitionTable): string {
  if (t.partitions.length === 0) return `its ${t.scheme.toUpperCase()} holds no partitions`;
  const list = t.partitions.map((p) => `${p.number} (${p.typeName ?? `type ${p.type}`} at ${formatOffset(p.start)}, ${formatOffset(p.size)})`).join(', ');
  return `its ${t.scheme.toUpperCase()} holds partition${t.partitions.length > 1 ? 's' : ''} ${list}`;
}

/**
 * The partition that holds a datastore's VMFS: the one vSphere reports
 * (HostScsiDiskPartition.partition; 0 = not known) when the table has it and
 * it is a VMFS partition, else the table's only VMFS partition. null when the
 * device has no partition table (the caller then looks for VMFS on the whole
 * device). PartitionTableError saying what the table holds otherwise.
 */
export function chooseVmfsPartition(table: PartitionTable | null, reported: number): Partition | null {
  if (!table) return null;
  if (reported > 0) {
    const p = table.partitions.find((x) => x.number === reported);
    if (!p) throw new PartitionTableError(`vSphere reports the datastore in partition ${reported}, but ${describePartitions(table)}`);
    if (!p.vmfs) throw new PartitionTableError(`vSphere reports the datastore in partition ${reported}, but that is not a VMFS partition (type ${p.typeName ? `${p.typeName}, ${p.type}` : p.type}); ${describePartitions(table)}`);
    return p;
  }
  const vmfs = table.partitions.filter((x) => x.vmfs);
  if (vmfs.length === 1) return vmfs[0]!;
  if (vmfs.length === 0) throw new PartitionTableError(`no VMFS partition: ${describePartitions(table)}`);
  throw new PartitionTableError(`several VMFS partitions (${vmfs.map((x) => x.number).join(', ')}) and vSphere does not say which holds the datastore`);
}
