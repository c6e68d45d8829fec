import { RestoreRequestSchema } from '@vaultline/contracts';
import { memoryLogger } from '@vaultline/logger';
import { describe, expect, it } from 'vitest';
import { scheduleTick } from '../src/scheduler/scheduler.ts';
import { drillVmName } from '../src/services/drills.ts';
import { signedInDirector, signInAs } from './helpers.ts';

const quiet = memoryLogger('drills').log;

describe('drill VM names', () => {
  it('are unique per minute and never longer than a VM name may be', () => {
    expect(drillVmName('web-01', new Date('2026-12-01T02:30:59Z'))).toBe('web-01-drill-20261201-0230');
    expect(drillVmName('x'.repeat(80), new Date()).length).toBeLessThanOrEqual(80);
  });
});

describe('restore drill jobs (real Postgres/Redis)', () => {
  const ctx = signedInDirector();
  const inject = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, cookie = ctx.cookie) =>
    ctx.d.app.fastify.inject({ method, url, headers: { cookie }, ...(payload ? { payload } : {}) });

  const setUp = async () => {
    const vc = await ctx.d.db.vCenter.create({ data: { name: `vc-${Math.random()}`, url: 'https://vc/sdk', username: 'u', passwordSealed: 'x' } });
    const repo = await ctx.d.db.repository.create({ data: { name: `r-${Math.random()}`, location: '/tmp/none' } });
    const point = (vmInstanceUuid: string, vmName: string, createdAt: string) =>
      ctx.d.db.restorePoint.create({ data: { repositoryId: repo.id, repoPointId: `p-${Math.random()}`, vmInstanceUuid, vmName, createdAt: new Date(createdAt), logicalBytes: 1n } });
    return { vc, repo, point };
  };

  it('creates, lists, changes and deletes a drill; a bad schedule is refused naming the field', async () => {
    const { vc } = await setUp();
    const bad = await inject('POST', '/api/drills', { name: 'weekly', vcenterId: vc.id, vms: [{ instanceUuid: 'u1', name: 'app' }], schedule: 'every sunday' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().details[0].path).toBe('schedule');
    const noVms = await inject('POST', '/api/drills', { name: 'weekly', vcenterId: vc.id, vms: [] });
    expect(noVms.statusCode).toBe(400);
    expect(noVms.json().message).toContain('choose at least one VM');

    const created = await inject('POST', '/api/drills', { name: 'weekly', vcenterId: vc.id, vms: [{ instanceUuid: 'u1', name: 'app' }], schedule: '0 3 * * 0' });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    expect(created.json()).toMatchObject({ name: 'weekly', pointChoice: 'newest', datastore: null, enabled: true, schedule: '0 3 * * 0' });
    expect((await inject('POST', '/api/drills', { name: 'weekly', vcenterId: vc.id, vms: [{ instanceUuid: 'u1', name: 'app' }] })).statusCode).toBe(409);

    const changed = await inject('PATCH', `/api/drills/${id}`, { pointChoice: 'random', enabled: false });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ pointChoice: 'random', enabled: false });
    expect((await inject('PATCH', `/api/drills/${id}`, { schedule: 'nope' })).statusCode).toBe(400);
    expect((await inject('GET', '/api/drills')).json().map((d: { name: string }) => d.name)).toContain('weekly');

    expect((await inject('DELETE', `/api/drills/${id}`)).statusCode).toBe(200);
    expect((await inject('GET', `/api/drills/${id}`)).statusCode).toBe(404);
    const audit = await ctx.d.db.auditEvent.findMany({ where: { subject: 'weekly' }, orderBy: { at: 'asc' } });
    expect(audit.map((a) => a.action)).toEqual(['drill.create', 'drill.update', 'drill.delete']);
  });

  it('a viewer can list drills but not create or run them; without a session nothing is answered', async () => {
    const { vc } = await setUp();
    const viewer = await signInAs(ctx.d, ctx.cookie, 'drillviewer', 'viewer');
    const drill = (await inject('POST', '/api/drills', { name: 'viewer-sees', vcenterId: vc.id, vms: [{ instanceUuid: 'u9', name: 'v' }] })).json();
    expect((await inject('GET', '/api/drills', undefined, viewer)).statusCode).toBe(200);
    expect((await inject('POST', '/api/drills', { name: 'nope', vcenterId: vc.id, vms: [{ instanceUuid: 'u1', name: 'a' }] }, viewer)).statusCode).toBe(403);
    expect((await inject('POST', `/api/drills/${drill.id}/run`, undefined, viewer)).statusCode).toBe(403);
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/drills' })).statusCode).toBe(401);
  });

  it('run now: one drill run per VM, restoring the newest point to a throwaway name; a VM with no point fails at once, saying so', async () => {
    const { vc, point } = await setUp();
    await point('uA', 'alpha', '2026-11-01T00:00:00Z');
    const newest = await point('uA', 'alpha', '2026-11-02T00:00:00Z');
    const drill = (await inject('POST', '/api/drills', { name: 'now', vcenterId: vc.id, datastore: 'datastore2', vms: [{ instanceUuid: 'uA', name: 'alpha' }, { instanceUuid: 'uNone', name: 'never-backed-up' }] })).json();
    const before = (await ctx.d.queue.counts()).prioritized ?? 0;
    const res = await inject('POST', `/api/drills/${drill.id}/run`);
    expect(res.statusCode).toBe(202);
    const runs = await ctx.d.db.jobRun.findMany({ where: { id: { in: res.json().runIds } }, include: { vms: true }, orderBy: { createdAt: 'asc' } });
    expect(runs).toHaveLength(2);
    const ok = runs.find((r) => r.vms[0]!.vmInstanceUuid === 'uA')!;
    expect(ok).toMatchObject({ kind: 'drill', status: 'queued', trigger: 'manual', drillJobId: drill.id, requestedBy: 'admin' });
    // The request is exactly what the Transporter's restore handler parses.
    const request = RestoreRequestSchema.parse(ok.request);
    expect(request).toMatchObject({ restorePointId: newest.id, drill: true, powerOn: false, vcenterId: vc.id, datastore: 'datastore2' });
    expect(request.name).toMatch(/^alpha-drill-\d{8}-\d{4}$/);
    expect(ok.vms[0]!.vmName).toBe(request.name);
    expect((await ctx.d.queue.counts()).prioritized).toBe(before + 1);

    const none = runs.find((r) => r.vms[0]!.vmInstanceUuid === 'uNone')!;
    expect(none.status).toBe('failed');
    expect(none.error).toBe('never-backed-up has no restore point to drill; back it up first');
    expect(none.vms[0]!.status).toBe('failed');

    // While its drill is still queued, the job is not started again.
    const again = await inject('POST', `/api/drills/${drill.id}/run`);
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toContain('already running');
  });

  it('lists each drill with its next scheduled run and, per VM, the latest drill run (null before the first)', async () => {
    const { vc, point } = await setUp();
    await point('uL', 'lambda', '2026-11-01T00:00:00Z');
    const created = (await inject('POST', '/api/drills', { name: 'listed', vcenterId: vc.id, schedule: '0 3 * * 0', vms: [{ instanceUuid: 'uL', name: 'lambda' }, { instanceUuid: 'uNoPoint', name: 'nopoint' }] })).json();
    const listed = () => inject('GET', '/api/drills').then((r) => r.json().find((x: { id: string }) => x.id === created.id));
    const before = await listed();
    expect(new Date(before.nextRunAt).getDay()).toBe(0);
    expect(before.lastResults).toEqual([
      { instanceUuid: 'uL', name: 'lambda', run: null },
      { instanceUuid: 'uNoPoint', name: 'nopoint', run: null },
    ]);
    const first = (await inject('POST', `/api/drills/${created.id}/run`)).json().runIds as string[];
    await ctx.d.db.jobRun.updateMany({ where: { id: { in: first } }, data: { status: 'succeeded' } });
    const second = (await inject('POST', `/api/drills/${created.id}/run`)).json().runIds as string[];
    const after = (await inject('GET', `/api/drills/${created.id}`)).json();
    const byVm = Object.fromEntries(after.lastResults.map((r: { name: string; run: { id: string; status: string; error: string | null } }) => [r.name, r.run]));
    expect(second).toContain(byVm.lambda.id);
    expect(byVm.lambda.status).toBe('queued');
    expect(second).toContain(byVm.nopoint.id);
    expect(byVm.nopoint).toMatchObject({ status: 'failed', error: 'nopoint has no restore point to drill; back it up first' });
    const off = (await inject('PATCH', `/api/drills/${created.id}`, { enabled: false })).json();
    expect(off.nextRunAt).toBeNull();
    expect(off.lastResults.map((r: { run: { id: string } }) => r.run.id).sort()).toEqual([byVm.lambda.id, byVm.nopoint.id].sort());
  });

  it('"random" drills any of the VM\'s restore points, not only the newest', async () => {
    const { vc, point } = await setUp();
    const ids = new Set<string>();
    for (const day of ['01', '02', '03']) ids.add((await point('uR', 'rho', `2026-11-${day}T00:00:00Z`)).id);
    const drill = await ctx.d.db.drillJob.create({ data: { name: 'random', vcenterId: vc.id, vms: [{ instanceUuid: 'uR', name: 'rho' }], pointChoice: 'random' } });
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 3; i++) {
      const res = await inject('POST', `/api/drills/${drill.id}/run`);
      const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: res.json().runIds[0] } });
      seen.add((run.request as { restorePointId: string }).restorePointId);
      await ctx.d.db.jobRun.update({ where: { id: run.id }, data: { status: 'succeeded' } });
    }
    expect(seen).toEqual(ids);
  });

  it('the scheduler starts each drill occurrence once, even with two Directors ticking together, and skips disabled drills', async () => {
    const { vc, point } = await setUp();
    await point('uS', 'sigma', '2026-11-20T00:00:00Z');
    const drill = await ctx.d.db.drillJob.create({
      data: { name: 'sunday', vcenterId: vc.id, vms: [{ instanceUuid: 'uS', name: 'sigma' }], schedule: '0 3 * * 0', createdAt: new Date('2026-11-20T00:00:00Z') },
    });
    const off = await ctx.d.db.drillJob.create({
      data: { name: 'off', vcenterId: vc.id, vms: [{ instanceUuid: 'uS', name: 'sigma' }], schedule: '0 3 * * 0', enabled: false, createdAt: new Date('2026-11-20T00:00:00Z') },
    });
    const sunday = new Date('2026-11-22T03:00:20Z');
    const tick = (now: Date) => scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now });
    const [a, b] = await Promise.all([tick(sunday), tick(sunday)]);
    expect(a.length + b.length).toBe(1);
    const runs = await ctx.d.db.jobRun.findMany({ where: { drillJobId: drill.id } });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ kind: 'drill', trigger: 'schedule' });
    expect((runs[0]!.request as { name: string }).name).toBe('sigma-drill-20261122-0300');
    expect(await ctx.d.db.jobRun.count({ where: { drillJobId: off.id } })).toBe(0);
    // Later the same day: nothing new. The next Sunday: one more.
    expect(await tick(new Date('2026-11-22T18:00:00Z'))).toEqual([]);
    await ctx.d.db.jobRun.updateMany({ where: { drillJobId: drill.id }, data: { status: 'succeeded' } });
    expect(await tick(new Date('2026-11-29T03:01:00Z'))).toHaveLength(1);
  });
});
