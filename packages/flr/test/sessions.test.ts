/**
 * Browse sessions on an MBR disk with logical partitions (extended partition,
 * EBR chain written here byte by byte), real mkfs/mkswap, the real repository
 * and the whole mount stack in the helper process (vaultline-flr, in its own
 * mount namespace); then a helper killed while holding a session, whose
 * successor sweeps it from the journal files alone.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRestoreSessions, FlrHelper, FlrSessionError, parsePath, sweep, type Session } from '../src/index.ts';
import { selfOwner } from '../src/system.ts';
import { ensureFlrTools, leftoversUnder, memoryJournal, mountsIn, repositoryFingerprint, startFlrHelper, storeRestorePoint, type RunningHelper } from './tools.ts';

const MiB = 1024 * 1024;
const S = 512;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One 16-byte MBR/EBR partition entry (LBA fields only; CHS left zero). */
function entry(type: number, lba: number, sectors: number): Buffer {
  const e = Buffer.alloc(16);
  e[4] = type;
  e.writeUInt32LE(lba, 8);
  e.writeUInt32LE(sectors, 12);
  return e;
}

async function writeSector(file: string, lba: number, entries: Buffer[]): Promise<void> {
  const sector = Buffer.alloc(S);
  entries.forEach((e, i) => e.copy(sector, 446 + 16 * i));
  sector[510] = 0x55;
  sector[511] = 0xaa;
  const fh = await open(file, 'r+');
  await fh.write(sector, 0, S, lba * S);
  await fh.close();
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('browse sessions on an MBR disk with logical partitions, and the sweep', () => {
  let dir: string;
  let repoDir: string;
  let pointId: string;
  let image: string;
  let secret: Buffer;
  const layout = { p1: { lba: 2048, sectors: 65536 }, ext: { lba: 67584, sectors: 129024 }, l5: { lba: 69632, sectors: 65536 }, l6: { lba: 137216, sectors: 32768 } };

  beforeAll(async () => {
    ensureFlrTools();
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-flr-mbr-'));
    image = path.join(dir, 'mbr.img');
    await writeFile(image, '');
    sh('truncate', ['-s', String(96 * MiB), image]);
    await writeSector(image, 0, [entry(0x83, layout.p1.lba, layout.p1.sectors), entry(0x05, layout.ext.lba, layout.ext.sectors)]);
    // EBR 1: logical 5 (relative to this EBR), link to EBR 2 (relative to the extended partition).
    const ebr2 = layout.l6.lba - 2048;
    await writeSector(image, layout.ext.lba, [entry(0x83, layout.l5.lba - layout.ext.lba, layout.l5.sectors), entry(0x05, ebr2 - layout.ext.lba, layout.l6.sectors + 2048)]);
    await writeSector(image, ebr2, [entry(0x82, layout.l6.lba - ebr2, layout.l6.sectors)]);
    secret = randomBytes(3 * MiB + 7);
    const loops: string[] = [];
    try {
      for (const [name, p, label] of [['p1', layout.p1, 'primary'], ['l5', layout.l5, 'logical']] as const) {
        const l = sh('losetup', ['--find', '--show', '--offset', String(p.lba * S), '--sizelimit', String(p.sectors * S), image]).trim();
        loops.push(l);
        sh('mkfs.ext4', ['-q', '-L', label, l]);
        const m = path.join(dir, `m-${name}`);
        await mkdir(m);
        sh('mount', [l, m]);
        try {
          await writeFile(path.join(m, `${label}.bin`), secret);
        } finally {
          sh('umount', [m]);
        }
      }
      const l6 = sh('losetup', ['--find', '--show', '--offset', String(layout.l6.lba * S), '--sizelimit', String(layout.l6.sectors * S), image]).trim();
      loops.push(l6);
      sh('mkswap', ['-L', 'swap6', l6]);
    } finally {
      for (const l of loops) spawnSync('losetup', ['--detach', l]);
    }
    repoDir = path.join(dir, 'repo');
    pointId = await storeRestorePoint(repoDir, undefined, { uuid: 'vm-mbr', name: 'mbr' }, [{ key: '2000', image }]);
    helper = await startFlrHelper(path.join(dir, 'h'));
  });
  afterAll(async () => {
    await helper?.stop();
    if (dir && leftoversUnder(dir, helper?.pid).mounts.length === 0) await rm(dir, { recursive: true, force: true });
  });

  let helper: RunningHelper;
  const hdir = () => path.join(dir, 'h');
  const sessionsWith = (journal: ReturnType<typeof memoryJournal>) =>
    new FileRestoreSessions({ root: path.join(helper.runDir, 'nbd'), helper: new FlrHelper(helper.runDir), journal, secretKey: Buffer.alloc(32, 1), log: memoryLogger('flr-test').log });
  const readWhole = async (sessions: FileRestoreSessions, s: Session, partition: string, p: string) => {
    const file = { partition, path: parsePath({ path: p }) };
    const st = await sessions.stat(s, file);
    const chunks: Buffer[] = [];
    for await (const c of await sessions.read(s, file, 0, st.size - 1)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };

  const request = () => ({
    restorePointId: 'rp-mbr',
    label: 'mbr',
    repository: { kind: 'local', location: repoDir, encrypted: false, passphraseSealed: null, sftpKeySealed: null },
    ref: { vmId: 'vm-mbr', id: pointId },
    disks: [{ key: '2000', capacity: 96 * MiB }],
    user: { id: 'u1', username: 'operator1' },
  });

  it('finds primary and logical partitions (the extended container is not listed), mounts ext4, names swap, and reads the files', async () => {
    const journal = memoryJournal();
    const sessions = sessionsWith(journal);
    await sessions.start();
    const view = await sessions.open(request());
    try {
      expect(view.disks[0]!.partitionTable).toBe('dos');
      const parts = view.disks[0]!.partitions;
      expect(parts.map((p) => p.id)).toEqual(['d0p1', 'd0p5', 'd0p6']);
      expect(parts[0]).toMatchObject({ filesystem: 'ext4', label: 'primary', partitionType: '0x83', mounted: true, offsetBytes: layout.p1.lba * S });
      expect(parts[1]).toMatchObject({ filesystem: 'ext4', label: 'logical', mounted: true, offsetBytes: layout.l5.lba * S, sizeBytes: layout.l5.sectors * S });
      expect(parts[2]).toMatchObject({ filesystem: 'swap', label: 'swap6', mounted: false, reason: 'swap space (holds no files)' });
      const s = sessions.use(view.session, 'u1');
      expect(() => sessions.use(view.session, 'someone-else')).toThrow(/belongs to another user/);
      const listing = await sessions.list(s, { partition: 'd0p5', path: parsePath({ path: '' }) }, { limit: 10 });
      expect(listing.entries.map((e) => e.name)).toEqual(['logical.bin', 'lost+found']);
      expect(sha(await readWhole(sessions, s, 'd0p5', 'logical.bin'))).toBe(sha(secret));
      expect(sha(await readWhole(sessions, s, 'd0p1', 'primary.bin'))).toBe(sha(secret));
      await expect(sessions.list(s, { partition: 'd0p6', path: [] }, { limit: 1 })).rejects.toThrow(/not mounted: swap space/);
      // The mounts are the helper's: this process (the Director's side) sees none of them.
      expect(mountsIn(helper.pid, hdir()).length).toBe(3);
      expect(mountsIn('self', hdir())).toEqual([]);
    } finally {
      await sessions.closeAll();
    }
    expect(leftoversUnder(hdir(), helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
    expect([...journal.rows.values()].filter((r) => !r.resolved)).toEqual([]);
    expect(await readdir(path.join(helper.stateDir, 'journal'))).toEqual([]);
  });

  it('a helper killed while holding a session: the next helper sweeps it from its journal files alone, the Director its NBD server', async () => {
    const journal = memoryJournal();
    const { log } = memoryLogger('flr-test');
    const before = repositoryFingerprint(repoDir);
    const sessions = sessionsWith(journal);
    await sessions.open(request());
    try {
      const held = leftoversUnder(hdir(), helper.pid);
      expect(held.mounts.length).toBe(3); // nbdfuse + two ext4
      expect(held.loops.length).toBe(2);
      expect((await readdir(path.join(helper.stateDir, 'journal'))).length).toBe(1 + 1 + 2 + 2); // session, nbdfuse, 2 loops, 2 mounts
      helper.child.kill('SIGKILL');
      await new Promise((r) => helper.child.once('exit', r));
      const orphaned = leftoversUnder(hdir());
      expect(orphaned.loops.length).toBe(2); // loop devices outlive it; nbdfuse keeps its namespace and mounts alive
      expect(orphaned.processes.some((p) => p.includes('nbdfuse'))).toBe(true);

      helper = await startFlrHelper(hdir()); // its start sweeps before it listens
      expect(await readdir(path.join(helper.stateDir, 'journal'))).toEqual([]);
      expect(leftoversUnder(path.join(hdir(), 'state'), helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
      // The Director's side: as if it had lost the session, nothing of ours is live.
      const report = await sweep({ journal, log, self: await selfOwner(), root: path.join(helper.runDir, 'nbd'), live: new Set() });
      expect(report).toMatchObject({ sessions: 1, serversStopped: 1, failures: [], refused: [] });
      expect(leftoversUnder(hdir(), helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
      expect([...journal.rows.values()].filter((r) => !r.resolved)).toEqual([]);
    } finally {
      await sessions.closeAll(); // undoes are idempotent; the new helper knows no such session (404, ignored)
    }
    expect(leftoversUnder(hdir(), helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
    expect((await readFile(image)).length).toBe(96 * MiB);
    expect(repositoryFingerprint(repoDir)).toEqual(before);
  });

  /** Until `done()` holds or 30 s passed (a teardown goes layer by layer). */
  const until = async (done: () => boolean) => {
    const end = Date.now() + 30_000;
    while (Date.now() < end && !done()) await new Promise((r) => setTimeout(r, 200));
  };

  it('one user holds at most maxPerUser sessions (also when asking twice at once); another user still opens one', async () => {
    const journal = memoryJournal();
    const { log } = memoryLogger('flr-test');
    const sessions = new FileRestoreSessions({ root: path.join(helper.runDir, 'nbd'), helper: new FlrHelper(helper.runDir), journal, secretKey: Buffer.alloc(32, 1), log, maxPerUser: 1 });
    try {
      const both = await Promise.allSettled([sessions.open(request()), sessions.open(request())]);
      expect(both.filter((r) => r.status === 'fulfilled').length).toBe(1);
      const refused = both.find((r) => r.status === 'rejected')!.reason as FlrSessionError;
      expect(refused).toBeInstanceOf(FlrSessionError);
      expect(refused.code).toBe('rate_limited');
      expect(refused.message).toBe('operator1 has 1 browse session open, the most one user may; close one (DELETE …/browse/<session>) first');
      await expect(sessions.open(request())).rejects.toThrow(/operator1 has 1 browse session open/);
      await sessions.open({ ...request(), user: { id: 'u2', username: 'operator2' } });
      expect(sessions.size).toBe(2);
    } finally {
      await sessions.closeAll();
    }
    expect(leftoversUnder(hdir(), helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
  });

  it('a session is closed and unmounted at the end of its lifetime even while a download from it runs', async () => {
    const journal = memoryJournal();
    const { log } = memoryLogger('flr-test');
    const sessions = new FileRestoreSessions({ root: path.join(helper.runDir, 'nbd'), helper: new FlrHelper(helper.runDir), journal, secretKey: Buffer.alloc(32, 1), log, maxLifetimeMs: 4_000, idleMs: 600_000 });
    await sessions.start();
    try {
      const view = await sessions.open(request());
      expect(Date.parse(view.expiresAt) - Date.parse(view.createdAt)).toBe(4_000);
      const s = sessions.use(view.session, 'u1');
      // A download whose client stopped reading: it keeps the session busy, never idle.
      const file = { partition: 'd0p1', path: parsePath({ path: 'primary.bin' }) };
      const st = await sessions.stat(s, file);
      const stream = await sessions.read(s, file, 0, st.size - 1);
      stream.on('error', () => undefined);
      stream.pause();
      await new Promise<void>((resolve) => stream.once('close', () => resolve()));
      await until(() => sessions.size === 0 && leftoversUnder(hdir(), helper.pid).mounts.length === 0);
      expect(() => sessions.use(view.session, 'u1')).toThrow(/no such browse session/);
      expect(leftoversUnder(hdir(), helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
      await until(() => [...journal.rows.values()].every((r) => r.resolved));
      expect([...journal.rows.values()].filter((r) => !r.resolved)).toEqual([]);
    } finally {
      await sessions.closeAll();
    }
  });
});
