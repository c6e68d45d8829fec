/**
 * The appliance's system disk as a partitioned raw image, made from the
 * cached Debian tree, the staged app and ova-build/rootfs without loop
 * devices or mounting the image (this build machine's kernel shows no
 * partitions of a loop device, and needs none):
 *
 *   GPT  p1  BIOS boot, 1 MiB     GRUB core.img (BIOS)
 *        p2  EFI system, 100 MiB  FAT32 written by mkfs.fat --offset + mtools: \EFI\BOOT\BOOTX64.EFI
 *        p3  root, the rest       ext4 written by mkfs.ext4 -E offset= -d <tree>
 *
 * The tree is an overlay mount (the cached Debian tree read-only below, the
 * app and the appliance's files above), so the cache is never changed.
 */
import { randomUUID } from 'node:crypto';
import { cp, mkdir, open, readFile, rm, symlink, writeFile, chmod, readdir, copyFile, lstat } from 'node:fs/promises';
import path from 'node:path';
import { biosBootSectors, earlyConfig, grubConfig, GRUB_MODULES, SECTOR } from './grub.ts';
import { chroot, withChroot, type DebianTree } from './debian.ts';
import { BuildError, removeTree, run, type Step } from './exec.ts';

const MiB = 1024 * 1024;
export const BIOS_PART = { start: 2048, sectors: 2048 };
export const ESP_PART = { start: 4096, sectors: (100 * MiB) / SECTOR };
export const ROOT_START = ESP_PART.start + ESP_PART.sectors;
/** GPT keeps its backup table in the last 33 sectors. */
const GPT_TAIL = 34;

/** The kernel command line (also written to /etc/default/grub for update-grub). */
export const KERNEL_CMDLINE = 'console=ttyS0,115200n8 console=tty0 quiet systemd.show_status=true';

/** Units enabled in the appliance. */
export const ENABLED_UNITS = [
  'systemd-networkd.service',
  'systemd-resolved.service',
  'systemd-timesyncd.service',
  'vaultline-firstboot.service',
  'vaultline-guestinfo.service',
  'vaultline-flr.service',
  'vaultline-director.service',
  'vaultline-transporter.service',
  'vaultline-console.service',
  'vaultline-console.path',
  'vaultline-serial-console.service',
];

export interface DiskImage {
  file: string;
  capacity: number;
  rootUuid: string;
}

export interface DiskInputs {
  os: DebianTree;
  appDir: string;
  /** ova-build/rootfs */
  overlayDir: string;
  /** The Node.js binary installed as /usr/local/bin/node. */
  nodeBinary: string;
  version: string;
  /** Build digest recorded in /etc/vaultline/release. */
  digest: string;
  capacityGiB: number;
  workDir: string;
  step: Step;
}

async function copyTree(from: string, to: string): Promise<void> {
  for (const e of await readdir(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dest = path.join(to, e.name);
    if (e.isDirectory()) {
      await mkdir(dest, { recursive: true });
      await copyTree(src, dest);
    } else {
      await rm(dest, { force: true });
      await cp(src, dest, { verbatimSymlinks: true });
      if (e.isFile()) await chmod(dest, (await lstat(src)).mode & 0o777);
    }
  }
}

/** Fills the merged tree: the app, node, the appliance's files, enabled units, fstab, GRUB files. */
async function fillTree(root: string, inp: DiskInputs, rootUuid: string, grubOut: string): Promise<void> {
  await cp(inp.appDir, path.join(root, 'opt/vaultline'), { recursive: true, verbatimSymlinks: true });
  await copyFile(inp.nodeBinary, path.join(root, 'usr/local/bin/node'));
  await chmod(path.join(root, 'usr/local/bin/node'), 0o755);
  await copyTree(inp.overlayDir, root);
  // The overlay has no etc/vaultline of its own (git keeps no empty folders), so make it here.
  await mkdir(path.join(root, 'etc/vaultline'), { recursive: true });
  await writeFile(path.join(root, 'etc/vaultline/release'), `VERSION=${inp.version}\nBUILD=${inp.digest}\nNODE=${(await run(inp.nodeBinary, ['--version'])).stdout.trim()}\n`);
  // The banner lives in memory: /etc/issue.d points at it.
  await mkdir(path.join(root, 'etc/issue.d'), { recursive: true });
  await symlink('/run/vaultline/console.issue', path.join(root, 'etc/issue.d/vaultline.issue'));
  await rm(path.join(root, 'etc/resolv.conf'), { force: true });
  await symlink('../run/systemd/resolve/stub-resolv.conf', path.join(root, 'etc/resolv.conf'));
  await mkdir(path.join(root, 'var/log/journal'), { recursive: true });
  await mkdir(path.join(root, 'boot/efi'), { recursive: true });
  await writeFile(
    path.join(root, 'etc/fstab'),
    `# Vaultline appliance\nUUID=${rootUuid} / ext4 errors=remount-ro 0 1\nLABEL=VL-EFI /boot/efi vfat umask=0077,nofail 0 2\n`,
  );
  await mkdir(path.join(root, 'boot/grub'), { recursive: true });
  await writeFile(path.join(root, 'boot/grub/grub.cfg'), grubConfig({ rootUuid, cmdline: KERNEL_CMDLINE, title: `Vaultline ${inp.version}` }));
  await withChroot(root, async () => {
    // The Director's user (usr/lib/sysusers.d/vaultline.conf) exists in the image, not only after a boot.
    await chroot(root, 'systemd-sysusers >/dev/null');
    await chroot(root, `systemctl enable ${ENABLED_UNITS.join(' ')} >/dev/null 2>&1 && systemctl disable ssh.socket >/dev/null 2>&1 || true; systemctl is-enabled ${ENABLED_UNITS.join(' ')} >/dev/null`);
    // Root signs in with a key only (none is set); no password is ever valid.
    await chroot(root, 'passwd -l root >/dev/null');
    const tmp = '/tmp/vaultline-grub';
    await writeFile(path.join(root, 'tmp/vaultline-early.cfg'), earlyConfig(rootUuid));
    await chroot(
      root,
      [
        `mkdir -p ${tmp}`,
        `grub-mkimage -O i386-pc -o ${tmp}/core.img -c /tmp/vaultline-early.cfg -p /boot/grub ${GRUB_MODULES['i386-pc'].join(' ')}`,
        `grub-mkimage -O x86_64-efi -o ${tmp}/BOOTX64.EFI -c /tmp/vaultline-early.cfg -p /boot/grub ${GRUB_MODULES['x86_64-efi'].join(' ')}`,
        `cp /usr/lib/grub/i386-pc/boot.img ${tmp}/`,
        'mkdir -p /boot/grub/i386-pc /boot/grub/x86_64-efi',
        'cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst /boot/grub/i386-pc/',
        'cp /usr/lib/grub/x86_64-efi/*.mod /usr/lib/grub/x86_64-efi/*.lst /boot/grub/x86_64-efi/',
      ].join(' && '),
    );
    for (const f of ['core.img', 'BOOTX64.EFI', 'boot.img']) await copyFile(path.join(root, tmp, f), path.join(grubOut, f));
    await rm(path.join(root, tmp), { recursive: true, force: true });
    await rm(path.join(root, 'tmp/vaultline-early.cfg'), { force: true });
  });
}

/** Builds the raw disk image at `<workDir>/disk.raw`. */
export async function buildDiskImage(inp: DiskInputs): Promise<DiskImage> {
  const capacity = inp.capacityGiB * 1024 * MiB;
  const work = inp.workDir;
  await removeTree(work);
  const upper = path.join(work, 'upper');
  const ovlWork = path.join(work, 'ovl-work');
  const merged = path.join(work, 'merged');
  const grubOut = path.join(work, 'grub');
  for (const d of [upper, ovlWork, merged, grubOut]) await mkdir(d, { recursive: true });
  const rootUuid = randomUUID();
  const file = path.join(work, 'disk.raw');

  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${inp.os.dir},upperdir=${upper},workdir=${ovlWork}`, merged]);
  try {
    await inp.step('appliance tree (app, node, units, GRUB)', () => fillTree(merged, inp, rootUuid, grubOut));

    await inp.step(`partitioned disk image (${inp.capacityGiB} GiB, sparse)`, async () => {
      const fh = await open(file, 'w');
      await fh.truncate(capacity);
      await fh.close();
      const rootSectors = capacity / SECTOR - ROOT_START - GPT_TAIL;
      await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', file], {
        input: [
          'label: gpt',
          `start=${BIOS_PART.start}, size=${BIOS_PART.sectors}, type=21686148-6449-6E6F-744E-656564454649, name="bios-boot"`,
          `start=${ESP_PART.start}, size=${ESP_PART.sectors}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="efi"`,
          `start=${ROOT_START}, size=${rootSectors}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="vaultline-root"`,
          '',
        ].join('\n'),
      });
      await run('mkfs.ext4', ['-q', '-F', '-U', rootUuid, '-L', 'vaultline-root', '-E', `offset=${ROOT_START * SECTOR}`, '-d', merged, file, `${(rootSectors * SECTOR) / 1024}k`]);
    });
  } finally {
    await run('umount', [merged]).catch(() => run('umount', ['-l', merged], { allowFail: true }));
  }

  await inp.step('boot loaders (BIOS core.img in the MBR gap partition, EFI on the ESP)', async () => {
    // ESP: FAT32 at its offset, filled with mtools (no mount).
    await run('mkfs.fat', ['-F', '32', '-s', '1', '-n', 'VL-EFI', `--offset=${ESP_PART.start}`, file, String((ESP_PART.sectors * SECTOR) / 1024)]);
    const esp = `${file}@@${ESP_PART.start * SECTOR}`;
    await run('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT']);
    await run('mcopy', ['-i', esp, path.join(grubOut, 'BOOTX64.EFI'), '::/EFI/BOOT/BOOTX64.EFI']);
    // BIOS: boot.img into sector 0, core.img into the BIOS boot partition.
    const fh = await open(file, 'r+');
    try {
      const oldMbr = Buffer.alloc(SECTOR);
      await fh.read(oldMbr, 0, SECTOR, 0);
      const { mbr, core } = biosBootSectors({
        bootImg: await readFile(path.join(grubOut, 'boot.img')),
        coreImg: await readFile(path.join(grubOut, 'core.img')),
        oldMbr,
        coreLba: BIOS_PART.start,
        partitionSectors: BIOS_PART.sectors,
      });
      await fh.write(mbr, 0, mbr.length, 0);
      await fh.write(core, 0, core.length, BIOS_PART.start * SECTOR);
    } finally {
      await fh.close();
    }
  });
  const check = await run('sfdisk', ['--verify', file], { allowFail: true });
  if (check.code !== 0) throw new BuildError(`the disk image's partition table does not verify:\n${check.stdout}${check.stderr}`);
  await rm(upper, { recursive: true, force: true });
  await rm(ovlWork, { recursive: true, force: true });
  return { file, capacity, rootUuid };
}
