/**
 * The kernel filesystems besides ext4 that file-level restore mounts
 * read-only — xfs (ro,norecovery,nouuid) and btrfs (ro,rescue=nologreplay) —
 * each on a whole disk without a partition table, built with the real mkfs
 * tools, stored through the real repository and read back through a session
 * (mounted by the helper process, vaultline-flr).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRestoreSessions, FlrHelper, parsePath } from '../src/index.ts';
import { ensureFlrTools, leftoversUnder, memoryJournal, startFlrHelper, storeRestorePoint, type RunningHelper } from './tools.ts';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

function ensureMkfs(): void {
  const missing = [['mkfs.xfs', 'xfsprogs'], ['mkfs.btrfs', 'btrfs-progs']].filter(([b]) => !have(b!)).map(([, p]) => p!);
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, encoding: 'utf8' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env });
    r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, encoding: 'utf8' });
  }
  if (r.status !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed: ${r.stderr}`);
}

describe('xfs and btrfs on whole disks, mounted read-only by the kernel', () => {
  let dir: string;
  let repoDir: string;
  let pointId: string;
  const content = randomBytes(5 * MiB + 3);
  const disks = [
    { key: '2000', fs: 'xfs', size: 320 * MiB, mkfs: ['mkfs.xfs', '-q', '-L', 'xfsdata'] },
    { key: '2001', fs: 'btrfs', size: 128 * MiB, mkfs: ['mkfs.btrfs', '-q', '-L', 'btrdata'] },
  ];

  beforeAll(async () => {
    ensureFlrTools();
    ensureMkfs();
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-flr-fs-'));
    for (const d of disks) {
      const image = path.join(dir, `${d.fs}.img`);
      await writeFile(image, '');
      execFileSync('truncate', ['-s', String(d.size), image]);
      execFileSync(d.mkfs[0]!, [...d.mkfs.slice(1), image], { stdio: 'ignore' });
      const loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
      const m = path.join(dir, `m-${d.fs}`);
      await mkdir(m);
      try {
        execFileSync('mount', [loop, m]);
        try {
          await mkdir(path.join(m, 'deep', 'er'), { recursive: true });
          await writeFile(path.join(m, 'deep', 'er', 'data.bin'), content);
        } finally {
          execFileSync('umount', [m]);
        }
      } finally {
        spawnSync('losetup', ['--detach', loop]);
      }
    }
    repoDir = path.join(dir, 'repo');
    pointId = await storeRestorePoint(repoDir, undefined, { uuid: 'vm-fs', name: 'fs' }, disks.map((d) => ({ key: d.key, image: path.join(dir, `${d.fs}.img`) })));
  }, 300_000);
  let helper: RunningHelper | undefined;
  afterAll(async () => {
    await helper?.stop();
    if (dir && leftoversUnder(dir, helper?.pid).mounts.length === 0) await rm(dir, { recursive: true, force: true });
  });

  it('mounts both read-only and reads the file back byte for byte', async () => {
    const root = path.join(dir, 'flr');
    helper = await startFlrHelper(root);
    const journal = memoryJournal();
    const sessions = new FileRestoreSessions({ root: path.join(helper.runDir, 'nbd'), helper: new FlrHelper(helper.runDir), journal, secretKey: Buffer.alloc(32, 2), log: memoryLogger('flr-fs').log });
    const view = await sessions.open({
      restorePointId: 'rp-fs',
      label: 'fs',
      repository: { kind: 'local', location: repoDir, encrypted: false, passphraseSealed: null, sftpKeySealed: null },
      ref: { vmId: 'vm-fs', id: pointId },
      disks: disks.map((d) => ({ key: d.key, capacity: d.size })),
      user: { id: 'u', username: 'operator' },
    });
    try {
      const parts = view.disks.map((d) => d.partitions[0]!);
      expect(parts[0]).toMatchObject({ id: 'd0', filesystem: 'xfs', label: 'xfsdata', mounted: true, driver: 'xfs (kernel, ro,norecovery)' });
      expect(parts[1]).toMatchObject({ id: 'd1', filesystem: 'btrfs', label: 'btrdata', mounted: true, driver: 'btrfs (kernel, ro,rescue=nologreplay)' });
      const s = sessions.use(view.session, 'u');
      for (const id of ['d0', 'd1']) {
        const file = { partition: id, path: parsePath({ path: 'deep/er/data.bin' }) };
        const st = await sessions.stat(s, file);
        const chunks: Buffer[] = [];
        for await (const c of await sessions.read(s, file, 0, st.size - 1)) chunks.push(c as Buffer);
        expect(sha(Buffer.concat(chunks))).toBe(sha(content));
      }
      const opts = readFileSync(`/proc/${helper.pid}/mountinfo`, 'utf8').split('\n').filter((l) => l.includes(root) && l.includes('/mnt/'));
      expect(opts.length).toBe(2);
      for (const l of opts) expect(l.split(' ')[5]).toMatch(/^ro,nosuid,nodev,noexec/);
    } finally {
      await sessions.closeAll();
    }
    expect(leftoversUnder(root, helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
  });
});
