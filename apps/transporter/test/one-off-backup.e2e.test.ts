/**
 * One-off backups ("Back up now", a run with no job) through the real backup handler against the lab: the point
 * is made from the run's request, reads back bit-exact, and no job's retention prunes it; a one-off whose vCenter
 * is gone fails saying so.
 */
import { JobOptionsSchema } from '@vaultline/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOutcome, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

describe('one-off backups through the Transporter (lab vCenter, real repository)', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await startBench();
    await b.lab.createVm({ name: 'once01', cbt: true, powerOn: true, disks: [{ capacityBytes: 16 * MiB }] });
    await b.lab.guestWrite('once01', 0, [{ offset: MiB, length: 3 * MiB, pattern: 'random', seed: 17 }]);
  });
  afterAll(async () => {
    await b?.close();
  });

  const oneOffRun = async (vcenterId = b.vcenterId) => {
    const vm = await b.lab.getVm('once01');
    const run = await b.db.jobRun.create({
      data: {
        kind: 'backup',
        trigger: 'one-off',
        request: { oneOff: { vcenterId, repositoryId: b.repositoryId, vm: { moref: vm.moref, name: vm.name, instanceUuid: vm.instanceUuid }, transportMode: 'nbdssl', options: JobOptionsSchema.parse({}) } },
        vms: { create: [{ vmMoref: vm.moref, vmName: vm.name, vmInstanceUuid: vm.instanceUuid }] },
      },
    });
    await b.runAll(run.id);
    return runOutcome(b, run.id);
  };

  it('backs the VM up from the run request alone, bit-exact, saying the point is kept until deleted; a job keeping 1 point never prunes it', async () => {
    const truth = await b.lab.diskSha256('once01', 0);
    const { run, vm, point } = await oneOffRun();
    expect(run.jobId).toBeNull();
    expect(vm.status, vm.error ?? '').toBe('succeeded');
    expect((vm.log as { message: string }[]).map((l) => l.message)).toContain('A one-off backup: no job\'s retention applies, so this restore point is kept until it is deleted.');
    expect(point).not.toBeNull();
    const disk = (await b.lab.getVm('once01')).disks[0]!;
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(disk.key))).toBe(truth);

    // A job of the same VM keeping only its newest point, run twice: its own older point goes, the one-off stays.
    for (let i = 0; i < 2; i++) {
      await b.lab.guestWrite('once01', 0, [{ offset: (5 + i) * MiB, length: MiB, pattern: 'random', seed: 30 + i }]);
      const job = await b.newRun(['once01'], 'nbdssl', { retention: { ...JobOptionsSchema.parse({}).retention, keepLast: 1 } });
      await b.runAll(job.runId);
      expect((await runOutcome(b, job.runId)).vm.status).toMatch(/succeeded|warning/);
    }
    const points = await b.db.restorePoint.findMany({ where: { vmName: 'once01' } });
    const triggers = await Promise.all(points.map(async (p) => (await b.db.runVm.findUniqueOrThrow({ where: { id: p.runVmId! }, include: { run: true } })).run.trigger));
    expect(triggers.sort()).toEqual(['manual', 'one-off']);
    expect(points.find((p) => p.id === point!.id)).toBeDefined();
  }, 180_000);

  it('a one-off backup whose vCenter is no longer registered fails saying so, touching nothing', async () => {
    const { vm, point } = await oneOffRun('00000000-0000-4000-8000-000000000000');
    expect(vm.status).toBe('failed');
    expect(vm.error).toBe('the vCenter of this one-off backup is no longer registered');
    expect(point).toBeNull();
  }, 60_000);
});
