/** The Transporter's load samples (transporter_samples) as its heartbeat records them: at most one per interval, thinned by age. */
import path from 'node:path';
import { applyMigrations, createDb, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadSampler } from '../src/heartbeat.ts';

const PG = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

describe('load samples (real Postgres)', () => {
  let database: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase(PG);
    await applyMigrations(database.url, path.resolve(import.meta.dirname, '../../../prisma/migrations'));
    db = createDb(database.url);
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  it('records nothing for a Transporter the Director has not listed, then at most one a minute, with its running disks, and drops those older than a week', async () => {
    const t0 = Date.parse('2026-12-06T12:00:00Z');
    const none = new LoadSampler(db, 'not-listed');
    expect(await none.maybeRecord(t0)).toBe(true);
    expect(await db.transporterSample.count()).toBe(0);

    await db.transporter.create({ data: { id: 'tp-1', name: 'tp-1', host: 'h', version: '1' } });
    const run = await db.jobRun.create({ data: { kind: 'backup', status: 'running', vms: { create: [{ vmMoref: 'vm-1', vmName: 'a', status: 'running', transporterId: 'tp-1' }] } }, include: { vms: true } });
    await db.runDisk.createMany({
      data: [
        { runVmId: run.vms[0]!.id, deviceKey: 2000, label: 'Hard disk 1', capacityBytes: 1n, phase: 'reading' },
        { runVmId: run.vms[0]!.id, deviceKey: 2001, label: 'Hard disk 2', capacityBytes: 1n, phase: 'opening' },
        { runVmId: run.vms[0]!.id, deviceKey: 2002, label: 'Hard disk 3', capacityBytes: 1n, phase: 'done', finishedAt: new Date() },
        // A restore's disk is a disk task too while it is written and read back.
        { runVmId: run.vms[0]!.id, deviceKey: 2003, label: 'Hard disk 4', capacityBytes: 1n, phase: 'verifying' },
      ],
    });
    await db.transporterSample.create({ data: { transporterId: 'tp-1', at: new Date(t0 - 8 * 86_400_000), activeDisks: 0, cpuPercent: 0, load1: 0, rssBytes: 0n } });
    const s = new LoadSampler(db, 'tp-1');
    expect(await s.maybeRecord(t0)).toBe(true);
    expect(await s.maybeRecord(t0 + 30_000)).toBe(false);
    expect(await s.maybeRecord(t0 + 61_000)).toBe(true);
    const rows = await db.transporterSample.findMany({ where: { transporterId: 'tp-1' }, orderBy: { at: 'asc' } });
    expect(rows.map((r) => r.at.getTime())).toEqual([t0, t0 + 61_000]);
    expect(rows.map((r) => r.activeDisks)).toEqual([3, 3]);
    for (const r of rows) {
      expect(r.rssBytes).toBeGreaterThan(0n);
      expect(r.cpuPercent).toBeGreaterThanOrEqual(0);
      expect(r.load1).toBeGreaterThanOrEqual(0);
    }
  });
});
