import { randomUUID } from 'node:crypto';
import type { InjectOptions } from 'fastify';
import { memoryLogger } from '@vaultline/logger';
import { startLab, type Lab, type LabVm } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduleTick } from '../src/scheduler/scheduler.ts';
import { signedInDirector, signInAs } from './helpers.ts';

const OPTIONS = { quiesce: 'require', failoverToNetwork: false, enableCbt: false, cbtSanityRate: 0.01, retention: { keepLast: 30, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 2, immutableDays: 5 } };

describe('jobs for the console: list, update, schedules, run history (real Postgres/Redis, lab vCenter)', () => {
  const ctx = signedInDirector();
  let lab: Lab;
  let app01: LabVm;
  let db01: LabVm;
  let vcenterId: string;
  let repoA: string;
  let repoB: string;
  let viewer: string;
  beforeAll(async () => {
    const db = ctx.d.db;
    lab = await startLab({ port: 0 });
    [app01, db01] = await Promise.all([lab.createVm({ name: 'app01', disks: [{ capacityBytes: 1 << 20 }] }), lab.createVm({ name: 'db01', disks: [{ capacityBytes: 1 << 20 }] })]);
    const vc = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'vc', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(vc.statusCode, vc.body).toBe(201);
    vcenterId = vc.json().id;
    repoA = (await db.repository.create({ data: { name: 'a', location: '/srv/a' } })).id;
    repoB = (await db.repository.create({ data: { name: 'b', location: '/srv/b' } })).id;
    viewer = await signInAs(ctx.d, ctx.cookie, 'vera', 'viewer');
  });
  afterAll(async () => {
    await lab?.stop();
  });
  const inject = (o: InjectOptions, cookie = ctx.cookie) => ctx.d.app.fastify.inject({ ...o, headers: { cookie, ...(o.headers ?? {}) } });
  const createJob = async (name: string, extra: Record<string, unknown> = {}) => {
    const res = await inject({ method: 'POST', url: '/api/jobs', payload: { name, vcenterId, repositoryId: repoA, sources: [{ moref: app01.moref, name: 'app01' }], ...extra } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; name: string };
  };

  it('lists a job with its options, next scheduled run (appliance time) and last result', async () => {
    const job = await createJob('nightly', { schedule: '0 2 * * *' });
    let [listed] = (await inject({ method: 'GET', url: '/api/jobs' })).json();
    expect(listed).toMatchObject({ id: job.id, name: 'nightly', schedule: '0 2 * * *', enabled: true, transportMode: 'automatic', lastRun: null, sources: [{ moref: app01.moref, name: 'app01', instanceUuid: app01.instanceUuid }] });
    expect(listed.options).toMatchObject({ quiesce: 'try', failoverToNetwork: true, retention: { keepLast: 14 } });
    const next = new Date(listed.nextRunAt);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
    expect([next.getHours(), next.getMinutes()]).toEqual([2, 0]);

    await ctx.d.db.jobRun.create({ data: { jobId: job.id, status: 'failed', createdAt: new Date(Date.now() - 60_000), finishedAt: new Date() } });
    const latest = await ctx.d.db.jobRun.create({ data: { jobId: job.id, status: 'succeeded' } });
    [listed] = (await inject({ method: 'GET', url: '/api/jobs' })).json();
    expect(listed.lastRun).toMatchObject({ id: latest.id, status: 'succeeded' });
    expect((await inject({ method: 'GET', url: `/api/jobs/${job.id}` })).json().lastRun.id).toBe(latest.id);
  });

  it('refuses a job naming a VM its vCenter does not have, or under another name, saying which and why; nothing is stored', async () => {
    const post = (sources: object[], vc = vcenterId) => inject({ method: 'POST', url: '/api/jobs', payload: { name: 'refused', vcenterId: vc, repositoryId: repoA, sources } });
    const gone = await post([{ moref: app01.moref, name: 'app01' }, { moref: 'vm-999', name: 'ghost' }]);
    expect(gone.statusCode).toBe(400);
    expect(gone.json()).toMatchObject({ message: 'vCenter vc has no VM vm-999 (ghost): it was removed, or registered again under another id; choose it again from the inventory', details: [{ path: 'sources.1', message: 'not_found' }] });
    const renamed = await post([{ moref: app01.moref, name: 'app02' }]);
    expect(renamed.statusCode).toBe(400);
    expect(renamed.json().message).toBe(`${app01.moref} in vCenter vc is named app01, not app02; choose the VM again from the inventory`);
    // A moref now held by another VM than the one chosen (its instance UUID says so).
    const other = await post([{ moref: db01.moref, name: 'db01', instanceUuid: '5003aaaa-0000-0000-0000-000000000000' }]);
    expect(other.statusCode).toBe(400);
    expect(other.json().message).toBe(`${db01.moref} in vCenter vc is now another VM (db01, instance UUID ${db01.instanceUuid}), not db01 (5003aaaa-0000-0000-0000-000000000000); choose it again from the inventory`);
    // A VM registered again keeps its instance UUID: the job follows it to its new moref.
    const moved = await post([{ moref: 'vm-old', name: 'app01', instanceUuid: app01.instanceUuid }]);
    expect(moved.statusCode, moved.body).toBe(201);
    expect(moved.json().sources).toEqual([{ moref: app01.moref, name: 'app01', instanceUuid: app01.instanceUuid }]);
    await inject({ method: 'DELETE', url: `/api/jobs/${moved.json().id}` });
    // A vCenter that cannot be asked: the reason, and no job.
    const down = await ctx.d.db.vCenter.create({ data: { name: 'vc-down', url: 'https://127.0.0.1:9/sdk', username: 'u', passwordSealed: (await ctx.d.db.vCenter.findUniqueOrThrow({ where: { id: vcenterId } })).passwordSealed } });
    const unreachable = await post([{ moref: app01.moref, name: 'app01' }], down.id);
    expect(unreachable.statusCode).toBe(400);
    expect(unreachable.json().message).toMatch(/^cannot check the job's VMs in vCenter vc-down: /);
    expect(unreachable.json().details).toEqual([{ path: 'vcenterId', message: 'unreachable' }]);
    await ctx.d.db.vCenter.delete({ where: { id: down.id } });
    expect(await ctx.d.db.backupJob.count({ where: { name: 'refused' } })).toBe(0);
    // New sources on an existing job are checked the same way.
    const job = await createJob('checked-on-patch');
    const patched = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { sources: [{ moref: 'vm-999', name: 'ghost' }] } });
    expect(patched.statusCode).toBe(400);
    expect(patched.json().details).toEqual([{ path: 'sources.0', message: 'not_found' }]);
    expect((await ctx.d.db.backupJob.findUniqueOrThrow({ where: { id: job.id } })).sources).toEqual([{ moref: app01.moref, name: 'app01', instanceUuid: app01.instanceUuid }]);
  });

  it('PATCH changes only the fields sent, replaces options as a whole, and is audited', async () => {
    const job = await createJob('patch-me', { schedule: '0 3 * * *' });
    const off = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { enabled: false } });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json()).toMatchObject({ enabled: false, schedule: '0 3 * * *', nextRunAt: null, transportMode: 'automatic' });

    const res = await inject({
      method: 'PATCH',
      url: `/api/jobs/${job.id}`,
      payload: { name: 'patched', repositoryId: repoB, transportMode: 'hotadd', options: OPTIONS, sources: [{ moref: db01.moref, name: 'db01', instanceUuid: db01.instanceUuid }] },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ name: 'patched', repositoryId: repoB, transportMode: 'hotadd', options: OPTIONS, sources: [{ moref: db01.moref, name: 'db01', instanceUuid: db01.instanceUuid }], enabled: false });
    const row = await ctx.d.db.backupJob.findUniqueOrThrow({ where: { id: job.id } });
    expect(row.options).toEqual({ ...OPTIONS, retries: { count: 0, delayMinutes: 10 }, window: null });
    const audits = await ctx.d.db.auditEvent.findMany({ where: { action: 'job.update' }, orderBy: { at: 'asc' } });
    expect(audits.map((a) => a.subject)).toEqual(['patch-me', 'patched']);
    expect(audits[1]!.actor).toBe('admin');
  });

  it('PATCH refuses a schedule that is not a five-field cron expression, with the reason, and changes nothing', async () => {
    const job = await createJob('cron-check', { schedule: '0 4 * * *' });
    const three = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { schedule: '* * *' } });
    expect(three.statusCode).toBe(400);
    expect(three.json().message).toMatch(/5 fields.*has 3/);
    expect(three.json().details).toEqual([{ path: 'schedule', message: expect.stringContaining('5 fields') }]);
    const range = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { schedule: '61 * * * *', name: 'renamed' } });
    expect(range.statusCode).toBe(400);
    expect(range.json().message).toContain('expected range 0-59');
    expect(await ctx.d.db.backupJob.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ schedule: '0 4 * * *', name: 'cron-check' });
  });

  it('PATCH refuses an empty or unknown body, an unknown repository and a taken name', async () => {
    const job = await createJob('strict');
    const empty = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: {} });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().message).toContain('nothing to change');
    expect((await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { color: 'red' } })).statusCode).toBe(400);
    const repo = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { repositoryId: randomUUID() } });
    expect(repo.statusCode).toBe(400);
    expect(repo.json().details).toEqual([{ path: 'repositoryId', message: 'unknown' }]);
    const taken = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { name: 'nightly' } });
    expect(taken.statusCode).toBe(409);
    expect((await inject({ method: 'PATCH', url: `/api/jobs/${randomUUID()}`, payload: { enabled: false } })).statusCode).toBe(404);
  });

  it('while a run is active only name, schedule and enabled change, and the job cannot be deleted', async () => {
    const job = await createJob('busy');
    const run = await ctx.d.db.jobRun.create({ data: { jobId: job.id, status: 'running' } });
    const sources = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { sources: [{ moref: 'vm-9', name: 'x' }], enabled: false } });
    expect(sources.statusCode).toBe(409);
    expect(sources.json().message).toContain(run.id);
    expect(sources.json().message).toContain('sources');
    expect((await ctx.d.db.backupJob.findUniqueOrThrow({ where: { id: job.id } })).enabled).toBe(true);
    expect((await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { enabled: false, name: 'busy-renamed' } })).statusCode).toBe(200);
    const del = await inject({ method: 'DELETE', url: `/api/jobs/${job.id}` });
    expect(del.statusCode).toBe(409);
    expect(del.json().message).toMatch(/cancel it or wait/);
    await ctx.d.db.jobRun.update({ where: { id: run.id }, data: { status: 'cancelled' } });
    expect((await inject({ method: 'DELETE', url: `/api/jobs/${job.id}` })).statusCode).toBe(200);
    expect(await ctx.d.db.backupJob.findUnique({ where: { id: job.id } })).toBeNull();
  });

  it('a schedule set or re-enabled now does not start the occurrences before it', async () => {
    const job = await createJob('late', { enabled: false });
    await ctx.d.db.backupJob.update({ where: { id: job.id }, data: { createdAt: new Date(Date.now() - 3 * 86400_000) } });
    // Daily, two hours from now: no occurrence can fall between the change and the first tick.
    const schedule = `0 ${(new Date().getHours() + 2) % 24} * * *`;
    const set = await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { schedule, enabled: true } });
    expect(set.statusCode, set.body).toBe(200);
    const quiet = memoryLogger('scheduler').log;
    // A tick starts whatever is due, other tests' scheduled jobs too (a tick 3 hours ahead can pass their
    // occurrences, say after midnight): count this job's runs only.
    const ofThisJob = async (runIds: string[]) => (await ctx.d.db.jobRun.findMany({ where: { id: { in: runIds }, jobId: job.id }, select: { id: true } })).map((r) => r.id);
    expect(await ofThisJob(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet }))).toEqual([]);
    // The scheduler does start it at the next occurrence.
    const started = await ofThisJob(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: new Date(Date.now() + 3 * 3600_000) }));
    expect(started).toHaveLength(1);
    await ctx.d.db.jobRun.updateMany({ where: { jobId: job.id }, data: { status: 'succeeded' } });
    // Disabled for days, then enabled again: the missed occurrences are not run.
    await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { enabled: false } });
    await ctx.d.db.backupJob.update({ where: { id: job.id }, data: { lastScheduledAt: new Date(Date.now() - 2 * 86400_000) } });
    await inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { enabled: true } });
    expect(await ofThisJob(await scheduleTick({ db: ctx.d.db, queue: ctx.d.queue, log: quiet, now: new Date(Date.now() + 1000) }))).toEqual([]);
    expect(await ctx.d.db.jobRun.count({ where: { jobId: job.id } })).toBe(1);
  });

  it('previews a schedule: the next three occurrences in the appliance time zone, or why it is invalid', async () => {
    const ok = await inject({ method: 'POST', url: '/api/schedules/preview', payload: { schedule: '30 22 * * 1' } });
    expect(ok.statusCode, ok.body).toBe(200);
    const body = ok.json() as { next: string[]; timeZone: string; schedule: string };
    expect(body.timeZone).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
    expect(body.next).toHaveLength(3);
    const dates = body.next.map((s) => new Date(s));
    for (const d of dates) expect([d.getDay(), d.getHours(), d.getMinutes()]).toEqual([1, 22, 30]);
    expect(dates[1]!.getTime() - dates[0]!.getTime()).toBeGreaterThanOrEqual(6.9 * 86400_000);
    const bad = await inject({ method: 'POST', url: '/api/schedules/preview', payload: { schedule: 'every night' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/every night.*5 fields.*has 2/);
    expect((await inject({ method: 'POST', url: '/api/schedules/preview', payload: { schedule: '0 0 31 2 *' } })).json().message).toMatch(/day of month/i);
    expect((await inject({ method: 'POST', url: '/api/schedules/preview', payload: {} })).statusCode).toBe(400);
    expect((await inject({ method: 'POST', url: '/api/schedules/preview', payload: { schedule: '0 1 * * *' } }, viewer)).statusCode).toBe(200);
    expect((await ctx.d.app.fastify.inject({ method: 'POST', url: '/api/schedules/preview', payload: { schedule: '0 1 * * *' } })).statusCode).toBe(401);
  });

  it('a viewer reads jobs and runs, but updating, deleting, running and cancelling are refused', async () => {
    const job = await createJob('viewer-target');
    const run = await ctx.d.db.jobRun.create({ data: { jobId: job.id, status: 'queued' } });
    expect((await inject({ method: 'GET', url: '/api/jobs' }, viewer)).statusCode).toBe(200);
    expect((await inject({ method: 'GET', url: `/api/runs/${run.id}` }, viewer)).statusCode).toBe(200);
    for (const o of [
      { method: 'PATCH', url: `/api/jobs/${job.id}`, payload: { enabled: false } },
      { method: 'DELETE', url: `/api/jobs/${job.id}` },
      { method: 'POST', url: `/api/jobs/${job.id}/run` },
      { method: 'POST', url: `/api/runs/${run.id}/cancel` },
    ] as InjectOptions[]) {
      const res = await inject(o, viewer);
      expect(res.statusCode, `${o.method} ${o.url}`).toBe(403);
      expect(res.json().message).toBe('this needs the operator role');
    }
    expect(await ctx.d.db.backupJob.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ enabled: true });
    expect((await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: run.id } })).cancelRequested).toBe(false);
  });

  it('run history filters by job and by status, newest first', async () => {
    const j1 = await createJob('hist-1');
    const j2 = await createJob('hist-2');
    const mk = (jobId: string, status: 'succeeded' | 'failed', minutesAgo: number) =>
      ctx.d.db.jobRun.create({ data: { jobId, status, createdAt: new Date(Date.now() - minutesAgo * 60_000), vms: { create: [{ vmMoref: 'vm-1', vmName: 'app01', status }] } } });
    const a = await mk(j1.id, 'failed', 3);
    const b = await mk(j1.id, 'succeeded', 2);
    const c = await mk(j2.id, 'failed', 1);
    const ids = async (q: string) => ((await inject({ method: 'GET', url: `/api/runs?${q}` })).json() as { id: string }[]).map((r) => r.id);
    expect(await ids(`jobId=${j1.id}`)).toEqual([b.id, a.id]);
    expect((await ids('status=failed')).filter((id) => [a.id, b.id, c.id].includes(id))).toEqual([c.id, a.id]);
    expect(await ids(`jobId=${j1.id}&status=failed`)).toEqual([a.id]);
    const bad = await inject({ method: 'GET', url: '/api/runs?status=exploded' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().details[0].path).toBe('status');
  });

  it('the run list leaves each item\'s log out when asked (logs=false); by default and on the run\'s own page it is there', async () => {
    const job = await createJob('logged');
    const log = [{ at: new Date().toISOString(), level: 'info', message: 'snapshot taken' }];
    const run = await ctx.d.db.jobRun.create({ data: { jobId: job.id, status: 'succeeded', vms: { create: [{ vmMoref: 'vm-1', vmName: 'app01', status: 'succeeded', log }] } } });
    const listed = ((await inject({ method: 'GET', url: `/api/runs?jobId=${job.id}&logs=false` })).json() as { id: string; vms: { vmName: string; log: unknown[] }[] }[])[0]!;
    expect(listed.id).toBe(run.id);
    expect(listed.vms.map((v) => [v.vmName, v.log])).toEqual([['app01', []]]);
    expect((await inject({ method: 'GET', url: `/api/runs?jobId=${job.id}` })).json()[0].vms[0].log).toEqual(log);
    expect((await inject({ method: 'GET', url: `/api/runs?jobId=${job.id}&logs=maybe` })).statusCode).toBe(400);
    expect((await inject({ method: 'GET', url: `/api/runs/${run.id}` })).json().vms[0].log).toEqual(log);
  });

  it('a run shows each disk\'s read speed kept by the Transporter: the average and the fastest second', async () => {
    const job = await createJob('speedy');
    const run = await ctx.d.db.jobRun.create({
      data: {
        jobId: job.id,
        status: 'succeeded',
        vms: { create: [{ vmMoref: 'vm-1', vmName: 'app01', status: 'succeeded', disks: { create: [{ deviceKey: 2000, label: 'Hard disk 1', capacityBytes: 1n << 30n, phase: 'done', bytesRead: 3n << 28n, avgBytesPerSecond: 150_000_000n, peakBytesPerSecond: 410_000_000n }] } }] },
      },
    });
    const res = await inject({ method: 'GET', url: `/api/runs/${run.id}` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().vms[0].disks[0].speed).toEqual({ average: 150_000_000, peak: 410_000_000 });
  });
});
