/**
 * GRUB for BIOS on a GPT disk image, written without grub-install (which
 * needs the image's partitions as block devices, and this build works on a
 * plain file). What grub-bios-setup does for a GPT disk with a BIOS boot
 * partition, by the layout in GRUB's include/grub/i386/pc/boot.h and
 * grub-core/boot/i386/pc/{boot,diskboot}.S:
 *
 *   MBR (sector 0): boot.img's first 440 bytes (the disk signature and the
 *     protective partition table after them are kept), with
 *       0x5c  u64  sector of core.img's first sector (KERNEL_SECTOR)
 *       0x66  u16  0x9090: the floppy/hard-disk probe jump patched out (DRIVE_CHECK)
 *   BIOS boot partition: core.img, whose first sector (diskboot.img) ends in a
 *     block list {u64 start, u16 sectors, u16 segment} at offset 500 that
 *     names where the rest of core.img is: start = core sector + 1,
 *     sectors = core sectors - 1 (segment stays 0x820).
 *
 * core.img itself comes from grub-mkimage with an embedded configuration that
 * finds the root filesystem by UUID, so no partition number is baked in.
 */
import { BuildError } from './exec.ts';

export const SECTOR = 512;
const KERNEL_SECTOR = 0x5c;
const DRIVE_CHECK = 0x66;
const BLOCKLIST = SECTOR - 12;
const MBR_CODE_END = 440;

export interface BiosBoot {
  /** The new sector 0. */
  mbr: Buffer;
  /** core.img, padded to whole sectors and patched, to write at `coreLba`. */
  core: Buffer;
}

/**
 * Patches boot.img and core.img for a core image at `coreLba` inside a BIOS
 * boot partition of `partitionSectors` sectors; `oldMbr` is the disk's sector 0
 * as written by the partitioner (its table is kept).
 */
export function biosBootSectors(opts: { bootImg: Buffer; coreImg: Buffer; oldMbr: Buffer; coreLba: number; partitionSectors: number }): BiosBoot {
  const { bootImg, coreImg, oldMbr, coreLba } = opts;
  if (bootImg.length !== SECTOR) throw new BuildError(`boot.img must be ${SECTOR} bytes, got ${bootImg.length}`);
  if (oldMbr.length !== SECTOR || oldMbr.readUInt16LE(510) !== 0xaa55) throw new BuildError('sector 0 of the disk holds no partition table (no 0x55AA signature)');
  const sectors = Math.ceil(coreImg.length / SECTOR);
  if (sectors < 2) throw new BuildError(`core.img is too small (${coreImg.length} bytes)`);
  if (sectors > opts.partitionSectors) throw new BuildError(`core.img needs ${sectors} sectors but the BIOS boot partition has ${opts.partitionSectors}`);
  const core = Buffer.alloc(sectors * SECTOR);
  coreImg.copy(core);
  const segment = core.readUInt16LE(BLOCKLIST + 10);
  if (segment !== 0x820) throw new BuildError(`core.img does not start with GRUB's diskboot block list (segment 0x${segment.toString(16)}, expected 0x820)`);
  core.writeBigUInt64LE(BigInt(coreLba + 1), BLOCKLIST);
  core.writeUInt16LE(sectors - 1, BLOCKLIST + 8);

  const mbr = Buffer.from(oldMbr);
  bootImg.copy(mbr, 0, 0, MBR_CODE_END);
  mbr.writeBigUInt64LE(BigInt(coreLba), KERNEL_SECTOR);
  mbr.writeUInt16LE(0x9090, DRIVE_CHECK);
  return { mbr, core };
}

/** The configuration embedded in core.img / BOOTX64.EFI: find the root filesystem by UUID. */
export function earlyConfig(rootUuid: string): string {
  return `search --no-floppy --fs-uuid --set=root ${rootUuid}\nset prefix=($root)/boot/grub\n`;
}

/** /boot/grub/grub.cfg of the appliance (kernel and initrd through Debian's /vmlinuz and /initrd.img links). */
export function grubConfig(opts: { rootUuid: string; cmdline: string; title: string }): string {
  return `# Vaultline appliance. update-grub (run by kernel upgrades) replaces this file;
# /etc/default/grub carries the same kernel command line.
set timeout=3
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
search --no-floppy --fs-uuid --set=root ${opts.rootUuid}
menuentry '${opts.title}' --id vaultline {
  linux /vmlinuz root=UUID=${opts.rootUuid} ro ${opts.cmdline}
  initrd /initrd.img
}
`;
}

/** GRUB modules built into core.img (BIOS) and BOOTX64.EFI; the rest load from /boot/grub/<platform>. */
export const GRUB_MODULES = {
  'i386-pc': ['biosdisk', 'part_gpt', 'part_msdos', 'ext2', 'search', 'search_fs_uuid', 'normal', 'configfile'],
  'x86_64-efi': ['part_gpt', 'part_msdos', 'ext2', 'fat', 'search', 'search_fs_uuid', 'normal', 'configfile', 'efi_gop', 'efi_uga'],
} as const;
