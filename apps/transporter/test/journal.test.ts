import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMigrations, createDb, createTestDatabase, MIGRATIONS_DIR, type Db, type TestDatabase } from '@vaultline/db';
import { pgJournal } from '../src/adapters/pg-journal.ts';

const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

describe('cleanup journal in Postgres', () => {
  let database: TestDatabase;
  let db: Db;
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
    const j = pgJournal(db, 'me');
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
      ],
    });
    const dead = pgJournal(db, 'dead');
    const alive = pgJournal(db, 'alive');
    const snap = await dead.add('snapshot', { vmMoref: 'vm-2', snapshot: 'snapshot-3' }, {});
    const attach = await dead.add('disk_attach', { proxyVm: 'vm-7', fileName: '[ds] a/a.vmdk' }, {});
    await dead.add('lun_mount', { device: '/dev/loop9' }, {});
    await alive.add('snapshot', { vmMoref: 'vm-3', snapshot: 'snapshot-4' }, {});
    const mine = pgJournal(db, 'me');
    expect((await mine.pending()).map((r) => r.id).sort()).toEqual([snap, attach].sort());
  });
});
