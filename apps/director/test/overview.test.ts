import type { InjectOptions } from 'fastify';
import type { ProtectionOverview } from '@vaultline/contracts';
import { startLab, type Lab, type LabVm } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector, signInAs } from './helpers.ts';

describe('the protection overview: per VM protection, last backup and the last 24 hours (real Postgres, lab vCenter)', () => {
  // Inventories are read on every call here (no minute-long copy), so a vCenter that stops answering shows at once.
  const ctx = signedInDirector({ extra: () => ({ inventoryCache: { maxAgeMs: 0 } }) });
  let lab: Lab;
  let app01: LabVm;
  let db01: LabVm;
  let web01: LabVm;
  let vcenterId = '';
  let repositoryId = '';
  let jobId = '';
  let viewer = '';
  const inject = (o: InjectOptions, cookie = ctx.cookie) => ctx.d.app.fastify.inject({ ...o, headers: { cookie, ...(o.headers ?? {}) } });
  const overview = async (query = '', cookie = ctx.cookie) => {
    const res = await inject({ method: 'GET', url: `/api/overview/protection${query}` }, cookie);
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as ProtectionOverview;
  };
  /** A finished backup run of one VM of the job, with one disk row, `hoursAgo` hours ago. */
  const backupRun = async (vm: LabVm, status: 'succeeded' | 'warning' | 'failed', hoursAgo: number, disk: { readMode: 'changed' | 'full' | null; bytesWritten: number }, error: string | null = null) => {
    const at = new Date(Date.now() - hoursAgo * 3600_000);
    const run = await ctx.d.db.jobRun.create({
      data: {
        jobId,
        kind: 'backup',
        status,
        createdAt: at,
        startedAt: at,
        finishedAt: at,
        vms: { create: [{ vmMoref: vm.moref, vmName: vm.name, vmInstanceUuid: vm.instanceUuid, status, phase: status, startedAt: at, finishedAt: at, error }] },
      },
      include: { vms: true },
    });
    await ctx.d.db.runDisk.create({
      data: { runVmId: run.vms[0]!.id, deviceKey: 2000, label: 'Hard disk 1', capacityBytes: 1n << 20n, phase: 'done', cbtUsed: disk.readMode !== null, readMode: disk.readMode, bytesRead: BigInt(disk.bytesWritten), bytesWritten: BigInt(disk.bytesWritten) },
    });
    if (status !== 'failed') {
      await ctx.d.db.restorePoint.create({
        data: { repositoryId, repoPointId: run.id, runVmId: run.vms[0]!.id, vmInstanceUuid: vm.instanceUuid!, vmName: vm.name, createdAt: at, logicalBytes: 1n << 20n },
      });
    }
    return run.id;
  };

  beforeAll(async () => {
    lab = await startLab({ port: 0 });
    const vm = (name: string) => lab.createVm({ name, disks: [{ capacityBytes: 1 << 20 }] });
    [app01, db01, web01] = await Promise.all([vm('app01'), vm('db01'), vm('web01')]);
    const vc = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'vc', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(vc.statusCode, vc.body).toBe(201);
    vcenterId = vc.json().id;
    repositoryId = (await ctx.d.db.repository.create({ data: { name: 'a', location: '/srv/a' } })).id;
    const job = await inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { name: 'nightly', vcenterId, repositoryId, schedule: '0 2 * * *', sources: [app01, db01].map((vm) => ({ moref: vm.moref, name: vm.name })) },
    });
    expect(job.statusCode, job.body).toBe(201);
    jobId = job.json().id;
    viewer = await signInAs(ctx.d, ctx.cookie, 'vera', 'viewer');
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('shows a VM no job covers as unprotected, and a covered VM without a restore point as unprotected too', async () => {
    const o = await overview('', viewer);
    const web = o.vms.find((v) => v.name === 'web01')!;
    expect(web).toMatchObject({ protected: false, unprotectedReason: 'no_job', inInventory: true, jobs: [], lastBackup: null, restorePoints: 0, nextRunAt: null, vcenterName: 'vc', instanceUuid: web01.instanceUuid });
    const app = o.vms.find((v) => v.name === 'app01')!;
    expect(app).toMatchObject({ protected: false, unprotectedReason: 'no_restore_point', jobs: [{ id: jobId, name: 'nightly' }], restorePoints: 0 });
    expect(new Date(app.nextRunAt!).getHours()).toBe(2);
    expect(o.nextRuns).toEqual([{ jobId, jobName: 'nightly', at: app.nextRunAt, vms: 2 }]);
    expect(o.last24h).toEqual({ succeeded: 0, warnings: 0, failed: 0, running: 0 });
    expect(o.inventoryProblems).toEqual([]);
  });

  it('shows the last backup of each VM (a failed one in its row), restore points and the counts of the last 24 hours', async () => {
    await backupRun(app01, 'succeeded', 30, { readMode: 'full', bytesWritten: 1000 });
    const latest = await backupRun(app01, 'succeeded', 2, { readMode: 'changed', bytesWritten: 200 });
    await backupRun(db01, 'succeeded', 5, { readMode: 'full', bytesWritten: 3000 });
    const failed = await backupRun(db01, 'failed', 1, { readMode: null, bytesWritten: 0 }, 'the snapshot could not be taken');
    await backupRun(web01, 'warning', 3, { readMode: 'full', bytesWritten: 50 }); // CBT, but no earlier point: a full read
    const o = await overview();
    const byName = (name: string) => o.vms.find((v) => v.name === name)!;
    expect(byName('app01')).toMatchObject({ protected: true, unprotectedReason: null, restorePoints: 2, lastBackup: { runId: latest, status: 'succeeded', mode: 'incremental', bytesWritten: 200, error: null } });
    expect(byName('db01')).toMatchObject({ protected: true, restorePoints: 1, lastBackup: { runId: failed, status: 'failed', mode: null, error: 'the snapshot could not be taken' } });
    // A restore point without a job covering the VM does not make it protected.
    expect(byName('web01')).toMatchObject({ protected: false, unprotectedReason: 'no_job', restorePoints: 1, lastBackup: { status: 'warning', mode: 'full', bytesWritten: 50 } });
    expect(o.last24h).toEqual({ succeeded: 2, warnings: 1, failed: 1, running: 0 });
    // The lab's own VMs are in the inventory too, none of them in a job.
    expect(o.counts).toEqual({ protected: 2, unprotected: o.total - 2, attention: 2 });
    // Unprotected first, then those needing attention, then by name; paged.
    expect(o.vms.map((v) => v.name).filter((n) => ['web01', 'db01', 'app01'].includes(n))).toEqual(['web01', 'db01', 'app01']);
    expect(o.vms.slice(-2).map((v) => v.name)).toEqual(['db01', 'app01']);
    const page = await overview(`?limit=1&offset=${o.total - 2}`);
    expect(page.total).toBe(o.total);
    expect(page.vms.map((v) => v.name)).toEqual(['db01']);
  });

  it('lists a job source its vCenter no longer has; a vCenter that stops answering is shown as it last answered, dated', async () => {
    const gone = await lab.createVm({ name: 'gone01', disks: [{ capacityBytes: 1 << 20 }] });
    const job = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'gone', vcenterId, repositoryId, sources: [{ moref: gone.moref, name: 'gone01' }] } });
    expect(job.statusCode, job.body).toBe(201);
    // A job whose VM the vCenter has since lost (written as the Director once accepted it).
    await ctx.d.db.backupJob.create({ data: { name: 'lost', vcenterId, repositoryId, sources: [{ moref: 'vm-99999', name: 'lost01' }] } });
    await lab.stop();
    const o = await overview();
    expect(o.inventoryProblems).toMatchObject([{ vcenterId, vcenterName: 'vc', asOf: expect.stringMatching(/^\d{4}-/) }]);
    expect(o.inventoryAsOf).toBe(o.inventoryProblems[0]!.asOf);
    // Checking the job's sources read the vCenter, so its last answer has gone01.
    expect(o.vms.find((v) => v.name === 'gone01')).toMatchObject({ inInventory: true, protected: false, unprotectedReason: 'no_restore_point', jobs: [{ name: 'gone' }] });
    expect(o.vms.find((v) => v.name === 'lost01')).toMatchObject({ inInventory: false, protected: false, unprotectedReason: 'no_restore_point', jobs: [{ name: 'lost' }] });
    expect(o.vms.find((v) => v.name === 'app01')).toMatchObject({ inInventory: true, protected: true, restorePoints: 2 });
  });

  it('is refused without a session and checks its query', async () => {
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/overview/protection' })).statusCode).toBe(401);
    expect((await inject({ method: 'GET', url: '/api/overview/protection?limit=0' })).statusCode).toBe(400);
  });
});
