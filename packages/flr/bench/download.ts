/**
 * How fast a file comes out of a restore point through file-level restore,
 * next to the repository's own read speed of the same bytes:
 *
 *   npx tsx packages/flr/bench/download.ts [sizeMiB=20] [runs=3]
 *
 * Builds a GPT disk with one ext4 partition holding one random file, stores it
 * as a restore point, opens a browse session (NBD server process → nbdfuse →
 * read-only loop → ext4 ro,noload) and reads the file through the mount as the
 * Director streams it (1 MiB reads). Prints MiB/s for the first read (nothing
 * cached), a repeat read (page caches warm) and the repository DiskReader
 * alone, with ratios. Needs root (mounts); leaves nothing mounted.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@vaultline/logger';
import { DiskReader, Repository } from '@vaultline/repository';
import { FileRestoreSessions, FlrHelper, parsePath, type Session } from '../src/index.ts';
import { ensureFlrTools, leftoversUnder, memoryJournal, startFlrHelper, storeRestorePoint, type RunningHelper } from '../test/tools.ts';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 20);
const runs = Number(process.argv[3] ?? 3);

/** The whole file as the Director reads it: from the helper, over its socket. */
async function readAll(sessions: FileRestoreSessions, s: Session, name: string): Promise<{ ms: number; sha: string }> {
  const t0 = performance.now();
  const file = { partition: 'd0p1', path: parsePath({ path: name }) };
  const { size } = await sessions.stat(s, file);
  const h = createHash('sha256');
  for await (const c of await sessions.read(s, file, 0, size - 1)) h.update(c as Buffer);
  return { ms: performance.now() - t0, sha: h.digest('hex') };
}

ensureFlrTools();
const dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-flr-bench-'));
let helper: RunningHelper | undefined;
try {
  const data = randomBytes(sizeMiB * MiB);
  const want = createHash('sha256').update(data).digest('hex');
  const image = path.join(dir, 'disk.img');
  const partSize = (sizeMiB + 64) * MiB;
  await writeFile(image, '');
  execFileSync('truncate', ['-s', String(partSize + 2 * MiB), image]);
  execFileSync('sgdisk', ['-n1:2048:0', '-t1:8300', image], { stdio: 'ignore' });
  const loop = execFileSync('losetup', ['--find', '--show', '--offset', String(MiB), '--sizelimit', String(partSize), image], { encoding: 'utf8' }).trim();
  const mnt = path.join(dir, 'm');
  try {
    execFileSync('mkfs.ext4', ['-q', loop]);
    execFileSync('mkdir', ['-p', mnt]);
    execFileSync('mount', [loop, mnt]);
    await writeFile(path.join(mnt, 'file.bin'), data);
    execFileSync('umount', [mnt]);
  } finally {
    execFileSync('losetup', ['--detach', loop]);
  }
  const repoDir = path.join(dir, 'repo');
  const id = await storeRestorePoint(repoDir, 'bench passphrase', { uuid: 'bench-vm', name: 'bench' }, [{ key: '2000', image }]);
  const capacity = (await readFile(image)).length;

  // The repository alone: DiskReader over the same byte range (ext4 put the file somewhere in the partition;
  // reading the same amount from the start of the disk is the comparable figure).
  const repo = await Repository.open(repoDir, { passphrase: 'bench passphrase' });
  const reader = await DiskReader.open(repo, { vmId: 'bench-vm', id }, '2000', { cacheChunks: 128, readAhead: 8 });
  const t0 = performance.now();
  for (let off = MiB; off < MiB + sizeMiB * MiB; off += MiB) await reader.read(off, MiB);
  const repoMs = performance.now() - t0;
  await repo.close();

  const { log } = memoryLogger('bench', 'warn');
  const root = path.join(dir, 'flr');
  helper = await startFlrHelper(root);
  const sessions = new FileRestoreSessions({ root: path.join(helper.runDir, 'nbd'), helper: new FlrHelper(helper.runDir), journal: memoryJournal(), secretKey: Buffer.alloc(32, 7), log });
  const { sealSecret } = await import('@vaultline/config');
  const { SECRET_LABELS } = await import('@vaultline/appliance');
  const t1 = performance.now();
  const view = await sessions.open({
    restorePointId: 'bench',
    label: 'bench',
    repository: { kind: 'local', location: repoDir, encrypted: true, passphraseSealed: sealSecret(Buffer.alloc(32, 7), SECRET_LABELS.repositoryPassphrase, 'bench passphrase'), sftpKeySealed: null },
    ref: { vmId: 'bench-vm', id },
    disks: [{ key: '2000', capacity }],
    user: { id: 'u', username: 'bench' },
  });
  const openMs = performance.now() - t1;
  const s = sessions.use(view.session, 'u');
  const results: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await readAll(sessions, s, 'file.bin');
    if (r.sha !== want) throw new Error('content differs');
    results.push(r.ms);
  }
  await sessions.closeAll();
  const left = leftoversUnder(root, helper.pid);
  const rate = (ms: number) => (sizeMiB / ms) * 1000;
  console.log(`file-level restore, ${sizeMiB} MiB random file on ext4 (encrypted repository), this machine:`);
  console.log(`  open session (NBD server, nbdfuse, loop, mount): ${openMs.toFixed(0)} ms`);
  console.log(`  first read through the helper: ${results[0]!.toFixed(0)} ms = ${rate(results[0]!).toFixed(0)} MiB/s`);
  for (let i = 1; i < results.length; i++) console.log(`  repeat read ${i}                : ${results[i]!.toFixed(0)} ms = ${rate(results[i]!).toFixed(0)} MiB/s (page cache)`);
  console.log(`  repository DiskReader alone  : ${repoMs.toFixed(0)} ms = ${rate(repoMs).toFixed(0)} MiB/s`);
  console.log(`  ratio first read / DiskReader: ${(rate(results[0]!) / rate(repoMs)).toFixed(2)}`);
  if (left.mounts.length || left.loops.length || left.processes.length) throw new Error(`left behind: ${JSON.stringify(left)}`);
} finally {
  await helper?.stop();
  if (leftoversUnder(dir, helper?.pid).mounts.length === 0) await rm(dir, { recursive: true, force: true });
}
