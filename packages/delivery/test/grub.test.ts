import { describe, expect, it } from 'vitest';
import { biosBootSectors, earlyConfig, grubConfig } from '../src/grub.ts';

/** A boot.img-like sector and a core.img whose first sector ends in diskboot's default block list {2, 0, 0x820}. */
function images(coreSectors: number) {
  const bootImg = Buffer.alloc(512, 0xb0);
  bootImg.writeUInt16LE(0xaa55, 510);
  const coreImg = Buffer.alloc(coreSectors * 512 - 100, 0xc0);
  coreImg.writeBigUInt64LE(2n, 500);
  coreImg.writeUInt16LE(0, 508);
  coreImg.writeUInt16LE(0x820, 510);
  const oldMbr = Buffer.alloc(512, 0);
  oldMbr.fill(0xee, 440, 510); // disk signature and the protective partition table
  oldMbr.writeUInt16LE(0xaa55, 510);
  return { bootImg, coreImg, oldMbr };
}

describe('GRUB for BIOS without grub-install', () => {
  it('puts boot.img\'s code in the MBR, keeps the partition table, and points both block lists at core.img', () => {
    const { bootImg, coreImg, oldMbr } = images(62);
    const { mbr, core } = biosBootSectors({ bootImg, coreImg, oldMbr, coreLba: 2048, partitionSectors: 2048 });
    expect(mbr.length).toBe(512);
    expect(mbr.subarray(440)).toEqual(oldMbr.subarray(440));
    expect(mbr.readBigUInt64LE(0x5c)).toBe(2048n); // KERNEL_SECTOR: core.img's first sector
    expect(mbr.readUInt16LE(0x66)).toBe(0x9090); // the floppy probe jump is patched out
    expect(mbr.subarray(0, 0x5c)).toEqual(bootImg.subarray(0, 0x5c));
    expect(core.length).toBe(62 * 512); // padded to whole sectors
    expect(core.readBigUInt64LE(500)).toBe(2049n); // the rest of core.img follows its first sector
    expect(core.readUInt16LE(508)).toBe(61);
    expect(core.readUInt16LE(510)).toBe(0x820);
    expect(core.subarray(0, 500)).toEqual(coreImg.subarray(0, 500));
  });

  it('refuses a core.img that does not fit, is not GRUB\'s, or a disk without a partition table', () => {
    const { bootImg, coreImg, oldMbr } = images(62);
    expect(() => biosBootSectors({ bootImg, coreImg, oldMbr, coreLba: 2048, partitionSectors: 40 })).toThrow('core.img needs 62 sectors but the BIOS boot partition has 40');
    const notGrub = Buffer.from(coreImg);
    notGrub.writeUInt16LE(0x1234, 510);
    expect(() => biosBootSectors({ bootImg, coreImg: notGrub, oldMbr, coreLba: 2048, partitionSectors: 2048 })).toThrow(/does not start with GRUB's diskboot block list/);
    expect(() => biosBootSectors({ bootImg, coreImg, oldMbr: Buffer.alloc(512), coreLba: 2048, partitionSectors: 2048 })).toThrow(/no partition table/);
  });

  it('finds the root filesystem by UUID and boots through Debian\'s /vmlinuz and /initrd.img links', () => {
    expect(earlyConfig('1234-abcd')).toBe('search --no-floppy --fs-uuid --set=root 1234-abcd\nset prefix=($root)/boot/grub\n');
    const cfg = grubConfig({ rootUuid: 'u-1', cmdline: 'console=tty0', title: 'Vaultline 1.0' });
    expect(cfg).toContain("menuentry 'Vaultline 1.0'");
    expect(cfg).toContain('linux /vmlinuz root=UUID=u-1 ro console=tty0');
    expect(cfg).toContain('initrd /initrd.img');
  });
});
