import { MaintenanceRequestSchema } from '@vaultline/contracts';
import { memoryLogger } from '@vaultline/logger';
import { describe, expect, it } from 'vitest';
import { scheduleTick } from '../src/scheduler/scheduler.ts';
import { signedInDirector, signInAs } from './helpers.ts';

describe('repository maintenance through the API (real Postgres/Redis)', () => {
  const ctx = signedInDirector();
  const inject = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object, cookie = ctx.cookie) =>
    ctx.d.app.fastify.inject({ method, url, headers: { cookie }, ...(payload ? { payload } : {}) });
  const newRepo = (name: string, data: object = {}) => ctx.d.db.repository.create({ data: { name, location: `/tmp/${name}`, ...data } });

  it('new repositories collect garbage nightly and verify a 10% sample weekly; an admin changes that, a bad cron is refused naming the field', async () => {
    const repo = await newRepo('settings');
    const got = await inject('GET', `/api/repositories/${repo.id}/maintenance`);
    expect(got.json()).toEqual({ gcSchedule: '30 1 * * *', verifySchedule: '0 3 * * 6', verifySample: 0.1, damagedRestorePoints: 0, lastFullVerifyAt: null });
    const bad = await inject('PUT', `/api/repositories/${repo.id}/maintenance`, { gcSchedule: 'nightly', verifySchedule: null, verifySample: 1 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().details[0].path).toBe('gcSchedule');
    const ok = await inject('PUT', `/api/repositories/${repo.id}/maintenance`, { gcSchedule: '0 2 * * *', verifySchedule: null, verifySample: 1 });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ gcSchedule: '0 2 * * *', verifySchedule: null, verifySample: 1 });
    expect((await inject('PUT', `/api/repositories/${repo.id}/maintenance`, { gcSchedule: null, verifySchedule: null, verifySample: 0 })).statusCode).toBe(400);
  });

  it('verify and GC on demand write a run with the request first and queue it; a second one of the same kind waits its turn', async () => {
    const repo = await newRepo('ondemand');
    const v = await inject('POST', `/api/repositories/${repo.id}/verify`, { sample: 0.25 });
    expect(v.statusCode).toBe(202);
    const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: v.json().runId }, include: { vms: true } });
    expect(run).toMatchObject({ kind: 'verify', status: 'queued', trigger: 'manual', requestedBy: 'admin' });
    expect(MaintenanceRequestSchema.parse(run.request)).toEqual({ task: 'verify', sample: 0.25, repositoryId: repo.id });
    expect(run.vms[0]!.vmName).toBe('ondemand');
    const again = await inject('POST', `/api/repositories/${repo.id}/verify`, {});
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toContain('already running');
    // GC is another kind: it is not blocked by the queued verify.
    const g = await inject('POST', `/api/repositories/${repo.id}/gc`);
    expect(g.statusCode).toBe(202);
    expect((await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: g.json().runId } })).request).toEqual({ task: 'gc', repositoryId: repo.id });
    expect((await inject('POST', '/api/repositories/00000000-0000-4000-8000-000000000000/gc')).statusCode).toBe(404);
  });

  it('a viewer may read the settings but not start or change maintenance', async () => {
    const repo = await newRepo('viewer');
    const viewer = await signInAs(ctx.d, ctx.cookie, 'maintviewer', 'viewer');
    const operator = await signInAs(ctx.d, ctx.cookie, 'maintop', 'operator');
    expect((await inject('GET', `/api/repositories/${repo.id}/maintenance`, undefined, viewer)).statusCode).toBe(200);
    expect((await inject('POST', `/api/repositories/${repo.id}/verify`, {}, viewer)).statusCode).toBe(403);
    expect((await inject('POST', `/api/repositories/${repo.id}/gc`, undefined, viewer)).statusCode).toBe(403);
    // Operators run maintenance; only admins change its schedule.
    expect((await inject('PUT', `/api/repositories/${repo.id}/maintenance`, { gcSchedule: null, verifySchedule: null, verifySample: 1 }, operator)).statusCode).toBe(403);
    expect((await inject('POST', `/api/repositories/${repo.id}/gc`, undefined, operator)).statusCode).toBe(202);
  });

  it('the scheduler starts each GC and verify occurrence once per repository, with the configured sample', async () => {
    const repo = await newRepo('scheduled', { gcSchedule: '0 1 * * *', verifySchedule: '0 4 * * 0', verifySample: 0.5, createdAt: new Date('2026-11-01T00:00:00Z') });
    const quiet = memoryLogger('maint').log;
    const tick = (now: string) => scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: new Date(now) });
    const runsOf = async () =>
      (await ctx.d.db.jobRun.findMany({ where: { request: { path: ['repositoryId'], equals: repo.id } }, orderBy: { createdAt: 'asc' } })).map((r) => r.request);
    // Sunday 2026-11-22, 04:00:30: both occurrences are due; two Directors tick at once.
    await Promise.all([tick('2026-11-22T04:00:30Z'), tick('2026-11-22T04:00:30Z')]);
    expect(await runsOf()).toEqual(expect.arrayContaining([{ task: 'gc', repositoryId: repo.id }, { task: 'verify', sample: 0.5, repositoryId: repo.id }]));
    expect(await runsOf()).toHaveLength(2);
    await tick('2026-11-22T12:00:00Z');
    expect(await runsOf()).toHaveLength(2);
    await ctx.d.db.jobRun.updateMany({ where: { request: { path: ['repositoryId'], equals: repo.id } }, data: { status: 'succeeded' } });
    // Monday 01:00: only GC again.
    await tick('2026-11-23T01:00:05Z');
    expect((await runsOf()).slice(2)).toEqual([{ task: 'gc', repositoryId: repo.id }]);
  });
});
