/**
 * Browse sessions on an MBR disk with logical partitions (extended partition,
 * EBR chain written here byte by byte), real mkfs/mkswap, the real repository
 * and the whole mount stack; then the sweep removing a session its owner no
 * longer holds, from the journal alone.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRestoreSessions, FlrSessionError, list, openFile, parsePath, sweep } from '../src/index.ts';
import { selfOwner } from '../src/system.ts';
import { ensureFlrTools, leftoversUnder, memoryJournal, repositoryFingerprint, storeRestorePoint } from './tools.ts';

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
  });
  afterAll(async () => {
    if (dir && leftoversUnder(dir).mounts.length === 0) await rm(dir, { recursive: true, force: true });
  });

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
    const { log } = memoryLogger('flr-test');
    const root = path.join(dir, 'flr-a');
    const sessions = new FileRestoreSessions({ root, journal, secretKey: Buffer.alloc(32, 1), log });
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
      const listing = await list(sessions.mountPoint(s, 'd0p5'), parsePath({ path: '' }), { limit: 10 });
      expect(listing.entries.map((e) => e.name)).toEqual(['logical.bin', 'lost+found']);
      const f = await openFile(sessions.mountPoint(s, 'd0p5'), parsePath({ path: 'logical.bin' }));
      const data = await f.handle.readFile();
      await f.handle.close();
      expect(sha(data)).toBe(sha(secret));
      expect(() => sessions.mountPoint(s, 'd0p6')).toThrow(/not mounted: swap space/);
    } finally {
      await sessions.closeAll();
    }
    expect(leftoversUnder(root)).toEqual({ mounts: [], loops: [], processes: [] });
    expect([...journal.rows.values()].filter((r) => !r.resolved)).toEqual([]);
  });

  it('the sweep removes, from the journal alone, a session its owner no longer holds', async () => {
    const journal = memoryJournal();
    const { log } = memoryLogger('flr-test');
    const root = path.join(dir, 'flr-b');
    const before = repositoryFingerprint(repoDir);
    const sessions = new FileRestoreSessions({ root, journal, secretKey: Buffer.alloc(32, 1), log });
    await sessions.open(request());
    try {
      const held = leftoversUnder(root);
      expect(held.mounts.length).toBe(3); // nbdfuse + two ext4
      expect(held.loops.length).toBe(2);
      // As if the manager had lost the session (its teardown failed part-way): nothing of ours is live.
      const report = await sweep({ journal, log, self: await selfOwner(), live: new Set() });
      expect(report).toMatchObject({ sessions: 1, failures: [] });
      expect(report.unmounted.length).toBe(2);
      expect(report.loopsDetached.length).toBe(2);
      expect(report.fuseUnmounted.length).toBe(1);
      expect(leftoversUnder(root)).toEqual({ mounts: [], loops: [], processes: [] });
      expect([...journal.rows.values()].filter((r) => !r.resolved)).toEqual([]);
    } finally {
      await sessions.closeAll(); // undoes are idempotent: after the sweep this finds nothing left
    }
    expect(leftoversUnder(root)).toEqual({ mounts: [], loops: [], processes: [] });
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
    const root = path.join(dir, 'flr-c');
    const sessions = new FileRestoreSessions({ root, journal, secretKey: Buffer.alloc(32, 1), log, maxPerUser: 1 });
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
    expect(leftoversUnder(root)).toEqual({ mounts: [], loops: [], processes: [] });
  });

  it('a session is closed and unmounted at the end of its lifetime even while a download from it runs', async () => {
    const journal = memoryJournal();
    const { log } = memoryLogger('flr-test');
    const root = path.join(dir, 'flr-d');
    const sessions = new FileRestoreSessions({ root, journal, secretKey: Buffer.alloc(32, 1), log, maxLifetimeMs: 4_000, idleMs: 600_000 });
    await sessions.start();
    try {
      const view = await sessions.open(request());
      expect(Date.parse(view.expiresAt) - Date.parse(view.createdAt)).toBe(4_000);
      const s = sessions.use(view.session, 'u1');
      // A download whose client stopped reading: it keeps the session busy, never idle.
      const f = await openFile(sessions.mountPoint(s, 'd0p1'), parsePath({ path: 'primary.bin' }));
      const stream = f.handle.createReadStream({ highWaterMark: 64 * 1024 });
      stream.on('error', () => undefined);
      sessions.track(s, stream);
      stream.pause();
      await new Promise<void>((resolve) => stream.once('close', () => resolve()));
      await until(() => sessions.size === 0 && leftoversUnder(root).mounts.length === 0);
      expect(() => sessions.use(view.session, 'u1')).toThrow(/no such browse session/);
      expect(leftoversUnder(root)).toEqual({ mounts: [], loops: [], processes: [] });
      await until(() => [...journal.rows.values()].every((r) => r.resolved));
      expect([...journal.rows.values()].filter((r) => !r.resolved)).toEqual([]);
    } finally {
      await sessions.closeAll();
    }
  });
});
