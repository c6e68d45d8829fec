import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryLogger } from '@vaultline/logger';
import { WorkConsumer } from '@vaultline/queue';
import { clockTime, insideWindow, notStartedInWindow, windowSkipReason } from '../src/scheduler/backup-window.ts';
import { backupWindowTick, scheduleTick } from '../src/scheduler/scheduler.ts';
import { applianceTimeZone, nextOccurrences, previousOccurrence } from '../src/services/schedules.ts';
import { REDIS_URL, signedInDirector, until } from './helpers.ts';

const quiet = memoryLogger('backup-window').log;
const NIGHT = { start: '20:00', end: '06:00' };
const at = (iso: string) => new Date(iso);

describe('backup windows (pure)', () => {
  it('a window spanning midnight holds the night, from its start up to (not including) its end', () => {
    expect(insideWindow(NIGHT, at('2026-11-23T20:00:00Z'), 'UTC')).toBe(true);
    expect(insideWindow(NIGHT, at('2026-11-23T23:59:59Z'), 'UTC')).toBe(true);
    expect(insideWindow(NIGHT, at('2026-11-24T00:00:00Z'), 'UTC')).toBe(true);
    expect(insideWindow(NIGHT, at('2026-11-24T05:59:59Z'), 'UTC')).toBe(true);
    expect(insideWindow(NIGHT, at('2026-11-24T06:00:00Z'), 'UTC')).toBe(false);
    expect(insideWindow(NIGHT, at('2026-11-24T12:00:00Z'), 'UTC')).toBe(false);
    expect(insideWindow(NIGHT, at('2026-11-24T19:59:59Z'), 'UTC')).toBe(false);
  });

  it('a window within one day holds only its hours', () => {
    const day = { start: '09:30', end: '17:00' };
    expect(insideWindow(day, at('2026-11-24T09:29:59Z'), 'UTC')).toBe(false);
    expect(insideWindow(day, at('2026-11-24T09:30:00Z'), 'UTC')).toBe(true);
    expect(insideWindow(day, at('2026-11-24T16:59:00Z'), 'UTC')).toBe(true);
    expect(insideWindow(day, at('2026-11-24T17:00:00Z'), 'UTC')).toBe(false);
    expect(insideWindow(day, at('2026-11-24T23:00:00Z'), 'UTC')).toBe(false);
  });

  it('reads the wall clock of the appliance time zone, summer and winter time alike', () => {
    // 18:30 UTC is 20:30 in Berlin in July (CEST) and 19:30 in January (CET).
    expect(insideWindow(NIGHT, at('2026-07-01T18:30:00Z'), 'Europe/Berlin')).toBe(true);
    expect(insideWindow(NIGHT, at('2026-01-15T18:30:00Z'), 'Europe/Berlin')).toBe(false);
    expect(insideWindow(NIGHT, at('2026-07-01T04:30:00Z'), 'Europe/Berlin')).toBe(false);
    expect(insideWindow(NIGHT, at('2026-01-15T04:30:00Z'), 'Europe/Berlin')).toBe(true);
    // 02:00 UTC is 21:00 the evening before in New York (EST).
    expect(insideWindow(NIGHT, at('2026-01-15T02:00:00Z'), 'America/New_York')).toBe(true);
    expect(clockTime(at('2026-01-15T02:00:00Z'), 'America/New_York')).toBe('21:00');
    expect(clockTime(at('2026-07-01T23:05:00Z'), 'Asia/Kolkata')).toBe('04:35');
  });

  it('says why a scheduled run is not started: due outside the window, or due inside but only startable after it closed', () => {
    expect(windowSkipReason(NIGHT, at('2026-11-24T21:30:00Z'), at('2026-11-24T21:30:15Z'), 'UTC')).toBeNull();
    expect(windowSkipReason(NIGHT, at('2026-11-24T12:00:00Z'), at('2026-11-24T12:00:15Z'), 'UTC')).toBe('skipped: outside the backup window 20:00–06:00');
    expect(windowSkipReason(NIGHT, at('2026-11-24T05:59:00Z'), at('2026-11-24T06:00:10Z'), 'UTC')).toBe('skipped: outside the backup window 20:00–06:00 (it was due at 05:59, but could only start at 06:00)');
    expect(notStartedInWindow(NIGHT)).toBe('not started within the backup window 20:00–06:00; the next run backs it up');
  });
});

describe("cron's last day of the month (the wizard's monthly choice)", () => {
  it('the Director reads L as the last day of each month, leap years included, both ways', () => {
    expect(nextOccurrences('30 21 L * *', 3, at('2028-01-15T00:00:00Z')).map((d) => d.getDate())).toEqual([31, 29, 31]);
    expect(previousOccurrence('30 21 L * *', at('2027-03-15T00:00:00Z'))?.getDate()).toBe(28);
  });
});

describe('backup windows in the scheduler (real Postgres/Redis)', () => {
  // The occurrences below are read as UTC, as in scheduler.test.ts: the appliance (and this test) run in UTC here.
  const ctx = signedInDirector();
  const consumers: WorkConsumer[] = [];
  beforeAll(() => {
    const utc = [at('2026-01-15T12:00:00Z'), at('2026-07-01T12:00:00Z')].every((d) => d.getHours() === 12);
    if (!utc) throw new Error(`these tests read cron occurrences as UTC, but the appliance time zone here is ${applianceTimeZone()}`);
  });
  afterAll(async () => {
    for (const c of consumers) await c.close();
  });

  const makeJob = async (name: string, schedule: string, vms = 1) => {
    const vc = (await ctx.d.db.vCenter.findFirst()) ?? (await ctx.d.db.vCenter.create({ data: { name: 'vc', url: 'https://vc/sdk', username: 'u', passwordSealed: 'x' } }));
    const repo = (await ctx.d.db.repository.findFirst()) ?? (await ctx.d.db.repository.create({ data: { name: 'r', location: '/tmp/r' } }));
    return ctx.d.db.backupJob.create({
      data: {
        name,
        vcenterId: vc.id,
        repositoryId: repo.id,
        sources: Array.from({ length: vms }, (_, i) => ({ moref: `vm-${i + 1}`, name: `${name}-vm${i + 1}` })),
        schedule,
        options: { window: NIGHT },
        createdAt: at('2026-11-20T00:00:00Z'),
      },
    });
  };

  it('a scheduled run due outside the window is not started; its run says why, on the API too', async () => {
    const job = await makeJob('noon', '0 12 * * *');
    expect(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-24T12:00:20Z') })).toEqual([]);
    const runs = await ctx.d.db.jobRun.findMany({ where: { jobId: job.id }, include: { vms: true } });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'cancelled', trigger: 'schedule', error: 'skipped: outside the backup window 20:00–06:00', startedAt: null, vms: [] });
    expect(runs[0]!.finishedAt).toEqual(at('2026-11-24T12:00:20Z'));
    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/runs/${runs[0]!.id}`, headers: { cookie: ctx.cookie } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'cancelled', error: 'skipped: outside the backup window 20:00–06:00' });
    // The occurrence is claimed: the next tick does not record it again.
    expect(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-24T12:00:40Z') })).toEqual([]);
    expect(await ctx.d.db.jobRun.count({ where: { jobId: job.id } })).toBe(1);
  });

  it('a scheduled run due inside the window starts; one due inside but reached only after the window closed is skipped, saying so', async () => {
    const job = await makeJob('mon-wed-fri', '30 21 * * 1,3,5');
    // Monday 2026-11-23, 21:30.
    expect(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-23T21:30:15Z') })).toHaveLength(1);
    await ctx.d.db.jobRun.updateMany({ where: { jobId: job.id }, data: { status: 'succeeded', finishedAt: at('2026-11-23T23:00:00Z') } });
    const late = await makeJob('just-before-six', '59 5 * * *');
    expect(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-24T06:00:10Z') })).toEqual([]);
    expect(await ctx.d.db.jobRun.findFirst({ where: { jobId: late.id } })).toMatchObject({
      status: 'cancelled',
      error: 'skipped: outside the backup window 20:00–06:00 (it was due at 05:59, but could only start at 06:00)',
    });
  });

  it('when the window closes, VMs not started yet end cancelled and leave the queue; VMs being copied, or just taken by a Transporter, go on', async () => {
    await makeJob('three-vms', '0 22 * * *', 3);
    const [runId] = await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-24T22:00:05Z') });
    const items = await ctx.d.db.runVm.findMany({ where: { runId: runId! }, orderBy: { vmName: 'asc' } });
    expect(items).toHaveLength(3);

    // A Transporter takes one item off the queue and holds it (not yet recorded as started in PostgreSQL).
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let taken: string | null = null;
    const ours = new Set(items.map((i) => i.id));
    consumers.push(
      new WorkConsumer(
        async ({ runVmId }) => {
          if (!ours.has(runVmId) || taken) return;
          taken = runVmId;
          await held;
        },
        { redisUrl: REDIS_URL, namespace: ctx.d.database.name, concurrency: 1 },
      ),
    );
    const takenId = await until('a Transporter to take an item', 20_000, async () => taken);
    expect(await ctx.d.queue.state(takenId)).toBe('active');
    // Another is being copied.
    const [copying, waiting] = items.filter((i) => i.id !== takenId);
    await ctx.d.db.runVm.update({ where: { id: copying!.id }, data: { status: 'running', startedAt: at('2026-11-24T22:00:10Z'), phase: 'copy' } });
    await ctx.d.db.jobRun.update({ where: { id: runId! }, data: { status: 'running', startedAt: at('2026-11-24T22:00:10Z') } });

    const published: unknown[] = [];
    const tick = (now: string) => backupWindowTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at(now), publish: (e) => published.push(e) });
    // Still inside the window: nothing ends.
    expect(await tick('2026-11-25T05:59:30Z')).toEqual([]);
    // Closed.
    expect(await tick('2026-11-25T06:00:10Z')).toEqual([waiting!.id]);
    const after = new Map((await ctx.d.db.runVm.findMany({ where: { runId: runId! } })).map((i) => [i.id, i]));
    expect(after.get(waiting!.id)).toMatchObject({ status: 'cancelled', phase: 'cancelled', error: 'not started within the backup window 20:00–06:00; the next run backs it up' });
    expect(await ctx.d.queue.state(waiting!.id)).toBeNull();
    expect(after.get(copying!.id)).toMatchObject({ status: 'running', error: null });
    expect(after.get(takenId)).toMatchObject({ status: 'queued', error: null });
    expect(await ctx.d.queue.state(takenId)).toBe('active');
    expect(published).toEqual([{ type: 'vm.finished', runId, runVmId: waiting!.id, status: 'cancelled', error: 'not started within the backup window 20:00–06:00; the next run backs it up' }]);
    // The run goes on with the other two.
    expect(await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: runId! } })).toMatchObject({ status: 'running', finishedAt: null });
    // A later tick finds nothing more to end.
    expect(await tick('2026-11-25T06:00:30Z')).toEqual([]);
    release();
    await until('the held item to leave the queue', 20_000, async () => (await ctx.d.queue.state(takenId)) === 'completed');
    await ctx.d.db.jobRun.update({ where: { id: runId! }, data: { status: 'warning', finishedAt: at('2026-11-25T06:30:00Z') } });
  });

  it('a scheduled run none of whose VMs started ends cancelled as a whole, with the reason', async () => {
    const job = await makeJob('two-vms', '15 5 * * *', 2);
    const [runId] = await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-25T05:15:05Z') });
    expect(runId).toBeDefined();
    const published: unknown[] = [];
    expect(await backupWindowTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-25T06:01:00Z'), publish: (e) => published.push(e) })).toHaveLength(2);
    expect(await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: runId! } })).toMatchObject({
      jobId: job.id,
      status: 'cancelled',
      finishedAt: at('2026-11-25T06:01:00Z'),
      error: 'not started within the backup window 20:00–06:00; the next run backs it up',
    });
    expect(published.at(-1)).toEqual({ type: 'run.finished', runId, status: 'cancelled' });
    // Cancelled, not failed: the run is not retried; the next scheduled run backs the VMs up.
    for (const item of await ctx.d.db.runVm.findMany({ where: { runId: runId! } })) expect(await ctx.d.queue.state(item.id)).toBeNull();
  });

  it('an automatic retry is held to the window like a schedule; a retry an operator started is not', async () => {
    const job = await makeJob('retried', '0 4 * * *');
    const run = (trigger: string) => ctx.d.db.jobRun.create({ data: { jobId: job.id, kind: 'backup', trigger, vms: { create: [{ vmMoref: 'vm-1', vmName: `retried-${trigger}` }] } }, include: { vms: true } });
    const [auto, byHand] = [await run('auto-retry'), await run('retry')];
    for (const r of [auto, byHand]) await ctx.d.queue.enqueueBackupVm({ runVmId: r.vms[0]!.id });
    expect(await backupWindowTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at('2026-11-25T07:00:00Z') })).toEqual([auto.vms[0]!.id]);
    expect(await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: auto.id } })).toMatchObject({ status: 'cancelled' });
    expect(await ctx.d.db.runVm.findUniqueOrThrow({ where: { id: byHand.vms[0]!.id } })).toMatchObject({ status: 'queued', error: null });
    await ctx.d.db.jobRun.update({ where: { id: byHand.id }, data: { status: 'failed', finishedAt: at('2026-11-25T07:00:00Z') } });
  });

  it('Run now is not restricted: it starts outside the window and its VMs are not ended when the window is closed', async () => {
    // A window that is closed right now, whatever the time: it opens in two hours and closes an hour later.
    const now = new Date();
    const zone = applianceTimeZone();
    const window = { start: clockTime(new Date(now.getTime() + 2 * 3600_000), zone), end: clockTime(new Date(now.getTime() + 3 * 3600_000), zone) };
    const job = await makeJob('by-hand', '0 3 * * *');
    await ctx.d.db.backupJob.update({ where: { id: job.id }, data: { options: { window } } });
    expect(insideWindow(window, now, zone)).toBe(false);
    const res = await ctx.d.app.fastify.inject({ method: 'POST', url: `/api/jobs/${job.id}/run`, headers: { cookie: ctx.cookie } });
    expect(res.statusCode).toBe(202);
    const run = res.json<{ id: string; status: string; trigger: string; vms: { id: string; status: string }[] }>();
    expect(run).toMatchObject({ status: 'queued', trigger: 'manual' });
    expect(await backupWindowTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now })).toEqual([]);
    expect((await ctx.d.db.runVm.findMany({ where: { runId: run.id } })).map((i) => i.status)).toEqual(['queued']);
    expect(await ctx.d.queue.state(run.vms[0]!.id)).not.toBeNull();
  });
});
