/**
 * What is on a disk: the partition table (read in userspace by partx, so no
 * kernel partition support is needed), what each partition holds (blkid's
 * low-level probe at the partition's offset, no device needed), and how that
 * can be mounted read-only here, or why it cannot.
 */
import { readFile } from 'node:fs/promises';
import { run, toolInstalled } from './system.ts';

export interface PartitionSlot {
  /** Partition number in the table; 0 for a filesystem on the whole disk. */
  number: number;
  offset: number;
  size: number;
  scheme: 'gpt' | 'dos' | 'none' | string;
  /** GPT type GUID or MBR type byte (0x83). */
  typeId: string | null;
  /** GPT partition name. */
  name: string | null;
}

export interface Volume {
  fsType: string | null;
  label: string | null;
  uuid: string | null;
  usage: string | null;
}

/** KEY="value" pairs as partx -P and blkid -o export print them. */
function parsePairs(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of line.matchAll(/([A-Z_]+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = unescapeBlkid(m[2]!);
  return out;
}

function unescapeBlkid(v: string): string {
  // blkid/partx escape with \xNN and backslash-quoting.
  const bytes: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '\\' && v[i + 1] === 'x' && /^[0-9a-fA-F]{2}$/.test(v.slice(i + 2, i + 4))) {
      bytes.push(parseInt(v.slice(i + 2, i + 4), 16));
      i += 3;
    } else if (c === '\\' && i + 1 < v.length) {
      bytes.push(...Buffer.from(v[i + 1]!, 'utf8'));
      i += 1;
    } else bytes.push(...Buffer.from(c, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

const EXTENDED_MBR = new Set(['0x5', '0xf', '0x85']);

/** The partitions of a disk image file, or one slot for the whole disk when it has no table. */
export async function partitionSlots(file: string, capacity: number): Promise<PartitionSlot[]> {
  const r = await run('partx', ['--bytes', '--pairs', '--output', 'NR,START,SECTORS,SIZE,TYPE,NAME,SCHEME', file], { allowFail: true });
  const slots: PartitionSlot[] = [];
  if (r.code === 0) {
    for (const line of r.stdout.split('\n')) {
      if (!line.trim()) continue;
      const p = parsePairs(line);
      const typeId = p.TYPE ? p.TYPE.toLowerCase() : null;
      if (typeId && EXTENDED_MBR.has(typeId)) continue; // the container of logical partitions, not a volume
      slots.push({
        number: Number(p.NR),
        offset: Number(p.START) * 512,
        size: Number(p.SIZE),
        scheme: p.SCHEME || 'unknown',
        typeId,
        name: p.NAME || null,
      });
    }
  }
  if (slots.length === 0) slots.push({ number: 0, offset: 0, size: capacity, scheme: 'none', typeId: null, name: null });
  return slots;
}

export async function probeVolume(file: string, slot: PartitionSlot): Promise<Volume> {
  const args = ['--probe', '--output', 'export'];
  if (slot.number !== 0) args.push('--offset', String(slot.offset), '--size', String(slot.size));
  const r = await run('blkid', [...args, file], { allowFail: true });
  const kv: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv[line.slice(0, i)] = unescapeExport(line.slice(i + 1));
  }
  return { fsType: kv.TYPE ?? null, label: kv.LABEL ?? null, uuid: kv.UUID ?? null, usage: kv.USAGE ?? null };
}

/** blkid -o export quotes values for a shell: backslash before specials. */
function unescapeExport(v: string): string {
  return v.replace(/\\(.)/g, '$1');
}

// ---- how to mount ------------------------------------------------------------

export type Driver =
  | { kind: 'kernel'; fsType: string; options: string[] }
  | { kind: 'fuse'; command: string; args: (device: string, mountPoint: string) => string[] };

export type MountPlan = { ok: true; driver: Driver; description: string } | { ok: false; reason: string };

const SAFE = ['ro', 'nosuid', 'nodev', 'noexec'];

const GPT_NO_FS: Record<string, string> = {
  'e3c9e316-0b5c-4db8-817d-f92df00215ae': 'Microsoft reserved partition (holds no filesystem)',
  '21686148-6449-6e6f-744e-656564454649': 'BIOS boot partition (holds no filesystem)',
  '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f': 'Linux swap (holds no files)',
  'e6d6d379-f507-44c2-a23c-238f2a3df928': 'Linux LVM physical volume: logical volumes are not opened by file-level restore; download the disk (raw) and open it with LVM',
  'a19d880f-05fc-4d3b-a006-743f0f84911e': 'Linux software RAID member: arrays are not assembled by file-level restore',
  '5808c8aa-7e8f-42e0-85d2-e1e90434cfb3': 'Windows dynamic disk (LDM) metadata: dynamic volumes are not supported',
  'af9b60a0-1431-4f62-bc68-3311714a69ad': 'Windows dynamic disk (LDM) data: dynamic volumes are not supported',
  'aa31e02a-400f-11db-9590-000c2911d1b8': 'VMware VMFS datastore: not a guest filesystem',
};

const BY_TYPE: Record<string, string> = {
  LVM2_member: 'Linux LVM physical volume: logical volumes are not opened by file-level restore; download the disk (raw) and open it with LVM',
  crypto_LUKS: 'LUKS-encrypted volume: encrypted volumes are not opened by file-level restore',
  BitLocker: 'BitLocker-encrypted volume: encrypted volumes are not opened by file-level restore',
  swap: 'swap space (holds no files)',
  linux_raid_member: 'Linux software RAID member: arrays are not assembled by file-level restore',
  zfs_member: 'ZFS pool member: ZFS is not supported',
  ddf_raid_member: 'hardware RAID (DDF) member: not supported',
  isw_raid_member: 'Intel software RAID member: not supported',
  VMFS: 'VMware VMFS datastore: not a guest filesystem',
  VMFS_volume_member: 'VMware VMFS datastore: not a guest filesystem',
};

let kernelFs: Set<string> | null = null;
async function kernelFilesystems(): Promise<Set<string>> {
  if (!kernelFs) {
    const text = await readFile('/proc/filesystems', 'utf8').catch(() => '');
    kernelFs = new Set(text.split('\n').map((l) => l.replace(/^nodev\s*/, '').trim()).filter(Boolean));
  }
  return kernelFs;
}

/** How to mount `volume` read-only on this host (kernel driver first, FUSE driver otherwise), or why not. */
export async function planMount(volume: Volume, slot: PartitionSlot): Promise<MountPlan> {
  const t = volume.fsType;
  if (!t) {
    const known = slot.typeId ? GPT_NO_FS[slot.typeId] : undefined;
    return { ok: false, reason: known ?? 'no filesystem recognised' };
  }
  if (BY_TYPE[t]) return { ok: false, reason: BY_TYPE[t] };
  const kernel = await kernelFilesystems();
  switch (t) {
    case 'ext2':
    case 'ext3':
    case 'ext4':
      // The ext4 driver reads all three; noload: never replay the journal.
      if (kernel.has('ext4')) return { ok: true, driver: { kind: 'kernel', fsType: 'ext4', options: [...SAFE, 'noload'] }, description: `${t} (kernel, ro,noload)` };
      break;
    case 'xfs':
      if (kernel.has('xfs')) return { ok: true, driver: { kind: 'kernel', fsType: 'xfs', options: [...SAFE, 'norecovery', 'nouuid'] }, description: 'xfs (kernel, ro,norecovery)' };
      break;
    case 'btrfs':
      if (kernel.has('btrfs')) return { ok: true, driver: { kind: 'kernel', fsType: 'btrfs', options: [...SAFE, 'rescue=nologreplay'] }, description: 'btrfs (kernel, ro,rescue=nologreplay)' };
      break;
    case 'squashfs':
    case 'erofs':
      if (kernel.has(t)) return { ok: true, driver: { kind: 'kernel', fsType: t, options: SAFE }, description: `${t} (kernel, ro)` };
      break;
    case 'vfat':
    case 'msdos':
      if (kernel.has('vfat')) return { ok: true, driver: { kind: 'kernel', fsType: 'vfat', options: [...SAFE, 'utf8', 'shortname=mixed'] }, description: 'FAT (kernel vfat, ro)' };
      if (toolInstalled('fusefat')) {
        return { ok: true, driver: { kind: 'fuse', command: 'fusefat', args: (dev, mp) => ['-o', 'ro,nosuid,nodev,noexec', dev, mp] }, description: 'FAT (fusefat, ro; the kernel has no vfat)' };
      }
      return { ok: false, reason: 'FAT: this kernel has no vfat driver and fusefat is not installed (apt-get install fusefat)' };
    case 'exfat':
      if (kernel.has('exfat')) return { ok: true, driver: { kind: 'kernel', fsType: 'exfat', options: SAFE }, description: 'exFAT (kernel, ro)' };
      if (toolInstalled('mount.exfat-fuse')) return { ok: true, driver: { kind: 'fuse', command: 'mount.exfat-fuse', args: (dev, mp) => ['-o', 'ro,nosuid,nodev,noexec', dev, mp] }, description: 'exFAT (exfat-fuse, ro)' };
      return { ok: false, reason: 'exFAT: this kernel has no exfat driver and exfat-fuse is not installed (apt-get install exfat-fuse)' };
    case 'ntfs':
      if (toolInstalled('ntfs-3g')) return { ok: true, driver: { kind: 'fuse', command: 'ntfs-3g', args: (dev, mp) => ['-o', 'ro,nosuid,nodev,noexec', dev, mp] }, description: 'NTFS (ntfs-3g, ro)' };
      if (kernel.has('ntfs3')) return { ok: true, driver: { kind: 'kernel', fsType: 'ntfs3', options: SAFE }, description: 'NTFS (kernel ntfs3, ro)' };
      return { ok: false, reason: 'NTFS: ntfs-3g is not installed (apt-get install ntfs-3g) and the kernel has no ntfs3' };
    default:
      return { ok: false, reason: `${t}: not a filesystem file-level restore can open` };
  }
  return { ok: false, reason: `${t}: this kernel has no ${t} driver` };
}
