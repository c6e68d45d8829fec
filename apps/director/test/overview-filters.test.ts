import type { InjectOptions } from 'fastify';
import type { ProtectionOverview } from '@vaultline/contracts';
import { startLab, type Lab, type LabVm } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

describe('the protection overview filtered and paged by the Director: status, name search, offset and limit (real Postgres, lab vCenter)', () => {
  const ctx = signedInDirector({ extra: () => ({ inventoryCache: { maxAgeMs: 0 } }) });
  let lab: Lab;
  const vms: Record<string, LabVm> = {};
  let jobId = '';
  let repositoryId = '';
  const inject = (o: InjectOptions) => ctx.d.app.fastify.inject({ ...o, headers: { cookie: ctx.cookie, ...(o.headers ?? {}) } });
  const overview = async (query: string) => {
    const res = await inject({ method: 'GET', url: `/api/overview/protection${query}` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as ProtectionOverview;
  };
  const names = (o: ProtectionOverview) => o.vms.map((v) => v.name);

  /** A finished backup of one VM, with a restore point unless it failed. */
  const backup = async (vm: LabVm, status: 'succeeded' | 'warning' | 'failed') => {
    const at = new Date(Date.now() - 3600_000);
    const run = await ctx.d.db.jobRun.create({
      data: { jobId, kind: 'backup', status, createdAt: at, startedAt: at, finishedAt: at, vms: { create: [{ vmMoref: vm.moref, vmName: vm.name, vmInstanceUuid: vm.instanceUuid, status, phase: status, startedAt: at, finishedAt: at }] } },
      include: { vms: true },
    });
    if (status !== 'failed') {
      await ctx.d.db.restorePoint.create({ data: { repositoryId, repoPointId: run.id, runVmId: run.vms[0]!.id, vmInstanceUuid: vm.instanceUuid!, vmName: vm.name, createdAt: at, logicalBytes: 1n } });
    }
  };

  beforeAll(async () => {
    lab = await startLab({ port: 0 });
    // Protected: App-01 (ok), app-02 (last backup failed: needs attention), db-01 (warning: needs attention).
    // Unprotected: web-01 (no job), web-02 (no job), app-03 (in the job, no restore point), the lab's proxy VM.
    for (const name of ['App-01', 'app-02', 'app-03', 'db-01', 'web-01', 'web-02']) vms[name] = await lab.createVm({ name, disks: [] });
    const vc = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'vc', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(vc.statusCode, vc.body).toBe(201);
    repositoryId = (await ctx.d.db.repository.create({ data: { name: 'r', location: '/srv/r' } })).id;
    const job = await inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { name: 'nightly', vcenterId: vc.json().id, repositoryId, sources: ['App-01', 'app-02', 'app-03', 'db-01'].map((n) => ({ moref: vms[n]!.moref, name: n })) },
    });
    expect(job.statusCode, job.body).toBe(201);
    jobId = job.json().id;
    await backup(vms['App-01']!, 'succeeded');
    await backup(vms['app-02']!, 'succeeded');
    await backup(vms['app-02']!, 'failed');
    await backup(vms['db-01']!, 'warning');
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('filters by state: total is the number that matched, the counts stay those of every VM', async () => {
    const all = await overview('');
    const mine = (o: ProtectionOverview) => names(o).filter((n) => n in vms);
    expect(all.counts).toEqual({ protected: 3, unprotected: all.total - 3, attention: 2 });

    const unprotected = await overview('?status=unprotected');
    expect(unprotected.total).toBe(all.counts.unprotected);
    expect(unprotected.vms.every((v) => !v.protected)).toBe(true);
    expect(mine(unprotected)).toEqual(['app-03', 'web-01', 'web-02']);
    expect(unprotected.counts).toEqual(all.counts);

    const attention = await overview('?status=attention');
    expect(attention.total).toBe(2);
    expect(names(attention)).toEqual(['app-02', 'db-01']);
    expect(attention.vms.map((v) => v.lastBackup?.status)).toEqual(['failed', 'warning']);

    const protectedOnes = await overview('?status=protected');
    expect(protectedOnes.total).toBe(3);
    // Those needing attention first, then by name.
    expect(names(protectedOnes)).toEqual(['app-02', 'db-01', 'App-01']);
  });

  it('searches names case-insensitively, combines with the state and pages what matched', async () => {
    const app = await overview('?q=APP');
    expect(app.total).toBe(3);
    expect(names(app)).toEqual(['app-03', 'app-02', 'App-01']);
    expect(names(await overview('?q=%20web-0%20'))).toEqual(['web-01', 'web-02']);
    expect(names(await overview('?q=app&status=protected'))).toEqual(['app-02', 'App-01']);
    const none = await overview('?q=nothing-like-this&status=attention');
    expect(none).toMatchObject({ total: 0, vms: [] });

    const second = await overview('?q=app&limit=1&offset=1');
    expect(second.total).toBe(3);
    expect(names(second)).toEqual(['app-02']);
    const past = await overview('?q=app&limit=2&offset=4');
    expect(past).toMatchObject({ total: 3, vms: [] });
    // Every page of the unfiltered list put together is the whole list, in order, once.
    const whole = await overview('');
    const pages: string[] = [];
    for (let offset = 0; offset < whole.total; offset += 2) pages.push(...names(await overview(`?limit=2&offset=${offset}`)));
    expect(pages).toEqual(names(whole));
  });

  it('refuses a state it does not know and a search longer than 200 characters', async () => {
    expect((await inject({ method: 'GET', url: '/api/overview/protection?status=failed' })).statusCode).toBe(400);
    expect((await inject({ method: 'GET', url: `/api/overview/protection?q=${'x'.repeat(201)}` })).statusCode).toBe(400);
    expect((await inject({ method: 'GET', url: '/api/overview/protection?offset=-1' })).statusCode).toBe(400);
  });
});
