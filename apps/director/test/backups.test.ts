/**
 * One-off backups and retries of failed VMs (real Postgres/Redis, lab vCenter). No Transporter runs here:
 * the runs are the rows the API writes and the items it queues; item outcomes are set on the rows as a
 * Transporter would record them.
 */
import type { InjectOptions } from 'fastify';
import type { InventoryVm, RunDetail } from '@vaultline/contracts';
import { memoryLogger } from '@vaultline/logger';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryTick } from '../src/scheduler/retries.ts';
import { signedInDirector } from './helpers.ts';

describe('one-off backups and retries of failed VMs (real Postgres/Redis, lab vCenter)', () => {
  const ctx = signedInDirector();
  let lab: Lab;
  let vcenterId = '';
  let repositoryId = '';
  let vms: InventoryVm[] = [];
  const inject = (o: InjectOptions) => ctx.d.app.fastify.inject({ ...o, headers: { cookie: ctx.cookie, ...(o.headers ?? {}) } });
  const vm = (name: string) => vms.find((v) => v.name === name)!;
  const asSource = (v: InventoryVm) => ({ moref: v.moref, name: v.name, instanceUuid: v.instanceUuid });
  const run = async (id: string) => (await inject({ method: 'GET', url: `/api/runs/${id}` })).json() as RunDetail;
  /** Ends a run as a Transporter would: each named item with its status, the run with the settled one. */
  const finish = async (runId: string, outcome: Record<string, 'succeeded' | 'failed' | 'cancelled'>, at = new Date()) => {
    for (const [name, status] of Object.entries(outcome)) {
      await ctx.d.db.runVm.updateMany({ where: { runId, vmName: name }, data: { status, phase: status, finishedAt: at, ...(status === 'failed' ? { error: `${name} broke` } : {}) } });
    }
    const failed = Object.values(outcome).includes('failed');
    await ctx.d.db.jobRun.update({ where: { id: runId }, data: { status: failed ? 'failed' : 'succeeded', finishedAt: at } });
  };

  beforeAll(async () => {
    lab = await startLab({ port: 0 });
    for (const name of ['one-a', 'one-b', 'one-c']) await lab.createVm({ name, disks: [{ capacityBytes: 1 << 20 }] });
    const vc = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'vc', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(vc.statusCode, vc.body).toBe(201);
    vcenterId = vc.json().id;
    repositoryId = (await ctx.d.db.repository.create({ data: { name: 'r', location: '/srv/r' } })).id;
    vms = (await inject({ method: 'GET', url: `/api/vcenters/${vcenterId}/vms` })).json();
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('Back up now is a one-off run of the VM, with no job made; a second one of the same VM is refused while the first is not done', async () => {
    const jobsBefore = await ctx.d.db.backupJob.count();
    const res = await inject({ method: 'POST', url: '/api/backups', payload: { vcenterId, repositoryId, vm: { ...asSource(vm('one-a')), name: 'one-a' } } });
    expect(res.statusCode, res.body).toBe(202);
    const r = await run(res.json().runId);
    expect(r).toMatchObject({ jobId: null, kind: 'backup', trigger: 'one-off', status: 'queued', retryOf: null, retriedBy: null });
    expect(r.vms.map((v) => [v.vmName, v.vmMoref, v.status])).toEqual([['one-a', vm('one-a').moref, 'queued']]);
    expect(await ctx.d.db.backupJob.count()).toBe(jobsBefore);
    const row = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: r.id } });
    expect(row.request).toMatchObject({ oneOff: { vcenterId, repositoryId, transportMode: 'automatic', vm: { moref: vm('one-a').moref, name: 'one-a' }, options: { quiesce: 'try' } } });
    expect(await ctx.d.queue.state(r.vms[0]!.id)).not.toBeNull();

    const again = await inject({ method: 'POST', url: '/api/backups', payload: { vcenterId, repositoryId, vm: asSource(vm('one-a')) } });
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toBe(`one-a is being backed up now (run ${r.id}); watch that run instead`);
    await finish(r.id, { 'one-a': 'succeeded' });
    expect((await inject({ method: 'POST', url: '/api/backups', payload: { vcenterId, repositoryId, vm: asSource(vm('one-a')) } })).statusCode).toBe(202);
  });

  it('a one-off backup of a VM the vCenter names differently, or does not have, is refused with the reason', async () => {
    const renamed = await inject({ method: 'POST', url: '/api/backups', payload: { vcenterId, repositoryId, vm: { moref: vm('one-b').moref, name: 'not-one-b' } } });
    expect(renamed.statusCode).toBe(400);
    expect(renamed.json().message).toBe(`${vm('one-b').moref} in vCenter vc is named one-b, not not-one-b; choose the VM again from the inventory`);
    const gone = await inject({ method: 'POST', url: '/api/backups', payload: { vcenterId, repositoryId, vm: { moref: 'vm-99999', name: 'ghost' } } });
    expect(gone.statusCode).toBe(400);
    expect(gone.json().details).toEqual([{ path: 'sources.0', message: 'not_found' }]);
    const noRepo = await inject({ method: 'POST', url: '/api/backups', payload: { vcenterId, repositoryId: '00000000-0000-4000-8000-000000000000', vm: asSource(vm('one-b')) } });
    expect(noRepo.statusCode).toBe(400);
  });

  it('Retry failed VMs starts a run of the same job with only the failed ones, once; the runs point at each other', async () => {
    const job = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'three', vcenterId, repositoryId, sources: ['one-a', 'one-b', 'one-c'].map((n) => asSource(vm(n))) } });
    expect(job.statusCode, job.body).toBe(201);
    const jobId = job.json().id as string;
    const first = (await inject({ method: 'POST', url: `/api/jobs/${jobId}/run` })).json().id as string;
    // Not finished yet: nothing to retry.
    expect((await inject({ method: 'POST', url: `/api/runs/${first}/retry` })).statusCode).toBe(409);
    await finish(first, { 'one-a': 'succeeded', 'one-b': 'failed', 'one-c': 'cancelled' });

    const res = await inject({ method: 'POST', url: `/api/runs/${first}/retry` });
    expect(res.statusCode, res.body).toBe(202);
    const retry = await run(res.json().runId);
    expect(retry).toMatchObject({ jobId, kind: 'backup', trigger: 'retry', status: 'queued', retryOf: first });
    expect(retry.vms.map((v) => v.vmName)).toEqual(['one-b']);
    expect(retry.vms[0]!.log.map((l) => l.message)).toEqual([`Retry of run ${first}, where it failed: one-b broke`]);
    expect((await run(first)).retriedBy).toBe(retry.id);

    const twice = await inject({ method: 'POST', url: `/api/runs/${first}/retry` });
    expect(twice.statusCode).toBe(409);
    expect(twice.json().message).toBe(`run ${first} was already retried by run ${retry.id}`);
    // The retry succeeds: it has nothing to retry.
    await finish(retry.id, { 'one-b': 'succeeded' });
    expect((await inject({ method: 'POST', url: `/api/runs/${retry.id}/retry` })).json().message).toBe(`run ${retry.id} has no failed VM to retry`);
  });

  it('automatic retries: a failed run of a job that asks for them is retried after the delay, up to the count, and not before', async () => {
    const job = await inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { name: 'auto', vcenterId, repositoryId, sources: [asSource(vm('one-c'))], options: { retries: { count: 2, delayMinutes: 10 } } },
    });
    expect(job.statusCode, job.body).toBe(201);
    const jobId = job.json().id as string;
    const { log } = memoryLogger('retries');
    const tick = (now: Date) => retryTick({ db: ctx.d.db, queue: ctx.d.queue, log, now });

    const t0 = new Date(Date.now() - 60 * 60_000);
    const first = (await inject({ method: 'POST', url: `/api/jobs/${jobId}/run` })).json().id as string;
    await finish(first, { 'one-c': 'failed' }, t0);
    expect(await tick(new Date(t0.getTime() + 9 * 60_000))).toEqual([]);
    const [second] = await tick(new Date(t0.getTime() + 11 * 60_000));
    expect(second).toBeDefined();
    expect(await run(second!)).toMatchObject({ jobId, trigger: 'auto-retry', retryOf: first });
    // Once only.
    expect(await tick(new Date(t0.getTime() + 12 * 60_000))).toEqual([]);

    const t1 = new Date(t0.getTime() + 20 * 60_000);
    await finish(second!, { 'one-c': 'failed' }, t1);
    const [third] = await tick(new Date(t1.getTime() + 10 * 60_000));
    expect(await run(third!)).toMatchObject({ trigger: 'auto-retry', retryOf: second });
    // Two retries spent: the third failure stays.
    await finish(third!, { 'one-c': 'failed' }, new Date(t1.getTime() + 15 * 60_000));
    expect(await tick(new Date(t1.getTime() + 40 * 60_000))).toEqual([]);

    // A job with a backup window: a retry due outside it waits for the window to open.
    const windowed = await inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { name: 'night', vcenterId, repositoryId, sources: [asSource(vm('one-a'))], options: { retries: { count: 1, delayMinutes: 10 }, window: { start: '20:00', end: '06:00' } } },
    });
    expect(windowed.statusCode, windowed.body).toBe(201);
    const noon = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() - 1, 12, 0));
    const nightRun = (await inject({ method: 'POST', url: `/api/jobs/${windowed.json().id}/run` })).json().id as string;
    await finish(nightRun, { 'one-a': 'failed' }, noon);
    const utcTick = (at: Date) => retryTick({ db: ctx.d.db, queue: ctx.d.queue, log, now: at, timeZone: 'UTC' });
    expect(await utcTick(new Date(noon.getTime() + 15 * 60_000))).toEqual([]);
    const [nightRetry] = await utcTick(new Date(noon.getTime() + 8 * 60 * 60_000 + 60_000));
    expect(await run(nightRetry!)).toMatchObject({ trigger: 'auto-retry', retryOf: nightRun });

    // A job without the option is never retried by itself.
    const plain = (await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'plain', vcenterId, repositoryId, sources: [asSource(vm('one-b'))] } })).json().id as string;
    const failedPlain = (await inject({ method: 'POST', url: `/api/jobs/${plain}/run` })).json().id as string;
    await finish(failedPlain, { 'one-b': 'failed' }, t0);
    expect(await tick(new Date(t0.getTime() + 30 * 60_000))).toEqual([]);
  });
});
