/**
 * The bootable test guest: a small raw disk image that a BIOS boots through
 * GRUB into a Debian kernel and a busybox initramfs, built here from Debian's
 * packages (fetched with `apt-get download`, unpacked with `dpkg-deb`, never
 * installed on the host) without loop devices or mounts:
 *
 *   GPT  p1  BIOS boot, 1 MiB      GRUB core.img (delivery's biosBootSectors)
 *        p2  ext4 root, 60 MiB     /vmlinuz, /initrd.img, /boot/grub
 *        p3  marker, 1 MiB         raw; the running guest writes its ticks here
 *
 * The initramfs' /init prints a banner and a login prompt on ttyS0, loads the
 * virtio/AHCI/IDE disk drivers and e1000 from the kernel package, writes
 * "vaultline-guest boot=<uuid> tick=<n>" into p3 every second (saying so on
 * the console), and serves GET /health on port 80 (busybox httpd). So a test
 * can see the guest boot, see its writes land in the overlay or the mirror and
 * never in the repository, and ask it for its health over the network.
 */
import { createHash, randomUUID } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { biosBootSectors, earlyConfig, grubConfig, run } from '@vaultline/delivery';

const SECTOR = 512;
const MiB = 1024 * 1024;
export const GUEST_SIZE = 64 * MiB;
export const BIOS_PART = { start: 2048, sectors: 2048 };
export const ROOT_PART = { start: 4096, sectors: 122_880 };
export const MARKER_PART = { start: 126_976, sectors: 2048 };
/** The marker line's place on the disk (the marker partition's first sector). */
export const MARKER_OFFSET = MARKER_PART.start * SECTOR;

export const GUEST_HOSTNAME = 'vaultline-guest';
export const BANNER = 'Vaultline KVM test guest';
export const HEALTH_PORT = 80;

/** Kernel modules the initramfs loads (their dependencies are found and loaded first). */
const MODULES = ['virtio_pci', 'virtio_blk', 'ahci', 'ata_piix', 'sd_mod', 'e1000'];
const GRUB_MODULES = ['biosdisk', 'part_gpt', 'ext2', 'search', 'search_fs_uuid', 'normal', 'configfile', 'linux', 'serial', 'terminal'];
const CMDLINE = 'console=ttyS0,115200 panic=-1 quiet';

/** Bump to rebuild every cached image (the content hash covers this file too). */
const LAYOUT = 1;

export interface GuestPackages {
  kernel: string;
  versions: Record<string, string>;
}

async function candidate(pkg: string): Promise<string> {
  const out = (await run('apt-cache', ['policy', pkg])).stdout;
  const v = /Candidate:\s*(\S+)/.exec(out)?.[1];
  if (!v || v === '(none)') throw new Error(`apt knows no candidate for ${pkg} (apt-get update?)`);
  return v;
}

/** linux-image-<version>-amd64 that linux-image-amd64 depends on, and the versions of everything used. */
export async function guestPackages(): Promise<GuestPackages> {
  const deps = (await run('apt-cache', ['depends', 'linux-image-amd64'])).stdout;
  const kernel = /Depends:\s*(linux-image-\S+-amd64)/.exec(deps)?.[1];
  if (!kernel) throw new Error(`cannot tell which kernel linux-image-amd64 depends on:\n${deps}`);
  const names = [kernel, 'busybox-static', 'grub-pc-bin', 'grub-common'];
  const versions: Record<string, string> = {};
  for (const n of names) versions[n] = await candidate(n);
  return { kernel, versions };
}

/** The .deb of every package, downloaded into `debDir` once. */
async function fetchDebs(debDir: string, pkgs: GuestPackages): Promise<Record<string, string>> {
  await mkdir(debDir, { recursive: true });
  const file = (name: string, version: string) => `${name}_${version.replace(/:/g, '%3a')}_amd64.deb`;
  const have = new Set(await readdir(debDir));
  const missing = Object.entries(pkgs.versions).filter(([n, v]) => !have.has(file(n, v)));
  if (missing.length) {
    // Into a folder of this process first, then renamed into place: test files building at the same time
    // must never read a .deb another one is still writing. (As root apt downloads unsandboxed, with a
    // warning, when its _apt user cannot write here; that is fine for a cache.)
    const tmp = await mkdtemp(path.join(debDir, '.download-'));
    try {
      await run('apt-get', ['download', ...missing.map(([n, v]) => `${n}=${v}`)], { cwd: tmp });
      for (const [n, v] of missing) await rename(path.join(tmp, file(n, v)), path.join(debDir, file(n, v)));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const out: Record<string, string> = {};
  for (const [n, v] of Object.entries(pkgs.versions)) out[n] = path.join(debDir, file(n, v));
  return out;
}

/** `depends=` of a kernel module, from its .modinfo strings (no modinfo/depmod needed). */
async function moduleDepends(ko: string): Promise<string[]> {
  const text = (await readFile(ko)).toString('latin1');
  const m = /\0depends=([^\0]*)\0/.exec(text);
  return m?.[1] ? m[1].split(',').filter(Boolean) : [];
}

async function walkModules(dir: string, into = new Map<string, string>()): Promise<Map<string, string>> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walkModules(p, into);
    else if (e.name.endsWith('.ko')) into.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
  }
  return into;
}

/** The modules to load, dependencies first. */
async function moduleOrder(modulesDir: string, wanted: string[]): Promise<string[]> {
  const all = await walkModules(modulesDir);
  const order: string[] = [];
  const visit = async (name: string) => {
    const key = name.replace(/-/g, '_');
    if (order.includes(key)) return;
    const file = all.get(key);
    if (!file) throw new Error(`kernel module ${name} is not in the kernel package (built in?)`);
    for (const d of await moduleDepends(file)) await visit(d);
    order.push(key);
  };
  for (const w of wanted) await visit(w);
  return order.map((k) => all.get(k)!);
}

/** The guest's /init (busybox sh). */
function initScript(moduleNames: string[]): string {
  return `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /tmp /www
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname ${GUEST_HOSTNAME}
echo
echo "${BANNER} (busybox initramfs, kernel $(uname -r))"
for m in ${moduleNames.join(' ')}; do insmod /lib/modules/$m.ko 2>/dev/null; done
BOOT=$(cat /proc/sys/kernel/random/uuid)
echo "vaultline-guest boot=$BOOT"
# The marker partition: the third partition of the first disk that has one.
MARK=
for i in $(seq 1 50); do
  for d in /dev/vda3 /dev/sda3; do [ -b $d ] && MARK=$d && break 2; done
  sleep 0.2
done
[ -n "$MARK" ] && echo "vaultline-guest marker on $MARK" || echo "vaultline-guest marker partition not found"
if ip link set eth0 up 2>/dev/null; then
  ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
  echo "ok ${GUEST_HOSTNAME} boot=$BOOT" > /www/health
  httpd -p ${HEALTH_PORT} -h /www && echo "vaultline-guest health on port ${HEALTH_PORT}"
fi
echo
printf '${GUEST_HOSTNAME} login: '
n=0
while true; do
  n=$((n + 1))
  if [ -n "$MARK" ]; then
    printf 'vaultline-guest boot=%s tick=%d\\n' "$BOOT" $n | dd of=$MARK bs=512 conv=sync,fsync 2>/dev/null && echo "vaultline-guest tick=$n written"
  fi
  sleep 1
done
`;
}

/** An uncompressed newc cpio archive of `entries` (what the kernel unpacks as the initramfs). */
function cpioNewc(entries: Array<{ name: string; mode: number; data?: Buffer; link?: string }>): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const add = (name: string, mode: number, data: Buffer) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const header = `070701${hex(ino++)}${hex(mode)}${hex(0)}${hex(0)}${hex(1)}${hex(0)}${hex(data.length)}${hex(0)}${hex(0)}${hex(0)}${hex(0)}${hex(nameBuf.length)}${hex(0)}`;
    parts.push(Buffer.from(header), nameBuf, pad4(110 + nameBuf.length), data, pad4(data.length));
  };
  for (const e of entries) add(e.name, e.mode, e.link !== undefined ? Buffer.from(e.link) : (e.data ?? Buffer.alloc(0)));
  add('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

export interface BuiltGuest {
  disk: string;
  kernel: string;
  rootUuid: string;
}

/** Builds the image into `dir` (disk.raw, vmlinuz); `debs` are the package files. */
export async function buildGuest(dir: string, debs: Record<string, string>, pkgs: GuestPackages): Promise<BuiltGuest> {
  const x = path.join(dir, 'unpacked');
  await mkdir(x, { recursive: true });
  for (const [name, deb] of Object.entries(debs)) {
    if (name === pkgs.kernel) {
      // Only the kernel and the few modules used: the package unpacks to ~400 MB otherwise.
      await run('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "./boot/vmlinuz-*" "./lib/modules/*/kernel/drivers/*" "./lib/modules/*/kernel/lib/*" "./lib/modules/*/kernel/crypto/*" "./lib/modules/*/kernel/block/*"', 'sh', deb, x]);
    } else await run('dpkg-deb', ['-x', deb, x]);
  }
  const vmlinuz = (await readdir(path.join(x, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new Error(`no vmlinuz in ${debs[pkgs.kernel]}`);
  const kver = vmlinuz.slice('vmlinuz-'.length);
  const modules = await moduleOrder(path.join(x, 'lib/modules', kver, 'kernel'), MODULES);

  // The initramfs.
  const busybox = await readFile(path.join(x, 'bin/busybox'));
  const moduleNames = modules.map((m) => path.basename(m, '.ko'));
  const entries: Array<{ name: string; mode: number; data?: Buffer; link?: string }> = [
    { name: 'bin', mode: 0o40755 },
    { name: 'bin/busybox', mode: 0o100755, data: busybox },
    { name: 'bin/sh', mode: 0o120777, link: 'busybox' },
    { name: 'lib', mode: 0o40755 },
    { name: 'lib/modules', mode: 0o40755 },
    { name: 'init', mode: 0o100755, data: Buffer.from(initScript(moduleNames)) },
  ];
  for (const m of modules) entries.push({ name: `lib/modules/${path.basename(m)}`, mode: 0o100644, data: await readFile(m) });
  const initrd = cpioNewc(entries);

  // The root filesystem's tree.
  const rootUuid = randomUUID();
  const tree = path.join(dir, 'tree');
  await mkdir(path.join(tree, 'boot/grub/i386-pc'), { recursive: true });
  await copyFile(path.join(x, 'boot', vmlinuz), path.join(tree, 'vmlinuz'));
  await writeFile(path.join(tree, 'initrd.img'), initrd);
  // No menu wait: the guest should reach its prompt as fast as it can.
  await writeFile(path.join(tree, 'boot/grub/grub.cfg'), grubConfig({ rootUuid, cmdline: CMDLINE, title: BANNER }).replace('set timeout=3', 'set timeout=0'));
  const grubLib = path.join(x, 'usr/lib/grub/i386-pc');
  for (const f of await readdir(grubLib)) if (f.endsWith('.mod') || f.endsWith('.lst')) await copyFile(path.join(grubLib, f), path.join(tree, 'boot/grub/i386-pc', f));
  await writeFile(path.join(dir, 'early.cfg'), earlyConfig(rootUuid));
  const coreImg = path.join(dir, 'core.img');
  await run(path.join(x, 'usr/bin/grub-mkimage'), ['-d', grubLib, '-O', 'i386-pc', '-o', coreImg, '-c', path.join(dir, 'early.cfg'), '-p', '/boot/grub', ...GRUB_MODULES]);

  // The disk.
  const disk = path.join(dir, 'disk.raw');
  const fh = await open(disk, 'w');
  await fh.truncate(GUEST_SIZE);
  await fh.close();
  await run('sgdisk', [
    '-n', `1:${BIOS_PART.start}:${BIOS_PART.start + BIOS_PART.sectors - 1}`, '-t', '1:EF02', '-c', '1:bios-boot',
    '-n', `2:${ROOT_PART.start}:${ROOT_PART.start + ROOT_PART.sectors - 1}`, '-t', '2:8300', '-c', '2:vaultline-guest-root',
    '-n', `3:${MARKER_PART.start}:${MARKER_PART.start + MARKER_PART.sectors - 1}`, '-t', '3:8300', '-c', '3:vaultline-guest-marker',
    disk,
  ]);
  await run('mkfs.ext4', ['-q', '-F', '-U', rootUuid, '-L', 'vaultline-guest', '-E', `offset=${ROOT_PART.start * SECTOR}`, '-d', tree, disk, `${(ROOT_PART.sectors * SECTOR) / 1024}k`]);
  const dh = await open(disk, 'r+');
  try {
    const oldMbr = Buffer.alloc(SECTOR);
    await dh.read(oldMbr, 0, SECTOR, 0);
    const { mbr, core } = biosBootSectors({ bootImg: await readFile(path.join(grubLib, 'boot.img')), coreImg: await readFile(coreImg), oldMbr, coreLba: BIOS_PART.start, partitionSectors: BIOS_PART.sectors });
    await dh.write(mbr, 0, mbr.length, 0);
    await dh.write(core, 0, core.length, BIOS_PART.start * SECTOR);
  } finally {
    await dh.close();
  }
  const kernel = path.join(dir, 'vmlinuz');
  await copyFile(path.join(x, 'boot', vmlinuz), kernel);
  await chmod(disk, 0o444);
  await rm(x, { recursive: true, force: true });
  await rm(tree, { recursive: true, force: true });
  await rm(coreImg, { force: true });
  return { disk, kernel, rootUuid };
}

/** The key of an image: this builder's source and the packages' versions. */
export async function guestKey(pkgs: GuestPackages): Promise<string> {
  const h = createHash('sha256');
  h.update(`layout ${LAYOUT}\n`);
  h.update(await readFile(new URL(import.meta.url)));
  for (const [n, v] of Object.entries(pkgs.versions).sort()) h.update(`${n}=${v}\n`);
  return h.digest('hex').slice(0, 16);
}

/**
 * The cached image for the current packages, built first when missing. Two
 * builders racing (test files run in parallel) each build in a folder of
 * their own and the first rename wins.
 */
export async function cachedGuest(cacheDir: string): Promise<BuiltGuest & { key: string; built: boolean }> {
  const pkgs = await guestPackages();
  const key = await guestKey(pkgs);
  const final = path.join(cacheDir, key);
  const ready = async () => {
    try {
      await stat(path.join(final, 'disk.raw'));
      const rootUuid = (await readFile(path.join(final, 'root-uuid'), 'utf8')).trim();
      return { disk: path.join(final, 'disk.raw'), kernel: path.join(final, 'vmlinuz'), rootUuid, key };
    } catch {
      return null;
    }
  };
  const have = await ready();
  if (have) return { ...have, built: false };
  const debs = await fetchDebs(path.join(cacheDir, 'debs'), pkgs);
  const tmp = path.join(cacheDir, `${key}.building-${process.pid}-${Date.now()}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const built = await buildGuest(tmp, debs, pkgs);
    await writeFile(path.join(tmp, 'root-uuid'), `${built.rootUuid}\n`);
    await rename(tmp, final).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const done = await ready();
  if (!done) throw new Error(`the guest image was built but ${final} holds none`);
  return { ...done, built: true };
}
