/**
 * The demo's partitioned disk, for trying file-level restore right after `npm start`: an MBR (written
 * here) holding an NTFS partition and an ext4 partition, each with a few real files and folders.
 *
 * Built without root and without mounting: `mkntfs` makes the NTFS volume in a file and
 * `wimlib-imagex apply` (NTFS-3G mode, libntfs-3g) fills it from a folder, since ntfs-3g's own tools
 * cannot make folders in an unmounted volume; `mkfs.ext4 -d` makes a filled ext4. What is built is
 * kept under `.cache/demo-disk-<recipe hash>/` as the non-zero 64 KiB blocks of the whole disk
 * (`data.bin` + `extents.json`, about 32 MiB), so a later start only replays them. They are written
 * through the lab's guest writer (`/lab/guest-write`), so CBT records them and the disk stays sparse.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { crc32, deflateSync, gzipSync } from 'node:zlib';
import { childEnv, isRoot, labEnv } from './env.ts';
import { pidAlive, sh } from './host-resources.ts';
import { patternBytes } from './patterns.ts';
import { httpRequest } from './soap.ts';
import type { Lab } from './types.ts';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const SECTOR = 512;
/** Blocks that hold anything but zeros are kept and written; the lab's CBT block size. */
const BLOCK = 64 * KiB;

export interface DemoPartition {
  number: number;
  filesystem: 'ntfs' | 'ext4';
  label: string;
  /** MBR partition type byte. */
  type: number;
  /** Bytes from the start of the disk. */
  start: number;
  size: number;
}

const ntfsPartition: DemoPartition = { number: 1, filesystem: 'ntfs', label: 'FILES', type: 0x07, start: 1 * MiB, size: 5 * GiB - 1 * MiB };
const ext4Partition: DemoPartition = { number: 2, filesystem: 'ext4', label: 'demo-linux', type: 0x83, start: 5 * GiB, size: 3 * GiB };

/** The demo disk: `file-01`'s Hard disk 1 (8 GiB). */
export const DEMO_DISK = {
  vm: 'file-01',
  diskIndex: 0,
  capacityBytes: 8 * GiB,
  /** The MBR's disk signature (Windows' disk id), "VLT1". */
  signature: 0x31544c56,
  ntfs: ntfsPartition,
  ext4: ext4Partition,
  /** In MBR order; the first is the active one. */
  partitions: [ntfsPartition, ext4Partition],
} as const;

/** A fixed ext4 UUID, so every build names the same filesystem. */
const EXT4_UUID = '6f1c2a4e-5d3b-4c8e-9a70-76d5e1b0c2f1';
/** Files' and folders' modification time: 2026-11-30 09:15 UTC. */
const MTIME = new Date(Date.UTC(2026, 10, 30, 9, 15));

interface TreeEntry {
  path: string;
  data?: Buffer;
  mode?: number;
  symlink?: string;
}

const text = (s: string) => Buffer.from(s.replace(/^\n/, ''), 'utf8');

/** A real PNG (64×64, an RGB gradient), made here so it needs no file in the repository. */
function png(): Buffer {
  const w = 64;
  const raw = Buffer.alloc((w * 3 + 1) * w);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) raw.set([x * 4, y * 4, 160], y * (w * 3 + 1) + 1 + x * 3);
  }
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(w, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** What the NTFS partition holds (a Windows file server's data volume). */
export function ntfsTree(): TreeEntry[] {
  return [
    { path: 'README.txt', data: text('Vaultline demo disk: NTFS partition 1 of file-01 (label FILES).\r\nBack file-01 up, then use Browse files on its restore point to download any of these files.\r\n') },
    { path: 'Users/Public/Documents/report.txt', data: text('Quarterly report Q4 2026\r\n\r\nRevenue: 1,284,000 EUR (+8 %)\r\nBackups verified: 100 %\r\nRestore drills passed: 12 of 12\r\n') },
    { path: 'Users/Public/Documents/Übersicht – Q4 2026.txt', data: text('Übersicht der Quartalszahlen – Größen in €.\r\n') },
    { path: 'Users/Public/Pictures/vaultline-logo.png', data: png() },
    { path: 'Windows/System32/drivers/etc/hosts', data: text('# Copyright (c) 1993-2009 Microsoft Corp.\r\n127.0.0.1       localhost\r\n10.0.20.15      file-01.corp.example\r\n') },
    { path: 'ProgramData/Vaultline Demo/settings.ini', data: text('[share]\r\npath=D:\\Shares\\Finance\r\nquota_gb=250\r\n') },
    { path: 'Shares/Finance/2026/12/ledger.csv', data: text(`date,account,amount\r\n${Array.from({ length: 200 }, (_, i) => `2026-12-${String((i % 28) + 1).padStart(2, '0')},${4000 + (i % 17)},${((i * 7919) % 100000) / 100}`).join('\r\n')}\r\n`) },
    { path: 'Shares/Finance/archive.bin', data: patternBytes('random', 2 * MiB, 4242) },
  ];
}

/** What the ext4 partition holds (a Linux root-like tree). */
export function ext4Tree(): TreeEntry[] {
  return [
    { path: 'README.md', data: text('# Vaultline demo disk\n\next4 partition 2 of file-01 (label demo-linux). Back file-01 up, then browse its restore point.\n') },
    { path: 'etc/hostname', data: text('file-01\n') },
    { path: 'etc/fstab', data: text(`UUID=${EXT4_UUID} /srv ext4 defaults 0 2\n`) },
    { path: 'etc/vaultline-demo/app.conf', data: text('# demo application\nlisten = 0.0.0.0:8443\ndata_dir = /srv/app\nretention_days = 30\n') },
    { path: 'etc/vaultline-demo/current.conf', symlink: 'app.conf' },
    { path: 'home/anna/Grüße aus München.txt', data: text('Servus! Ein Dateiname mit Umlauten: ä ö ü ß.\n') },
    { path: 'home/anna/projects/2026/q4/notes.md', data: text('## Q4 notes\n\n- restore drill every Sunday\n- keep 30 daily points\n') },
    { path: 'usr/local/bin/backup-check.sh', data: text('#!/bin/sh\necho "backups ok"\n'), mode: 0o755 },
    { path: 'var/backups/app.conf.gz', data: gzipSync(text('listen = 0.0.0.0:8443\n'), { level: 9 }) },
    { path: 'var/lib/demo/blob.bin', data: patternBytes('random', 1 * MiB, 4343) },
    { path: 'var/log/app/app.log', data: patternBytes('text', 512 * KiB, 4444) },
  ];
}

function writeTree(dir: string, tree: TreeEntry[]): void {
  const dirs = new Set<string>([dir]);
  for (const e of tree) {
    const p = path.join(dir, e.path);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    for (let d = path.dirname(p); d.startsWith(dir); d = path.dirname(d)) dirs.add(d);
    if (e.symlink !== undefined) {
      fs.symlinkSync(e.symlink, p);
      fs.lutimesSync(p, MTIME, MTIME);
    } else {
      fs.writeFileSync(p, e.data ?? Buffer.alloc(0), { mode: e.mode ?? 0o644 });
      fs.utimesSync(p, MTIME, MTIME);
    }
  }
  for (const d of dirs) fs.utimesSync(d, MTIME, MTIME);
}

/** The MBR: disk signature, the two primary entries (the first active), 0x55AA. */
export function mbr(): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeUInt32LE(DEMO_DISK.signature, 440);
  const chs = (lba: number): number[] => {
    const c = Math.floor(lba / (255 * 63));
    if (c > 1023) return [254, 0xff, 0xff];
    return [Math.floor(lba / 63) % 255, ((lba % 63) + 1) | ((c >> 2) & 0xc0), c & 0xff];
  };
  DEMO_DISK.partitions.forEach((p, i) => {
    const e = 446 + i * 16;
    const first = p.start / SECTOR;
    const sectors = p.size / SECTOR;
    b[e] = i === 0 ? 0x80 : 0;
    b.set(chs(first), e + 1);
    b[e + 4] = p.type;
    b.set(chs(first + sectors - 1), e + 5);
    b.writeUInt32LE(first, e + 8);
    b.writeUInt32LE(sectors, e + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

// ---------------------------------------------------------------------------
// Tools

/** Binary → Debian package, for building the disk. */
const TOOLS: Array<[string, string]> = [
  ['mkfs.ext4', 'e2fsprogs'],
  ['mkntfs', 'ntfs-3g'],
  ['wimlib-imagex', 'wimtools'],
];

const onPath = (bin: string) => ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => fs.existsSync(path.join(d, bin)));

/**
 * Installs what building the demo disk needs from Debian's packages when missing (root only),
 * else fails naming the packages: never a demo without its partitioned disk.
 */
export function ensureDemoDiskTools(root = isRoot()): void {
  const missing = [...new Set(TOOLS.filter(([b]) => !onPath(b)).map(([, p]) => p))];
  if (missing.length === 0) return;
  if (!root) {
    throw new Error(
      `The lab's demo inventory builds a disk with real NTFS and ext4 filesystems and needs ${missing.join(', ')}: run\n` +
        `  sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`,
    );
  }
  const env = childEnv({ DEBIAN_FRONTEND: 'noninteractive' });
  const apt = (args: string[]) => spawnSync('apt-get', args, { encoding: 'utf8', env });
  let r = apt(['install', '-y', '-qq', '--no-install-recommends', ...missing]);
  if (r.status !== 0) {
    apt(['update', '-qq']); // a stale package list: refresh it once and try again
    r = apt(['install', '-y', '-qq', '--no-install-recommends', ...missing]);
  }
  const still = TOOLS.filter(([b]) => !onPath(b)).map(([b]) => b);
  if (still.length) throw new Error(`could not install ${missing.join(' ')} for the demo disk (${still.join(', ')} still missing): ${(r.stderr || String(r.error ?? '')).trim()}`);
}

// ---------------------------------------------------------------------------
// Building (cached)

export interface BuiltDemoDisk {
  dir: string;
  /** [disk offset, length] of every non-zero area, in order; their bytes follow each other in data.bin. */
  extents: Array<[number, number]>;
  dataFile: string;
}

/** The cache key: what is built and how (bump `v` when a build step below changes). */
function recipe(): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: 1, layout: DEMO_DISK, uuid: EXT4_UUID, mtime: MTIME.toISOString(), block: BLOCK }));
  for (const [name, tree] of [['ntfs', ntfsTree()], ['ext4', ext4Tree()]] as const) {
    for (const e of tree) h.update(`${name}\0${e.path}\0${e.mode ?? ''}\0${e.symlink ?? ''}\0`).update(e.data ?? '');
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * Where `file` holds data, as BLOCK-aligned [start, end) byte ranges, from the filesystem's extent map
 * (`filefrag`, FIEMAP); null where the filesystem has none (tmpfs), so the whole file is read.
 */
function mappedRanges(file: string, size: number): Array<[number, number]> | null {
  const r = spawnSync('filefrag', ['-s', '-e', file], { encoding: 'utf8', env: childEnv({ LC_ALL: 'C' }) });
  const unit = /\(\d+ blocks? of (\d+) bytes\)/.exec(r.stdout ?? '');
  if (r.status !== 0 || !unit) return null;
  const bs = Number(unit[1]);
  const lines = [...r.stdout.matchAll(/^\s*\d+:\s*(\d+)\.\.\s*(\d+):/gm)];
  // No "N extents found", or extents found but none listed (another output format): read the whole file.
  const found = /: (\d+) extents? found/.exec(r.stdout);
  if (!found || (Number(found[1]) > 0 && lines.length === 0)) return null;
  const ranges: Array<[number, number]> = [];
  for (const m of lines) {
    const start = Math.floor((Number(m[1]) * bs) / BLOCK) * BLOCK;
    const end = Math.min(size, Math.ceil(((Number(m[2]) + 1) * bs) / BLOCK) * BLOCK);
    const last = ranges[ranges.length - 1];
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else ranges.push([start, end]);
  }
  return ranges;
}

/** Appends the non-zero BLOCK-sized areas of `file` (placed at `diskOffset`) to `extents` and their bytes to `out`. */
function collectData(file: string, diskOffset: number, extents: Array<[number, number]>, out: number): void {
  const CHUNK = 8 * MiB;
  const buf = Buffer.alloc(CHUNK);
  const zeros = Buffer.alloc(CHUNK);
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    for (const [from, to] of mappedRanges(file, size) ?? [[0, size]]) {
      for (let off = from; off < to; off += CHUNK) {
        const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, to - off), off);
        if (buf.compare(zeros, 0, n, 0, n) === 0) continue; // a hole: one comparison per chunk
        for (let b = 0; b < n; b += BLOCK) {
          const end = Math.min(b + BLOCK, n);
          if (buf.compare(zeros, 0, end - b, b, end) === 0) continue;
          const at = diskOffset + off + b;
          const last = extents[extents.length - 1];
          if (last && last[0] + last[1] === at) last[1] += end - b;
          else extents.push([at, end - b]);
          fs.writeSync(out, buf, b, end - b);
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

function readBuilt(dir: string): BuiltDemoDisk | null {
  try {
    const extents = JSON.parse(fs.readFileSync(path.join(dir, 'extents.json'), 'utf8')) as Array<[number, number]>;
    const dataFile = path.join(dir, 'data.bin');
    if (fs.statSync(dataFile).size !== extents.reduce((n, [, l]) => n + l, 0)) return null;
    return { dir, extents, dataFile };
  } catch {
    return null;
  }
}

/** Builds the demo disk's data (or reuses the cached build of the same recipe). */
export function buildDemoDisk(): BuiltDemoDisk {
  const cache = labEnv.cacheDir;
  const dir = path.join(cache, `demo-disk-${recipe()}`);
  const cached = readBuilt(dir);
  if (cached) return cached;
  ensureDemoDiskTools();
  fs.mkdirSync(cache, { recursive: true });
  const tmp = path.join(cache, `demo-disk.tmp-${process.pid}-${randomUUID().slice(0, 8)}`);
  fs.mkdirSync(tmp);
  try {
    const { ntfs, ext4 } = DEMO_DISK;
    const image = (name: string, size: number) => {
      const p = path.join(tmp, name);
      fs.writeFileSync(p, '');
      fs.truncateSync(p, size); // sparse
      return p;
    };
    const ntfsImg = image('ntfs.img', ntfs.size);
    sh('mkntfs', ['-F', '-Q', '-q', '-s', String(SECTOR), '-p', String(ntfs.start / SECTOR), '-H', '255', '-S', '63', '-L', ntfs.label, ntfsImg]);
    const ntfsSrc = path.join(tmp, 'ntfs-src');
    writeTree(ntfsSrc, ntfsTree());
    const wim = path.join(tmp, 'ntfs.wim');
    sh('wimlib-imagex', ['capture', ntfsSrc, wim, 'demo', '--compress=none', '--no-acls']);
    sh('wimlib-imagex', ['apply', wim, '1', ntfsImg]);

    const ext4Img = image('ext4.img', ext4.size);
    const ext4Src = path.join(tmp, 'ext4-src');
    writeTree(ext4Src, ext4Tree());
    sh('mkfs.ext4', ['-q', '-F', '-L', ext4.label, '-U', EXT4_UUID, '-E', `lazy_itable_init=1,lazy_journal_init=1,nodiscard,hash_seed=${EXT4_UUID},root_owner=0:0`, '-d', ext4Src, ext4Img]);

    const mbrImg = path.join(tmp, 'mbr.img');
    fs.writeFileSync(mbrImg, mbr());
    const extents: Array<[number, number]> = [];
    const out = fs.openSync(path.join(tmp, 'data.bin'), 'w');
    try {
      collectData(mbrImg, 0, extents, out);
      collectData(ntfsImg, ntfs.start, extents, out);
      collectData(ext4Img, ext4.start, extents, out);
    } finally {
      fs.closeSync(out);
    }
    fs.writeFileSync(path.join(tmp, 'extents.json'), JSON.stringify(extents));
    for (const f of fs.readdirSync(tmp)) {
      if (f !== 'data.bin' && f !== 'extents.json') fs.rmSync(path.join(tmp, f), { recursive: true, force: true });
    }
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Built meanwhile by another process (parallel test files): use theirs.
      if (!readBuilt(dir)) throw e;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  for (const old of fs.readdirSync(cache)) {
    // Other recipes' builds, and half-done ones of builders that died.
    const stale = old.startsWith('demo-disk-') ? path.join(cache, old) !== dir : old.startsWith('demo-disk.tmp-') && !pidAlive(Number(old.split('-')[2]));
    if (stale) fs.rmSync(path.join(cache, old), { recursive: true, force: true });
  }
  const built = readBuilt(dir);
  if (!built) throw new Error(`the demo disk in ${dir} is incomplete`);
  return built;
}

/** Writes the demo disk onto the VM's disk through the lab's guest writer (only the non-zero areas). */
export async function writeDemoDisk(lab: Lab, vmName: string, diskIndex: number): Promise<void> {
  const built = buildDemoDisk();
  const vm = await lab.getVm(vmName);
  const disk = vm.disks[diskIndex];
  if (!disk) throw new Error(`${vmName} has no disk ${diskIndex}`);
  if (disk.capacityBytes < DEMO_DISK.capacityBytes) throw new Error(`${vmName}'s disk ${diskIndex} is smaller than the demo disk`);
  const base = lab.url.replace(/\/sdk$/, '');
  const agent = base.startsWith('http:') ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : new https.Agent({ keepAlive: true, maxSockets: 1, ca: lab.certPem });
  const fd = fs.openSync(built.dataFile, 'r');
  try {
    let pos = 0;
    for (const [offset, length] of built.extents) {
      for (let done = 0; done < length; done += 8 * MiB) {
        const data = Buffer.alloc(Math.min(8 * MiB, length - done));
        fs.readSync(fd, data, 0, data.length, pos);
        pos += data.length;
        const qs = new URLSearchParams({ vm: vm.moref, key: String(disk.key), offset: String(offset + done) });
        const res = await httpRequest(`${base}/lab/guest-write?${qs}`, {
          method: 'POST',
          agent,
          body: data,
          ca: lab.certPem,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) },
        });
        if (res.status !== 200) throw new Error(`guest write of the demo disk failed: ${res.body.toString('utf8')}`);
      }
    }
  } finally {
    fs.closeSync(fd);
    agent.destroy();
  }
}
