/**
 * Test support for file-level restore (also used by the Director's tests):
 * installing the Debian tools the tests and the feature need, building real
 * disk images (GPT with ext4, FAT and NTFS partitions filled with a known tree,
 * a disk with a filesystem and no partition table), storing them as a restore
 * point through the real repository, and describing a tree to compare with.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Repository, RestorePointWriter } from '@vaultline/repository';
import type { FlrJournal, FlrJournalRow } from '../src/journal.ts';

const MiB = 1024 * 1024;

/** Binary → Debian package, for everything file-level restore and its tests run. */
const TOOLS: Array<[string, string]> = [
  ['nbdfuse', 'libnbd-bin'],
  ['nbdinfo', 'libnbd-bin'],
  ['nbdcopy', 'libnbd-bin'],
  ['fusermount3', 'fuse3'],
  ['sgdisk', 'gdisk'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['mkfs.vfat', 'dosfstools'],
  ['mcopy', 'mtools'],
  ['fusefat', 'fusefat'],
  ['mkntfs', 'ntfs-3g'],
  ['ntfs-3g', 'ntfs-3g'],
  ['partx', 'util-linux'],
];

const have = (bin: string) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(path.join(d, bin)));

/**
 * Installs missing tools from Debian's packages when running as root (as CI
 * does on a fresh machine); otherwise fails naming them. Never skips silently.
 */
export function ensureFlrTools(): void {
  const missing = [...new Set(TOOLS.filter(([b]) => !have(b)).map(([, p]) => p))];
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`file-level restore tests need: apt-get install -y ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { encoding: 'utf8', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8', env });
    r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { encoding: 'utf8', env });
  }
  const still = TOOLS.filter(([b]) => !have(b)).map(([b]) => b);
  if (still.length) throw new Error(`could not install ${still.join(', ')} (apt-get install ${missing.join(' ')}): ${r.stderr ?? ''}`);
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A name that is not valid UTF-8 (ext4 keeps it as bytes). */
export const RAW_NAME = Buffer.concat([Buffer.from('raw-'), Buffer.from([0xff, 0xfe]), Buffer.from('.bin')]);
export const ODD_NAME = 'name with spaces – ünïcødé ✓.txt';

export interface KnownTree {
  big: Buffer;
}

/**
 * Writes the known tree into `dir`: nested directories, a 20 MiB random file,
 * a symlink to /etc/passwd (outside anything mounted), a relative symlink,
 * a name with spaces and UTF-8, an empty file; `extras` adds a FIFO and a
 * non-UTF-8 name (for filesystems that hold them).
 */
export async function writeKnownTree(dir: string, opts: { big: Buffer; symlinks: boolean; extras: boolean }): Promise<void> {
  await mkdir(path.join(dir, 'docs', 'reports', '2026'), { recursive: true });
  await mkdir(path.join(dir, 'empty-dir'));
  await writeFile(path.join(dir, 'docs', 'reports', '2026', 'q4.txt'), 'quarterly figures\n'.repeat(1000));
  await writeFile(path.join(dir, 'docs', 'readme.md'), '# nested\n');
  await writeFile(path.join(dir, 'big.bin'), opts.big);
  await writeFile(path.join(dir, ODD_NAME), 'odd name, plain content\n');
  await writeFile(path.join(dir, 'empty'), '');
  if (opts.symlinks) {
    await symlink('/etc/passwd', path.join(dir, 'passwd-link'));
    await symlink('reports/2026/q4.txt', path.join(dir, 'docs', 'q4-link'));
  }
  if (opts.extras) {
    sh('mkfifo', [path.join(dir, 'a-fifo')]);
    const fh = await open(Buffer.concat([Buffer.from(dir + '/'), RAW_NAME]), 'w');
    await fh.writeFile('raw name\n');
    await fh.close();
  }
}

export interface TreeEntry {
  type: 'file' | 'directory' | 'symlink' | 'fifo' | 'other';
  size?: number;
  sha256?: string;
  target?: string;
}

/** Every entry under `dir` by relative path (raw names as latin1 keys), with content hashes. */
export function describeTree(dir: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (abs: Buffer, rel: string) => {
    for (const name of (readdirSync(abs, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)) {
      const a = Buffer.concat([abs, Buffer.from('/'), name]);
      const r = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1');
      const st = lstatSync(a);
      if (st.isDirectory()) {
        out.set(r, { type: 'directory' });
        walk(a, r);
      } else if (st.isSymbolicLink()) out.set(r, { type: 'symlink', target: (readlinkSync(a, { encoding: 'buffer' }) as Buffer).toString('latin1') });
      else if (st.isFile()) out.set(r, { type: 'file', size: st.size, sha256: createHash('sha256').update(readFileSync(a)).digest('hex') });
      else if (st.isFIFO()) out.set(r, { type: 'fifo' });
      else out.set(r, { type: 'other' });
    }
  };
  walk(Buffer.from(dir), '');
  return out;
}

export interface BuiltImages {
  /** Disk 1: GPT — p1 ext4 "linux", p2 FAT "DATA", p3 NTFS "WINDATA", p4 typed LVM, no filesystem. */
  partitioned: string;
  /** Disk 2: ext4 on the whole disk, no partition table. */
  whole: string;
  big: Buffer;
  /** The tree as written (ext4 holds all of it). */
  source: string;
  p: { ext4: { offset: number; size: number }; fat: { offset: number; size: number }; ntfs: { offset: number; size: number } };
}

function loopAt(image: string, offset: number, size: number): string {
  return sh('losetup', ['--find', '--show', '--offset', String(offset), '--sizelimit', String(size), image]).trim();
}

async function withMounted(device: string, mountPoint: string, mount: () => void, fill: () => Promise<void>): Promise<void> {
  await mkdir(mountPoint, { recursive: true });
  mount();
  try {
    await fill();
  } finally {
    execFileSync('umount', [mountPoint]);
  }
}

/** Builds both disk images under `dir` with real mkfs tools on loop devices (detached again afterwards). */
export async function buildImages(dir: string): Promise<BuiltImages> {
  ensureFlrTools();
  const big = randomBytes(20 * MiB);
  const source = path.join(dir, 'source');
  await mkdir(source);
  await writeKnownTree(source, { big, symlinks: true, extras: true });

  const partitioned = path.join(dir, 'disk1.img');
  const S = 512;
  const p = {
    ext4: { offset: 2048 * S, size: 64 * MiB },
    fat: { offset: 2048 * S + 64 * MiB, size: 40 * MiB },
    ntfs: { offset: 2048 * S + 104 * MiB, size: 40 * MiB },
  };
  writeFileSync(partitioned, '');
  execFileSync('truncate', ['-s', String(160 * MiB), partitioned]);
  const sect = (b: number) => String(b / S);
  sh('sgdisk', [
    `-n1:${sect(p.ext4.offset)}:+64M`, '-t1:8300', '-c1:linux root',
    `-n2:${sect(p.fat.offset)}:+40M`, '-t2:0700', '-c2:shared data',
    `-n3:${sect(p.ntfs.offset)}:+40M`, '-t3:0700',
    '-n4:0:0', '-t4:8e00',
    partitioned,
  ]);

  const loops: string[] = [];
  try {
    // ext4: everything, including the FIFO and the non-UTF-8 name.
    const l1 = loopAt(partitioned, p.ext4.offset, p.ext4.size);
    loops.push(l1);
    sh('mkfs.ext4', ['-q', '-L', 'linux', l1]);
    const m1 = path.join(dir, 'm-ext4');
    await withMounted(l1, m1, () => sh('mount', [l1, m1]), async () => {
      await writeKnownTree(m1, { big, symlinks: true, extras: true });
      await rm(path.join(m1, 'lost+found'), { recursive: true });
    });

    // FAT: no symlinks, FIFOs or byte names on FAT; filled with mtools (this kernel has no vfat to mount rw).
    const l2 = loopAt(partitioned, p.fat.offset, p.fat.size);
    loops.push(l2);
    sh('mkfs.vfat', ['-n', 'DATA', l2]);
    const fatSrc = await mkdtemp(path.join(dir, 'fat-'));
    await writeKnownTree(fatSrc, { big, symlinks: false, extras: false });
    for (const name of await readdir(fatSrc)) sh('mcopy', ['-s', '-i', l2, path.join(fatSrc, name), '::/']);

    // NTFS: written through ntfs-3g (FUSE) read-write, then unmounted.
    const l3 = loopAt(partitioned, p.ntfs.offset, p.ntfs.size);
    loops.push(l3);
    sh('mkntfs', ['-Q', '-q', '-L', 'WINDATA', l3]);
    const m3 = path.join(dir, 'm-ntfs');
    await withMounted(l3, m3, () => sh('ntfs-3g', [l3, m3]), () => writeKnownTree(m3, { big, symlinks: false, extras: false }));
  } finally {
    for (const l of loops) spawnSync('losetup', ['--detach', l]);
  }

  const whole = path.join(dir, 'disk2.img');
  writeFileSync(whole, '');
  execFileSync('truncate', ['-s', String(24 * MiB), whole]);
  sh('mkfs.ext4', ['-q', '-F', '-L', 'wholedisk', whole]);
  const l = sh('losetup', ['--find', '--show', whole]).trim();
  try {
    const m = path.join(dir, 'm-whole');
    await withMounted(l, m, () => sh('mount', [l, m]), async () => {
      await writeFile(path.join(m, 'hello.txt'), 'a filesystem on the whole disk\n');
      await rm(path.join(m, 'lost+found'), { recursive: true });
    });
  } finally {
    spawnSync('losetup', ['--detach', l]);
  }
  return { partitioned, whole, big, source, p };
}

/** Stores images as the disks of one restore point (the real writer), returns its manifest id. */
export async function storeRestorePoint(repoDir: string, passphrase: string | undefined, vm: { uuid: string; name: string }, disks: Array<{ key: string; image: string }>): Promise<string> {
  await Repository.init(repoDir, passphrase ? { passphrase } : {});
  const repo = await Repository.open(repoDir, passphrase ? { passphrase } : {});
  try {
    const rp = await RestorePointWriter.open(repo, { vmId: vm.uuid, vm: { name: vm.name } });
    for (const d of disks) {
      const data = await readFile(d.image);
      const w = await rp.openDisk({ key: d.key, capacity: data.length, controller: 'pvscsi' });
      for (let off = 0; off < data.length; off += 4 * MiB) {
        const part = data.subarray(off, Math.min(off + 4 * MiB, data.length));
        if (part.some((b) => b !== 0)) await w.write(off, part);
      }
    }
    return (await rp.commit()).id;
  } finally {
    await repo.close();
  }
}

/** SHA-256 of every file under a repository folder, by relative path (to prove it unchanged). */
export function repositoryFingerprint(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (abs: string, rel: string) => {
    for (const e of readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const a = path.join(abs, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.set(`${r}/`, 'dir');
        walk(a, r);
      } else out.set(r, createHash('sha256').update(readFileSync(a)).digest('hex'));
    }
  };
  walk(dir, '');
  return out;
}

/**
 * What of ours is still around: mounts under `root` (as this process sees them, and as the helper
 * `helperPid` sees them in its own mount namespace), loop devices backed by files under it, and
 * processes naming it.
 */
export function leftoversUnder(root: string, helperPid?: number): { mounts: string[]; loops: string[]; processes: string[] } {
  const mounts = [...new Set(mountsIn('self', root).concat(helperPid ? mountsIn(helperPid, root) : []))];
  const lo = JSON.parse(sh('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE']) || '{"loopdevices":[]}') as { loopdevices?: Array<{ name: string; 'back-file': string | null }> };
  const loops = (lo.loopdevices ?? []).filter((l) => (l['back-file'] ?? '').startsWith(root)).map((l) => `${l.name} ${l['back-file']}`);
  const processes: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    if (Number(pid) === process.pid || Number(pid) === helperPid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(root)) processes.push(`${pid} ${cmd.trim()}`);
    } catch {
      /* gone */
    }
  }
  return { mounts, loops, processes };
}

/** Mount points under `root` in the mount namespace of process `pid` ([] once it is gone). */
export function mountsIn(pid: number | 'self', root: string): string[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m.startsWith(root));
}

export interface RunningHelper {
  pid: number;
  child: ChildProcess;
  runDir: string;
  stateDir: string;
  /** Its environment: nothing but these directories, PATH and the log level (no key, no database). */
  env: Record<string, string>;
  /** SIGTERM (it closes every session) and wait. */
  stop(): Promise<void>;
}

const HELPER_MAIN = fileURLToPath(new URL('../src/helper/main.ts', import.meta.url));

/**
 * Starts the file-level restore helper (vaultline-flr) as the appliance does: a process of its own in
 * a private mount namespace (`unshare --mount`), with an environment that holds no key, no passphrase
 * and no database address. `prefix` wraps it further inside the namespace (e.g. setpriv dropping
 * CAP_SYS_ADMIN).
 */
export async function startFlrHelper(dir: string, opts: { prefix?: string[] } = {}): Promise<RunningHelper> {
  const runDir = path.join(dir, 'run');
  const stateDir = path.join(dir, 'state');
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', VAULTLINE_FLR_RUN_DIR: runDir, VAULTLINE_FLR_STATE_DIR: stateDir, VAULTLINE_LOG_LEVEL: 'warn' };
  const argv = ['unshare', '--mount', '--propagation', 'private', '--', ...(opts.prefix ?? []), process.execPath, '--import', 'tsx', HELPER_MAIN];
  // --import tsx resolves from cwd: the package's folder finds the workspace's tsx.
  const child = spawn(argv[0]!, argv.slice(1), { cwd: path.dirname(HELPER_MAIN), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-8000)));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (c) => reject(new Error(`the helper exited (${c}) before listening: ${stderr}`)));
  });
  const { pid } = JSON.parse(line) as { pid: number };
  if (pid !== child.pid) throw new Error(`the helper runs as pid ${pid}, not the spawned ${child.pid}`);
  return {
    pid,
    child,
    runDir,
    stateDir,
    env,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The journal in memory (package tests and the benchmark; the Director uses Postgres). */
export function memoryJournal(): FlrJournal & { rows: Map<string, FlrJournalRow & { resolved: boolean; refused?: string }> } {
  const rows = new Map<string, FlrJournalRow & { resolved: boolean; refused?: string }>();
  let n = 0;
  return {
    rows,
    async add(sessionId, layer, target, owner) {
      const id = String(++n);
      rows.set(id, { id, sessionId, layer, target, owner, attempts: 0, createdAt: new Date(), resolved: false });
      return id;
    },
    async update(id, target) {
      rows.get(id)!.target = target;
    },
    async resolve(id) {
      rows.get(id)!.resolved = true;
    },
    async failed(id) {
      rows.get(id)!.attempts++;
    },
    async refuse(id, reason) {
      rows.get(id)!.refused = reason;
    },
    async pending(host) {
      return [...rows.values()].filter((r) => !r.resolved && !r.refused && r.owner.host === host);
    },
  };
}
