/**
 * The reconciler puts PostgreSQL's runs and the BullMQ queue back in step (real PostgreSQL, Redis and
 * BullMQ workers): items written but never queued are queued, items the queue gave up on and items of
 * a silent Transporter are failed with the reason, and their runs get a final status.
 */
import { memoryLogger } from '@vaultline/logger';
import { PermanentError, TransporterRegistry, WorkConsumer, type WorkQueue } from '@vaultline/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileTick } from '../src/scheduler/reconciler.ts';
import { startJobRun, startItemRun } from '../src/services/runs.ts';
import { REDIS_URL, startTestDirector, until, type TestDirector } from './helpers.ts';

const MIN = 60_000;

describe('run reconciliation (real PostgreSQL, Redis and BullMQ)', () => {
  let d: TestDirector;
  let jobId = '';
  let repositoryId = '';
  const { log, lines } = memoryLogger('reconciler-test');
  const consumers: WorkConsumer[] = [];
  const tick = (now: Date) => reconcileTick({ db: d.db, queue: d.queue, registry: d.registry, log, now });

  beforeAll(async () => {
    d = await startTestDirector();
    const vc = await d.db.vCenter.create({ data: { name: 'vc', url: 'https://vc.invalid/sdk', username: 'u', passwordSealed: 'x' } });
    repositoryId = (await d.db.repository.create({ data: { name: 'r', location: '/srv/r' } })).id;
    jobId = (
      await d.db.backupJob.create({
        data: { name: 'nightly', vcenterId: vc.id, repositoryId, sources: [{ moref: 'vm-1', name: 'app-01' }, { moref: 'vm-2', name: 'db-01' }] },
      })
    ).id;
  });
  afterAll(async () => {
    await Promise.all(consumers.map((c) => c.close()));
    await d?.close();
  });

  it('a run whose Director stopped between writing its rows and queueing them is queued by the next tick after the limit, once, and runs', async () => {
    // The Director dies right after the insert: its enqueue never happens.
    const killed = { enqueueBackupVm: () => Promise.reject(new Error('the Director was killed here')) } as unknown as WorkQueue;
    await expect(startJobRun(d.db, killed, jobId, 'manual', 'admin')).rejects.toThrow('killed here');
    const run = await d.db.jobRun.findFirstOrThrow({ where: { jobId }, include: { vms: true } });
    expect(run.status).toBe('queued');
    expect(run.vms.map((v) => v.status)).toEqual(['queued', 'queued']);
    for (const v of run.vms) expect(await d.queue.state(v.id)).toBeNull();
    // The stuck run blocks every later run of its job.
    await expect(startJobRun(d.db, d.queue, jobId, 'manual', 'admin')).rejects.toThrow(/already running/);

    // Too young to touch: a Director may still be between the two steps.
    expect(await tick(new Date())).toEqual({ requeued: [], silent: [], failed: [], settled: [] });
    const later = new Date(Date.now() + 3 * MIN);
    expect((await tick(later)).requeued.sort()).toEqual(run.vms.map((v) => v.id).sort());
    expect(lines.filter((l) => l.includes('recorded but never queued'))).toHaveLength(2);
    for (const v of run.vms) expect(['waiting', 'prioritized']).toContain(await d.queue.state(v.id));
    // The queue holds them now: a second tick queues nothing twice.
    expect((await tick(later)).requeued).toEqual([]);

    // A Transporter's worker takes both (the handler stands in for the backup: it records the item done).
    const seen: string[] = [];
    consumers.push(
      new WorkConsumer(
        async (payload) => {
          seen.push(payload.runVmId);
          await d.db.runVm.update({ where: { id: payload.runVmId }, data: { status: 'succeeded', phase: 'succeeded', finishedAt: new Date() } });
        },
        { redisUrl: REDIS_URL, namespace: d.database.name, concurrency: 1 },
      ),
    );
    await until('both items to be worked', 20_000, async () => seen.length === 2);
    expect(seen.sort()).toEqual(run.vms.map((v) => v.id).sort());
    await until('the queue to record both as completed', 20_000, async () => (await Promise.all(run.vms.map((v) => d.queue.state(v.id)))).every((s) => s === 'completed'));
    expect(await tick(later)).toEqual({ requeued: [], silent: [], failed: [], settled: [] });
    await consumers.pop()!.close();
  });

  it('an item the queue gave up on while PostgreSQL still says queued is failed with the reason, and its run ends', async () => {
    const run = await startItemRun(d.db, (p) => d.queue.enqueueMaintenance(p), { kind: 'verify', trigger: 'manual', requestedBy: 'admin', request: { task: 'verify', repositoryId }, item: { name: 'r' } });
    const item = run.vms[0]!;
    const worker = new WorkConsumer({ backup: async () => undefined, maintenance: async () => Promise.reject(new PermanentError('cannot even start')) }, { redisUrl: REDIS_URL, namespace: d.database.name, concurrency: 1 });
    await until('the queue to give up', 20_000, async () => (await d.queue.state(item.id)) === 'failed');
    await worker.close();
    const report = await tick(new Date(Date.now() + 3 * MIN));
    expect(report.failed).toEqual([{ runVmId: item.id, reason: 'the work queue gave up on this item without a Transporter recording a result' }]);
    expect(report.settled).toEqual([run.id]);
    const after = await d.db.jobRun.findUniqueOrThrow({ where: { id: run.id }, include: { vms: true } });
    expect(after).toMatchObject({ status: 'failed', error: 'the work queue gave up on this item without a Transporter recording a result' });
    expect(after.finishedAt).not.toBeNull();
    expect(after.vms[0]).toMatchObject({ status: 'failed', phase: 'failed' });
  });

  it('items running on a Transporter silent past the limit are failed saying which and since when; a live one is left alone', async () => {
    const now = Date.now();
    const info = (id: string, name: string) => ({ id, name, host: 'h', version: 't', pid: 1, startedAt: new Date(now).toISOString(), capabilities: { transports: ['nbd' as const], maxDiskTasks: 1 } });
    await d.registry.heartbeat(info('t-live', 'live'));
    const past = new TransporterRegistry(d.redis, 1_000, { namespace: d.database.name, now: () => new Date(now - 12 * MIN) });
    await past.heartbeat(info('t-dead', 'silent'));

    const startRun = async (transporters: string[]) => {
      const run = await d.db.jobRun.create({
        data: { jobId, status: 'running', vms: { create: transporters.map((t, i) => ({ vmMoref: `vm-${i}`, vmName: `vm-${i}`, status: 'running' as const, phase: 'copying', transporterId: t })) } },
        include: { vms: { orderBy: { vmMoref: 'asc' } } },
      });
      return run;
    };
    const mixed = await startRun(['t-live', 't-dead']);
    const lone = await startRun(['t-gone']);

    const report = await tick(new Date(now));
    const byItem = new Map(report.failed.map((f) => [f.runVmId, f.reason]));
    expect(byItem.has(mixed.vms[0]!.id)).toBe(false);
    expect(byItem.get(mixed.vms[1]!.id)).toBe(`Transporter silent has not been heard from since ${new Date(now - 12 * MIN).toISOString()} while this item was at copying; what it left in vSphere is cleaned up by its orphan sweep when it starts, or by another Transporter's once it has been silent 10 minutes`);
    expect(byItem.get(lone.vms[0]!.id)).toMatch(/^the Transporter that took it \(t-gone\) has not been heard from at all while this item was at copying/);
    // The mixed run still has an item running: it ends when that one does. The lone run ends now.
    expect(report.settled).toEqual([lone.id]);
    expect((await d.db.jobRun.findUniqueOrThrow({ where: { id: mixed.id } })).status).toBe('running');
    expect((await d.db.runVm.findUniqueOrThrow({ where: { id: mixed.vms[0]!.id } })).status).toBe('running');
    expect(await d.db.jobRun.findUniqueOrThrow({ where: { id: lone.id } })).toMatchObject({ status: 'failed' });
    // Nothing more to do on the next tick.
    expect(await tick(new Date(now))).toEqual({ requeued: [], silent: [], failed: [], settled: [] });
  });

  it('an item whose Transporter fell silent says so in its log and live at once, once, and stays running for a takeover', async () => {
    const now = Date.now();
    const lastBeat = new Date(now - 2 * MIN);
    const quiet = new TransporterRegistry(d.redis, 1_000, { namespace: d.database.name, now: () => lastBeat });
    await quiet.heartbeat({ id: 't-quiet', name: 'local', host: 'h', version: 't', pid: 1, startedAt: lastBeat.toISOString(), capabilities: { transports: ['nbd'], maxDiskTasks: 1 } });
    const run = await d.db.jobRun.create({
      data: { jobId, status: 'running', vms: { create: [{ vmMoref: 'vm-q', vmName: 'quiet-vm', status: 'running', phase: 'copying', transporterId: 't-quiet' }] } },
      include: { vms: true },
    });
    const item = run.vms[0]!;
    const events: unknown[] = [];
    const publishing = (at: Date) => reconcileTick({ db: d.db, queue: d.queue, registry: d.registry, log, now: at, publish: (e) => events.push(e) });

    // Silent for 20 s: not yet.
    expect((await reconcileTick({ db: d.db, queue: d.queue, registry: d.registry, log, now: new Date(lastBeat.getTime() + 20_000), publish: (e) => events.push(e) })).silent).toEqual([]);
    const report = await publishing(new Date(now));
    expect(report).toMatchObject({ silent: [item.id], failed: [] });
    const message = `Transporter local stopped responding at ${lastBeat.toISOString()} (its last heartbeat) while this item was at copying; the work will be taken over when a Transporter picks it up again (the item fails if none has within 5 minutes)`;
    expect(events).toEqual([{ type: 'run.log', runId: run.id, runVmId: item.id, level: 'warn', message }]);
    const row = await d.db.runVm.findUniqueOrThrow({ where: { id: item.id } });
    expect(row).toMatchObject({ status: 'running', transporterLostAt: lastBeat });
    expect(row.log).toEqual([{ at: new Date(now).toISOString(), level: 'warn', message }]);
    // Once: the next ticks add nothing while the silence lasts.
    expect((await publishing(new Date(now + 20_000))).silent).toEqual([]);
    expect(events).toHaveLength(1);
    expect((await d.db.runVm.findUniqueOrThrow({ where: { id: item.id } })).log).toHaveLength(1);
    // Past the limit it is failed as before.
    expect((await publishing(new Date(lastBeat.getTime() + 6 * MIN))).failed.map((f) => f.runVmId)).toEqual([item.id]);
  });
});
