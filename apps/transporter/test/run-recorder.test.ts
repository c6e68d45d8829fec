/**
 * The run lifecycle as the Transporter records it in PostgreSQL (pgRunRecorder): log lines in order and
 * all before the finish, the run settled only by its last active item under the status rules, a run of
 * one item carrying its error, and the events in the order a browser needs them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '@vaultline/contracts';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { memoryLogger } from '@vaultline/logger';
import { pgRunRecorder } from '../src/adapters/pg-run-recorder.ts';

const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

describe('run recorder in PostgreSQL', () => {
  let database: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase(PG_SERVER, 'vaultline_recorder');
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  const newRun = async (items: number, kind: 'backup' | 'restore' = 'backup') => {
    const run = await db.jobRun.create({ data: { kind, vms: { create: Array.from({ length: items }, (_, i) => ({ vmMoref: `vm-${i}`, vmName: `vm ${i}` })) } }, include: { vms: true } });
    const events: RunEvent[] = [];
    const recorders = run.vms.map((v) => pgRunRecorder({ db, publish: (e) => events.push(e), log: memoryLogger('test').log, transporterId: 'tp-1' }, { id: v.id, runId: run.id, kind }));
    return { runId: run.id, recorders, events };
  };

  it('writes every log line in order before the finish, however fast they come', async () => {
    const { runId, recorders, events } = await newRun(1);
    const rec = recorders[0]!;
    await rec.start('preflight');
    for (let i = 0; i < 200; i++) rec.log(i % 3 === 0 ? 'warn' : 'info', `line ${i}`);
    await rec.finish('succeeded', null);
    const item = await db.runVm.findFirstOrThrow({ where: { runId } });
    expect((item.log as { message: string }[]).map((l) => l.message)).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i}`));
    expect(item).toMatchObject({ status: 'succeeded', phase: 'succeeded', transporterId: 'tp-1' });
    expect(events.map((e) => e.type)).toEqual(['vm.phase', ...Array<string>(200).fill('run.log'), 'vm.finished', 'run.finished']);
    expect(await db.jobRun.findUniqueOrThrow({ where: { id: runId } })).toMatchObject({ status: 'succeeded' });
  });

  it('a run settles only when its last item finishes: failed over cancelled over warning over succeeded', async () => {
    const { runId, recorders, events } = await newRun(3);
    for (const r of recorders) await r.start('preflight');
    expect(await db.jobRun.findUniqueOrThrow({ where: { id: runId } })).toMatchObject({ status: 'running' });
    await recorders[0]!.finish('warning', null);
    await recorders[1]!.finish('failed', 'the disk could not be read');
    const mid = await db.jobRun.findUniqueOrThrow({ where: { id: runId } });
    expect(mid.status).toBe('running');
    expect(events.some((e) => e.type === 'run.finished')).toBe(false);
    await recorders[2]!.finish('cancelled', null);
    const done = await db.jobRun.findUniqueOrThrow({ where: { id: runId } });
    expect(done.status).toBe('failed');
    expect(done.finishedAt).not.toBeNull();
    // A run of several items keeps their errors on the items.
    expect(done.error).toBeNull();
    expect(events.filter((e) => e.type === 'run.finished')).toEqual([{ type: 'run.finished', runId, status: 'failed' }]);
  });

  it("a restore run carries its item's error, a backup run's errors stay on its VMs; a retried attempt waits in phase retrying and starts clean", async () => {
    const backup = await newRun(1);
    await backup.recorders[0]!.start('preflight');
    await backup.recorders[0]!.finish('failed', 'no room in the repository');
    expect(await db.jobRun.findUniqueOrThrow({ where: { id: backup.runId } })).toMatchObject({ status: 'failed', error: null });
    const { runId, recorders } = await newRun(1, 'restore');
    const rec = recorders[0]!;
    await rec.start('preflight');
    rec.log('warn', 'attempt 1 failed: connection reset; will retry');
    await rec.retrying('connection reset');
    expect(await db.runVm.findFirstOrThrow({ where: { runId } })).toMatchObject({ status: 'running', phase: 'retrying', error: 'connection reset' });
    await rec.start('preflight');
    expect(await db.runVm.findFirstOrThrow({ where: { runId } })).toMatchObject({ status: 'running', phase: 'preflight', error: null });
    rec.log('error', 'the vCenter refused the password');
    await rec.finish('failed', 'the vCenter refused the password');
    expect(await db.jobRun.findUniqueOrThrow({ where: { id: runId } })).toMatchObject({ status: 'failed', error: 'the vCenter refused the password' });
    const item = await db.runVm.findFirstOrThrow({ where: { runId } });
    expect((item.log as { message: string }[]).map((l) => l.message)).toEqual(['attempt 1 failed: connection reset; will retry', 'the vCenter refused the password']);
  });
});
