import { describe, expect, it } from 'vitest';
import { memoryLogger } from '@vaultline/logger';
import { scheduleTick } from '../src/scheduler/scheduler.ts';
import { previousOccurrence } from '../src/services/schedules.ts';
import { signedInDirector } from './helpers.ts';

const quiet = memoryLogger('scheduler').log;

describe('cron occurrences', () => {
  it('finds the latest occurrence at or before now', () => {
    expect(previousOccurrence('0 2 * * *', new Date('2026-11-25T02:00:00Z'))?.toISOString()).toBe('2026-11-25T02:00:00.000Z');
    expect(previousOccurrence('0 2 * * *', new Date('2026-11-25T01:59:59Z'))?.toISOString()).toBe('2026-11-24T02:00:00.000Z');
    expect(previousOccurrence('not cron', new Date())).toBeNull();
  });
});

describe('the scheduler (real Postgres/Redis)', () => {
  const ctx = signedInDirector();

  it('refuses a job whose schedule is not a cron expression, naming the field', async () => {
    const vc = await ctx.d.db.vCenter.create({ data: { name: 'vc', url: 'https://vc/sdk', username: 'u', passwordSealed: 'x' } });
    const repo = await ctx.d.db.repository.create({ data: { name: 'r', location: '/tmp/r' } });
    const res = await ctx.d.app.fastify.inject({
      method: 'POST',
      url: '/api/jobs',
      headers: { cookie: ctx.cookie },
      payload: { name: 'bad-cron', vcenterId: vc.id, repositoryId: repo.id, sources: [{ moref: 'vm-1', name: 'a' }], schedule: 'every night' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().details[0].path).toBe('schedule');
  });

  it('starts each occurrence once, even with two Directors ticking at the same moment', async () => {
    const vc = await ctx.d.db.vCenter.findFirstOrThrow();
    const repo = await ctx.d.db.repository.findFirstOrThrow();
    const job = await ctx.d.db.backupJob.create({
      data: { name: 'nightly', vcenterId: vc.id, repositoryId: repo.id, sources: [{ moref: 'vm-1', name: 'a' }], schedule: '0 2 * * *', createdAt: new Date('2026-11-20T00:00:00Z') },
    });
    const at = new Date('2026-11-25T02:00:30Z');
    const [a, b] = await Promise.all([scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at }), scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: at })]);
    expect(a.length + b.length).toBe(1);
    const runs = await ctx.d.db.jobRun.findMany({ where: { jobId: job.id } });
    expect(runs).toHaveLength(1);
    expect(runs[0]!.trigger).toBe('schedule');
    // Same occurrence again later in the day: nothing new.
    expect(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: new Date('2026-11-25T13:00:00Z') })).toEqual([]);
    // The next night: one more, but not while the previous run is still going.
    expect(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: new Date('2026-11-26T02:00:10Z') })).toEqual([]);
    await ctx.d.db.jobRun.updateMany({ where: { jobId: job.id }, data: { status: 'succeeded' } });
    expect(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: new Date('2026-11-27T02:00:10Z') })).toHaveLength(1);
  });
});
