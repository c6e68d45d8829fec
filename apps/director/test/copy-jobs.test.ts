import { MaintenanceRequestSchema } from '@vaultline/contracts';
import { memoryLogger } from '@vaultline/logger';
import { describe, expect, it } from 'vitest';
import { scheduleTick } from '../src/scheduler/scheduler.ts';
import { signedInDirector, signInAs } from './helpers.ts';

describe('backup copy jobs through the API (real Postgres/Redis)', () => {
  const ctx = signedInDirector();
  const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, cookie = ctx.cookie) =>
    ctx.d.app.fastify.inject({ method, url, headers: { cookie }, ...(payload ? { payload } : {}) });
  const newRepo = (name: string) => ctx.d.db.repository.create({ data: { name, location: `/tmp/${name}` } });

  it('an operator creates a copy job between two repositories; the same repository twice, an unknown one, a second job for the same pair and a bad cron are refused, saying why', async () => {
    const [site, offsite] = await Promise.all([newRepo('copy-site'), newRepo('copy-offsite')]);
    const body = { name: 'nightly off-site', sourceRepositoryId: site.id, targetRepositoryId: offsite.id, newest: 7, retention: { keepLast: 30 }, schedule: '0 4 * * *' };
    const created = await inject('POST', '/api/copy-jobs', body);
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name: 'nightly off-site', source: { id: site.id, name: 'copy-site' }, target: { id: offsite.id, name: 'copy-offsite' }, newest: 7, schedule: '0 4 * * *', enabled: true, copies: 0 });
    expect(created.json().retention.keepLast).toBe(30);

    const same = await inject('POST', '/api/copy-jobs', { ...body, name: 'loop', targetRepositoryId: site.id });
    expect(same.statusCode).toBe(400);
    expect(same.json().message).toContain('another repository than its source');
    const unknown = await inject('POST', '/api/copy-jobs', { ...body, name: 'nowhere', targetRepositoryId: '00000000-0000-4000-8000-000000000000' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toBe('no such target repository');
    const pair = await inject('POST', '/api/copy-jobs', { ...body, name: 'again' });
    expect(pair.statusCode).toBe(409);
    expect(pair.json().message).toBe('copy job nightly off-site already copies copy-site into copy-offsite');
    const cron = await inject('POST', '/api/copy-jobs', { ...body, name: 'bad cron', sourceRepositoryId: offsite.id, targetRepositoryId: site.id, schedule: 'nightly' });
    expect(cron.statusCode).toBe(400);
    expect(cron.json().details[0].path).toBe('schedule');
    expect((await inject('GET', '/api/copy-jobs')).json().map((j: { name: string }) => j.name)).toEqual(['nightly off-site']);
  });

  it('run now queues one copy run with the job and its target on the row; a second waits its turn; viewers may only look', async () => {
    const [a, b] = await Promise.all([newRepo('copy-a'), newRepo('copy-b')]);
    const job = (await inject('POST', '/api/copy-jobs', { name: 'a to b', sourceRepositoryId: a.id, targetRepositoryId: b.id })).json();
    const started = await inject('POST', `/api/copy-jobs/${job.id}/run`);
    expect(started.statusCode).toBe(202);
    const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: started.json().runId }, include: { vms: true } });
    expect(run).toMatchObject({ kind: 'copy', status: 'queued', trigger: 'manual', requestedBy: 'admin' });
    expect(MaintenanceRequestSchema.parse(run.request)).toEqual({ task: 'copy', repositoryId: b.id, copyJobId: job.id });
    expect(run.vms.map((v) => v.vmName)).toEqual(['a to b']);
    const again = await inject('POST', `/api/copy-jobs/${job.id}/run`);
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toContain('already running');

    const viewer = await signInAs(ctx.d, ctx.cookie, 'copyviewer', 'viewer');
    expect((await inject('GET', '/api/copy-jobs', undefined, viewer)).statusCode).toBe(200);
    expect((await inject('POST', `/api/copy-jobs/${job.id}/run`, undefined, viewer)).statusCode).toBe(403);
    expect((await inject('DELETE', `/api/copy-jobs/${job.id}`, undefined, viewer)).statusCode).toBe(403);
    expect((await inject('POST', '/api/copy-jobs', { name: 'viewer job', sourceRepositoryId: b.id, targetRepositoryId: a.id }, viewer)).statusCode).toBe(403);
    expect((await inject('DELETE', `/api/copy-jobs/${job.id}`)).statusCode).toBe(200);
    expect(await ctx.d.db.copyJob.count({ where: { id: job.id } })).toBe(0);
  });

  it('the scheduler starts each occurrence of a copy job once', async () => {
    const [a, b] = await Promise.all([newRepo('sched-a'), newRepo('sched-b')]);
    const job = await ctx.d.db.copyJob.create({ data: { name: 'scheduled copy', sourceRepositoryId: a.id, targetRepositoryId: b.id, schedule: '0 5 * * *', createdAt: new Date('2026-11-01T00:00:00Z') } });
    const tick = (now: string) => scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: memoryLogger('copy-sched').log, now: new Date(now) });
    const runs = () => ctx.d.db.jobRun.count({ where: { kind: 'copy', request: { path: ['copyJobId'], equals: job.id } } });
    await tick('2026-11-02T05:00:30Z');
    await tick('2026-11-02T05:01:00Z');
    expect(await runs()).toBe(1);
    await ctx.d.db.jobRun.updateMany({ where: { kind: 'copy', request: { path: ['copyJobId'], equals: job.id } }, data: { status: 'succeeded' } });
    await tick('2026-11-03T05:00:10Z');
    expect(await runs()).toBe(2);
  });
});
