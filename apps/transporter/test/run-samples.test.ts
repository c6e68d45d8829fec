/**
 * Throughput samples (run_disk_samples) as the Transporter stores them from progress ticks: at most one
 * per interval per disk (and every phase change), none for a tick that moved nothing, bounded per disk by
 * thinning; and what the Director's run page reads back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskProgress } from '@vaultline/contracts';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { runDiskRows } from '../src/adapters/run-disk-rows.ts';
import { diskSamples } from '../src/adapters/run-disk-samples.ts';

const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

describe('run disk samples in PostgreSQL', () => {
  let database: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase(PG_SERVER, 'vaultline_samples');
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  const newItem = async () => {
    const run = await db.jobRun.create({ data: { kind: 'backup', vms: { create: [{ vmMoref: 'vm-1', vmName: 'vm 1' }] } }, include: { vms: true } });
    return { runId: run.id, runVmId: run.vms[0]!.id };
  };
  const tick = (ids: { runId: string; runVmId: string }, deviceKey: number, bytesRead: number, phase = 'reading'): DiskProgress => ({
    ...ids,
    deviceKey,
    bytesTotal: 1 << 30,
    phase,
    transport: 'nbd',
    bytesRead,
    bytesWritten: Math.floor(bytesRead / 2),
    bytesSkipped: 0,
    bytesVerified: 0,
    verifyTotal: 0,
    bytesPerSecond: 0,
    peakBytesPerSecond: 0,
    etaSeconds: null,
    bottleneck: { source: 0.5, processing: 0.2, target: 0.3 },
  });
  const samplesOf = (runVmId: string, deviceKey: number) =>
    db.runDiskSample.findMany({ where: { runDisk: { runVmId, deviceKey } }, orderBy: { at: 'asc' } }).then((rows) => rows.map((r) => ({ at: r.at.getTime(), read: Number(r.bytesRead), written: Number(r.bytesWritten) })));

  it('stores a tick per interval per disk, every phase change, and nothing for a tick that moved nothing', async () => {
    const ids = await newItem();
    const rows = runDiskRows(db, ids.runVmId, () => undefined, { everyMs: 50, max: 1000 });
    await rows.diskPhase(2000, { phase: 'reading', label: 'Hard disk 1', capacityBytes: 1 << 30 });
    await rows.diskPhase(2001, { phase: 'reading', label: 'Hard disk 2', capacityBytes: 1 << 30 });
    for (let i = 0; i < 12; i++) {
      rows.progress.disk(tick(ids, 2000, i * 1000));
      rows.progress.disk(tick(ids, 2000, i * 1000 + 1)); // within the interval: skipped
      rows.progress.disk(tick(ids, 2001, 0)); // moved nothing since its first tick: skipped
      await new Promise((r) => setTimeout(r, 60));
    }
    rows.progress.disk(tick(ids, 2000, 11_001, 'done')); // a new phase: stored at once
    await rows.diskPhase(2000, { phase: 'done', finishedAt: new Date() });
    const first = await samplesOf(ids.runVmId, 2000);
    expect(first.map((s) => s.read)).toEqual([...Array.from({ length: 12 }, (_, i) => i * 1000), 11_001]);
    expect(first.map((s) => s.written)).toEqual(first.map((s) => Math.floor(s.read / 2)));
    expect(first.every((s, i) => i === 0 || s.at >= first[i - 1]!.at)).toBe(true);
    expect(await samplesOf(ids.runVmId, 2001)).toHaveLength(1);
  });

  it('keeps at most `max` samples of a disk: every other one goes and the interval doubles, first and shape kept', async () => {
    const ids = await newItem();
    await runDiskRows(db, ids.runVmId, () => undefined).diskPhase(2000, { phase: 'reading', label: 'Hard disk 1', capacityBytes: 1 << 30 });
    const row = await db.runDisk.findUniqueOrThrow({ where: { runVmId_deviceKey: { runVmId: ids.runVmId, deviceKey: 2000 } } });
    const samples = diskSamples(db, { everyMs: 10, max: 8 });
    let now = Date.parse('2026-12-06T12:00:00Z');
    const stored: number[] = [];
    for (let i = 1; i <= 40; i++) {
      now += 10;
      const p = tick(ids, 2000, i * 100);
      if (samples.due(p, now)) {
        stored.push(i);
        await samples.write(row.id, p, new Date(now));
      }
    }
    const left = await samplesOf(ids.runVmId, 2000);
    expect(left.length).toBeLessThan(8);
    expect(left[0]!.read).toBe(100);
    // After thinning, ticks come at twice the interval, then four times, …
    expect(stored.length).toBeLessThan(40);
    expect(left.map((s) => s.read)).toEqual([...left.map((s) => s.read)].sort((a, b) => a - b));
    expect(left.at(-1)!.read).toBe(stored.at(-1)! * 100);
  });
});
