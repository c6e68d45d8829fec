import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { journalMac, loadJournalKey } from '@vaultline/appliance';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { memoryLogger } from '@vaultline/logger';
import { createLocalDevices } from '../src/adapters/devices.ts';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import { sweepOrphans } from '../src/sweep.ts';

const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('cleanup journal in Postgres', () => {
  let database: TestDatabase;
  let db: Db;
  const key = randomBytes(32);
  beforeAll(async () => {
    database = await createTestDatabase(PG_SERVER, 'vaultline_journal');
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  it('keeps a row until it is resolved, counting failed undo attempts', async () => {
    const j = pgJournal(db, 'me', key);
    const id = await j.add('snapshot', { vmMoref: 'vm-1', snapshot: null }, {});
    await j.update(id, { vmMoref: 'vm-1', snapshot: 'snapshot-9' });
    await j.failed(id, 'TaskInProgress');
    const [row] = await j.pending();
    expect(row).toMatchObject({ id, kind: 'snapshot', target: { snapshot: 'snapshot-9' }, attempts: 1 });
    await j.resolve(id);
    expect(await j.pending()).toEqual([]);
  });

  it("adopts the vSphere leftovers of a Transporter that went silent, but not its local mounts or a live one's rows", async () => {
    const now = Date.now();
    await db.transporter.createMany({
      data: [
        { id: 'dead', name: 'dead', host: 'h1', version: '0', lastHeartbeat: new Date(now - 3600_000) },
        { id: 'alive', name: 'alive', host: 'h2', version: '0', lastHeartbeat: new Date(now - 5_000) },
        { id: 'remote', name: 'remote', host: 'h3', version: '0', lastHeartbeat: new Date(now - 3600_000) },
      ],
    });
    const dead = pgJournal(db, 'dead', key);
    const alive = pgJournal(db, 'alive', key);
    const snap = await dead.add('snapshot', { vmMoref: 'vm-2', snapshot: 'snapshot-3' }, {});
    const attach = await dead.add('disk_attach', { proxyVm: 'vm-7', fileName: '[ds] a/a.vmdk' }, {});
    await dead.add('lun_mount', { device: '/dev/loop9' }, {});
    await alive.add('snapshot', { vmMoref: 'vm-3', snapshot: 'snapshot-4' }, {});
    // A silent Transporter with a key of its own (a remote one): not ours to adopt, nor to refuse.
    const remote = await pgJournal(db, 'remote', randomBytes(32)).add('snapshot', { vmMoref: 'vm-4', snapshot: 'snapshot-5' }, {});
    const mine = pgJournal(db, 'me', key);
    expect((await mine.pending()).map((r) => r.id).sort()).toEqual([snap, attach].sort());
    expect(await db.cleanupEntry.findUniqueOrThrow({ where: { id: remote } })).toMatchObject({ refusedAt: null, resolvedAt: null });
    await db.cleanupEntry.updateMany({ where: { transporterId: { in: ['dead', 'alive', 'remote'] } }, data: { resolvedAt: new Date() } });
  });

  it('refuses rows of its own whose MAC is missing or wrong, and rows changed behind its back, once', async () => {
    const { log, lines } = memoryLogger('journal');
    const j = pgJournal(db, 'me', key, { log });
    const unsigned = await db.cleanupEntry.create({ data: { kind: 'snapshot', transporterId: 'me', target: { vmMoref: 'vm-9', snapshot: 'snapshot-1' } } });
    const other = await pgJournal(db, 'me', randomBytes(32)).add('snapshot', { vmMoref: 'vm-9', snapshot: 'snapshot-2' }, {});
    const changed = await j.add('snapshot', { vmMoref: 'vm-9', snapshot: 'snapshot-3' }, {});
    await db.cleanupEntry.update({ where: { id: changed }, data: { target: { vmMoref: 'vm-1', snapshot: 'snapshot-666' } } });
    const good = await j.add('snapshot', { vmMoref: 'vm-9', snapshot: 'snapshot-4' }, {});

    expect((await j.pending()).map((r) => r.id)).toEqual([good]);
    const rows = await db.cleanupEntry.findMany({ where: { id: { in: [unsigned.id, other, changed] } } });
    expect(rows.every((r) => r.refusedAt && r.resolvedAt === null)).toBe(true);
    expect(rows.find((r) => r.id === unsigned.id)!.refusal).toMatch(/no MAC/);
    expect(rows.find((r) => r.id === other)!.refusal).toMatch(/MAC is wrong/);
    expect(lines.filter((l) => l.includes('refused a row'))).toHaveLength(3);
    // Once: the next pass neither returns nor logs them again.
    expect((await j.pending()).map((r) => r.id)).toEqual([good]);
    expect(lines.filter((l) => l.includes('refused a row'))).toHaveLength(3);

    // An update of a row someone else changed is refused too, rather than re-signing their change.
    const victim = await j.add('snapshot', { vmMoref: 'vm-9', snapshot: null }, {});
    await db.cleanupEntry.update({ where: { id: victim }, data: { kind: 'lun_mount' } });
    await expect(j.update(victim, { vmMoref: 'vm-9', snapshot: 'snapshot-5' })).rejects.toThrow(/changed by someone else/);
    expect((await db.cleanupEntry.findUniqueOrThrow({ where: { id: victim } })).refusedAt).not.toBeNull();
    await db.cleanupEntry.updateMany({ where: { transporterId: 'me', resolvedAt: null }, data: { resolvedAt: new Date() } });
  });

  it('creates the journal key once, 0600, in the data dir', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-jkey-'));
    try {
      const [a, b] = await Promise.all([loadJournalKey(path.join(dir, 'data')), loadJournalKey(path.join(dir, 'data'))]);
      expect(a.length).toBe(32);
      expect(b.equals(a)).toBe(true);
      expect((await loadJournalKey(path.join(dir, 'data'))).equals(a)).toBe(true);
      expect((await readFile(path.join(dir, 'data', 'journal.key'))).equals(a)).toBe(true);
      const mode = execFileSync('stat', ['-c', '%a', path.join(dir, 'data', 'journal.key')], { encoding: 'utf8' }).trim();
      expect(mode).toBe('600');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe.skipIf(!isRoot)('the sweep acts only on what is its own (root: real mounts)', () => {
    let tmp: string;
    let dataDir: string;
    let outside: string;
    let byIdDir: string;
    const mounted = async (p: string) => (await readFile('/proc/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === p);
    beforeAll(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'vaultline-sweep-trust-'));
      dataDir = path.join(tmp, 'data');
      outside = path.join(tmp, 'precious');
      byIdDir = path.join(tmp, 'by-id');
      await mkdir(path.join(dataDir, 'mnt'), { recursive: true });
      await mkdir(outside);
      await mkdir(byIdDir);
      execFileSync('mount', ['-t', 'tmpfs', 'precious', outside]);
    });
    afterAll(async () => {
      if (outside && (await mounted(outside))) execFileSync('umount', [outside]);
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    const sweep = (journalKey: Buffer) => {
      const { log, lines } = memoryLogger('sweep');
      const journal = pgJournal(db, 'sweeper', journalKey, { log });
      const devices = createLocalDevices({ byIdDir, mountDir: path.join(dataDir, 'mnt'), log });
      const run = () =>
        sweepOrphans({
          journal,
          vsphere: () => Promise.reject(new Error('no vCenter in this test')),
          vcenterIds: async () => [],
          devices,
          proxyVm: async () => null,
          activeRunVmIds: () => new Set(),
          log,
        });
      return { journal, run, lines };
    };
    const row = (id: string) => db.cleanupEntry.findUniqueOrThrow({ where: { id } });

    it('a forged row (no MAC, or signed with another key) naming a real mount outside the data dir: nothing is touched, the row is refused', async () => {
      const cleanup = { kind: 'lun_mount', mountPoint: outside, device: '/dev/loop0', naa: 'naa.600', restoreRw: false };
      const forged = await db.cleanupEntry.create({ data: { kind: 'lun_mount', transporterId: 'sweeper', target: { cleanup } } });
      const id = '00000000-0000-4000-8000-000000000001';
      const createdAt = new Date();
      const wrongKey = journalMac(randomBytes(32), 'cleanup_journal', [id, 'lun_mount', 'sweeper', null, null, createdAt, { cleanup }]);
      await db.cleanupEntry.create({ data: { id, kind: 'lun_mount', transporterId: 'sweeper', target: { cleanup }, createdAt, mac: wrongKey } });

      const report = await sweep(key).run();
      expect(report.mountsUndone).toBe(0);
      expect(await mounted(outside)).toBe(true);
      for (const r of [await row(forged.id), await row(id)]) expect(r).toMatchObject({ resolvedAt: null, attempts: 0, refusedAt: expect.any(Date) });
    });

    it('a signed row whose mount point is a symlink in the mount dir leading outside: refused, nothing unmounted', async () => {
      const link = path.join(dataDir, 'mnt', 'lun-evil');
      await symlink(outside, link);
      const s = sweep(key);
      const id = await s.journal.add('lun_mount', { naa: 'naa.600', device: '/dev/loop0', cleanup: { kind: 'lun_mount', mountPoint: link, device: '/dev/loop0', naa: 'naa.600', restoreRw: false } }, {});
      const report = await s.run();
      expect(await mounted(outside)).toBe(true);
      expect(report.refused).toHaveLength(1);
      expect(await row(id)).toMatchObject({ resolvedAt: null, refusal: expect.stringMatching(/outside/) });
      // Refused once: the next sweep does not look at it again.
      expect((await s.run()).refused).toHaveLength(0);
    });

    it('a signed row naming /dev/sda or a device outside the patterns for the read-only flag: refused, nothing run', async () => {
      const s = sweep(key);
      const ids: string[] = [];
      for (const device of ['/dev/sda', '/dev/nvme0n1', '/dev/mem']) {
        const mountPoint = path.join(dataDir, 'mnt', `lun-${path.basename(device)}`);
        ids.push(await s.journal.add('lun_mount', { naa: 'naa.6000c29000000000000000000000beef', device, cleanup: { kind: 'lun_mount', mountPoint, device, naa: 'naa.6000c29000000000000000000000beef', restoreRw: true } }, {}));
      }
      const report = await s.run();
      expect(report.refused).toHaveLength(3);
      expect(report.mountsUndone).toBe(0);
      for (const id of ids) expect(await row(id)).toMatchObject({ resolvedAt: null, refusedAt: expect.any(Date) });
      expect((await row(ids[0]!)).refusal).toMatch(/is not LUN/);
      expect((await row(ids[1]!)).refusal).toMatch(/not a device Vaultline uses/);
    });

    it('a genuine row is still undone: its mount under the mount dir is unmounted and the row resolved', async () => {
      const mountPoint = path.join(dataDir, 'mnt', 'lun-good');
      await mkdir(mountPoint);
      execFileSync('mount', ['-t', 'tmpfs', 'lun', mountPoint]);
      const s = sweep(key);
      const id = await s.journal.add('lun_mount', { naa: 'naa.600', device: '/dev/loop0', cleanup: { kind: 'lun_mount', mountPoint, device: '/dev/loop0', naa: 'naa.600', restoreRw: false } }, {});
      const report = await s.run();
      expect(report).toMatchObject({ mountsUndone: 1, refused: [], failures: [] });
      expect(await mounted(mountPoint)).toBe(false);
      expect(await row(id)).toMatchObject({ resolvedAt: expect.any(Date), refusedAt: null });
      expect(await mounted(outside)).toBe(true);
    });
  });
});
