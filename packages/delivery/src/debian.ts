/**
 * Debian 12 (bookworm) trees made with debootstrap from Debian's own mirror,
 * then apt-get inside a chroot. Each tree is cached as a folder named by the
 * digest of its recipe (suite, mirror, packages, this file), so it is made once:
 *
 *   container  minbase + ca-certificates: the local stand-in for
 *              node:20-bookworm-slim (Node is added by containers.ts)
 *   appliance  minbase + kernel, GRUB, systemd, PostgreSQL, Redis, open-vm-tools
 *              and the disk tools the Transporter and file-level restore use
 *
 * Services never start inside the chroot (policy-rc.d), and everything that
 * must differ per VM (machine-id, SSH host keys) is removed here and made at
 * first boot.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, rename, writeFile, readdir, chmod } from 'node:fs/promises';
import path from 'node:path';
import { BuildError, exists, removeTree, run, type Step } from './exec.ts';

export const SUITE = 'bookworm';
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

/** What the appliance VM needs from Debian, and why. */
export const APPLIANCE_PACKAGES = [
  // boot and base system
  'linux-image-amd64', 'initramfs-tools', 'grub-pc-bin', 'grub-efi-amd64-bin', 'grub2-common',
  'systemd', 'systemd-sysv', 'systemd-resolved', 'systemd-timesyncd', 'udev', 'dbus', 'kmod',
  'iproute2', 'iputils-ping', 'netbase', 'ca-certificates', 'tzdata', 'procps', 'less', 'nano', 'curl', 'logrotate', 'zstd',
  // remote access: key-only, and only when a key was given (see ova-build/rootfs)
  'openssh-server',
  // the Director's database and the work queue
  'postgresql', 'redis-server',
  // the appliance's CA and the TLS certificate of PostgreSQL and Redis (vaultline-tls)
  'openssl',
  // vSphere guest (IP, clean shutdown from vCenter, time), disk tools of the Transporter
  'open-vm-tools', 'qemu-utils', 'vmfs-tools', 'vmfs6-tools', 'e2fsprogs', 'xfsprogs', 'dosfstools', 'util-linux', 'mount',
  // file-level restore: restore points served over NBD, shown by nbdfuse, guest filesystems read-only
  'libnbd-bin', 'fuse3', 'ntfs-3g', 'fusefat',
];

export const CONTAINER_PACKAGES = ['ca-certificates'];

export type Flavour = 'appliance' | 'container';

export interface DebianTree {
  flavour: Flavour;
  /** The root folder of the tree. */
  dir: string;
  /** Digest of the recipe it was made from. */
  digest: string;
  /** The kernel version installed (appliance only). */
  kernel?: string;
}

/** Files in the tree that tell documentation and translations apart; not wanted in an appliance. */
const DPKG_EXCLUDES = `# Vaultline: no documentation, manual pages or translations in the appliance
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
`;

async function recipeDigest(flavour: Flavour, mirror: string, packages: string[]): Promise<string> {
  const self = await readFile(new URL(import.meta.url), 'utf8');
  return createHash('sha256').update(JSON.stringify({ flavour, mirror, suite: SUITE, packages })).update(self).digest('hex');
}

/** proc, sys, dev and dev/pts mounted into the chroot for `fn`, always unmounted after. */
export async function withChroot<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const mounts: string[] = [];
  const mount = async (args: string[], target: string) => {
    await mkdir(target, { recursive: true });
    await run('mount', [...args, target]);
    mounts.push(target);
  };
  try {
    await mount(['-t', 'proc', 'proc'], path.join(root, 'proc'));
    await mount(['-t', 'sysfs', 'sys'], path.join(root, 'sys'));
    await mount(['--bind', '/dev'], path.join(root, 'dev'));
    await mount(['--bind', '/dev/pts'], path.join(root, 'dev/pts'));
    return await fn();
  } finally {
    for (const m of mounts.reverse()) {
      await run('umount', [m]).catch(() => run('umount', ['-l', m], { allowFail: true }));
    }
  }
}

export function chroot(root: string, script: string, opts: { onOutput?: (s: string) => void } = {}) {
  return run('chroot', [root, '/bin/sh', '-ec', script], {
    env: { DEBIAN_FRONTEND: 'noninteractive', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    ...(opts.onOutput ? { onOutput: opts.onOutput } : {}),
  });
}

async function ensureDebootstrap(): Promise<void> {
  if ((await run('sh', ['-c', 'command -v debootstrap'], { allowFail: true })).code === 0) return;
  if (process.getuid?.() !== 0) throw new BuildError('debootstrap is missing: apt-get install debootstrap');
  await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'debootstrap'], { env: { DEBIAN_FRONTEND: 'noninteractive' } }).catch(async () => {
    await run('apt-get', ['update', '-qq'], { allowFail: true });
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'debootstrap'], { env: { DEBIAN_FRONTEND: 'noninteractive' } });
  });
}

/** Makes (or finds in the cache) a Debian tree of the given flavour. */
export async function debianTree(opts: { flavour: Flavour; cacheDir: string; mirror?: string; step: Step }): Promise<DebianTree> {
  if (process.getuid?.() !== 0) throw new BuildError('building Debian trees needs root (debootstrap, chroot, mount)');
  const mirror = opts.mirror ?? DEFAULT_MIRROR;
  const packages = opts.flavour === 'appliance' ? APPLIANCE_PACKAGES : CONTAINER_PACKAGES;
  const digest = await recipeDigest(opts.flavour, mirror, packages);
  const base = path.join(opts.cacheDir, `debian-${opts.flavour}-${digest.slice(0, 16)}`);
  const dir = path.join(base, 'root');
  const done = path.join(base, 'done.json');
  if (await exists(done)) {
    const info = JSON.parse(await readFile(done, 'utf8')) as { kernel?: string };
    return { flavour: opts.flavour, dir, digest, ...(info.kernel ? { kernel: info.kernel } : {}) };
  }
  await ensureDebootstrap();
  // A half-made tree (interrupted build) is made again from the start.
  await removeTree(base);
  const tmp = `${base}.tmp`;
  await removeTree(tmp);
  await mkdir(tmp, { recursive: true });
  const root = path.join(tmp, 'root');
  await opts.step(`debootstrap ${SUITE} (${opts.flavour})`, () =>
    run('debootstrap', ['--variant=minbase', `--include=${CONTAINER_PACKAGES.join(',')}`, SUITE, root, mirror]),
  );
  await mkdir(path.join(root, 'etc/dpkg/dpkg.cfg.d'), { recursive: true });
  await writeFile(path.join(root, 'etc/dpkg/dpkg.cfg.d/vaultline-excludes'), DPKG_EXCLUDES);
  await writeFile(path.join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\n# Vaultline build: no service starts inside the chroot\nexit 101\n');
  await chmod(path.join(root, 'usr/sbin/policy-rc.d'), 0o755);
  await writeFile(path.join(root, 'etc/resolv.conf'), await readFile('/etc/resolv.conf'));
  let kernel: string | undefined;
  await withChroot(root, async () => {
    if (opts.flavour === 'appliance') {
      await opts.step(`apt-get install (${packages.length} packages and their dependencies)`, () =>
        chroot(root, `apt-get update -qq && apt-get install -y -qq --no-install-recommends ${packages.join(' ')}`),
      );
    }
    await chroot(root, 'apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/*/changelog* /usr/share/man/* /usr/share/info/* /var/log/*.log /var/log/apt/* /var/cache/debconf/*-old');
  });
  if (opts.flavour === 'appliance') {
    kernel = (await readdir(path.join(root, 'boot'))).find((f) => f.startsWith('vmlinuz-'))?.slice('vmlinuz-'.length);
    if (!kernel) throw new BuildError('the kernel was not installed into the appliance tree');
    // pg_createcluster picked the first free port, which on a build machine with its own
    // PostgreSQL is not 5432.
    const conf = path.join(root, 'etc/postgresql/15/main/postgresql.conf');
    await writeFile(conf, (await readFile(conf, 'utf8')).replace(/^port = \d+/m, 'port = 5432'));
    // Per-VM identity is made at first boot, never shipped.
    await writeFile(path.join(root, 'etc/machine-id'), '');
    await rm(path.join(root, 'var/lib/dbus/machine-id'), { force: true });
    for (const f of await readdir(path.join(root, 'etc/ssh'))) if (f.startsWith('ssh_host_')) await rm(path.join(root, 'etc/ssh', f));
  }
  // The build's resolver and the policy are not part of the tree.
  await rm(path.join(root, 'usr/sbin/policy-rc.d'), { force: true });
  await rm(path.join(root, 'etc/resolv.conf'), { force: true });
  await writeFile(path.join(tmp, 'done.json'), JSON.stringify({ flavour: opts.flavour, digest, mirror, suite: SUITE, packages, kernel, madeAt: new Date().toISOString() }) + '\n');
  await rename(tmp, base);
  return { flavour: opts.flavour, dir, digest, ...(kernel ? { kernel } : {}) };
}
