/**
 * Disks a job leaves out, end to end (lab vCenter, real database and repository, the real handlers): a
 * 2-disk VM backed up by a job whose VM source leaves out its second disk reads and stores only the first;
 * the restore point lists the exclusion; a restore of that point makes a VM with the one disk, bit-exact.
 * A one-off backup's request leaves a disk out the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOutcome, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

describe('a backup that leaves a disk out (lab vCenter, real repository)', () => {
  let b: Bench;
  let disks: { key: number; label: string }[] = [];
  let truth0 = '';
  beforeAll(async () => {
    b = await startBench();
    const vm = await b.lab.createVm({ name: 'db-01', cbt: true, disks: [{ capacityBytes: 8 * MiB }, { capacityBytes: 16 * MiB }] });
    disks = vm.disks.map((d) => ({ key: d.key, label: d.label }));
    await b.lab.guestWrite('db-01', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text', seed: 41 }]);
    // The left-out disk holds 6 MiB of incompressible data: were it read, the point would store it.
    await b.lab.guestWrite('db-01', 1, [{ offset: 2 * MiB, length: 6 * MiB, pattern: 'random', seed: 42 }]);
    truth0 = await b.lab.diskSha256('db-01', 0);
  });
  afterAll(async () => {
    await b?.close();
  });

  /** A job on db-01 leaving out its second disk, and one run of it. */
  async function jobRun(): Promise<string> {
    const vm = await b.lab.getVm('db-01');
    const source = { moref: vm.moref, name: vm.name, instanceUuid: vm.instanceUuid, excludeDisks: [disks[1]!.key] };
    const options = { quiesce: 'off', failoverToNetwork: false, enableCbt: true, cbtSanityRate: 0, retention: { keepLast: 14, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 } };
    const job = await b.db.backupJob.create({ data: { name: 'db-01 without disk 2', vcenterId: b.vcenterId, repositoryId: b.repositoryId, sources: [source], transportMode: 'nbdssl', options } });
    const run = await b.db.jobRun.create({ data: { jobId: job.id, vms: { create: [{ vmMoref: vm.moref, vmName: vm.name, vmInstanceUuid: vm.instanceUuid }] } } });
    return run.id;
  }

  it('reads and stores only the other disk, the point lists the exclusion, and a restore of it makes a VM with that one disk, bit-exact', async () => {
    const runId = await jobRun();
    await b.runAll(runId);
    const { run, vm, point } = await runOutcome(b, runId);
    const log = (vm.log as { level: string; message: string }[]).map((l) => l.message);
    expect(run.status, `${vm.error ?? ''} ${JSON.stringify(log)}`).toBe('succeeded');
    expect(log).toContain('Hard disk 2 (16 MiB) left out by the job');
    // Only the first disk was copied: its row alone, about its 1 MiB of data read.
    expect(vm.disks.map((d) => [d.deviceKey, d.label])).toEqual([[disks[0]!.key, 'Hard disk 1']]);
    expect(Number(vm.disks[0]!.bytesRead)).toBeLessThanOrEqual(2 * MiB);
    expect(log.some((m) => m.startsWith('disk Hard disk 2'))).toBe(false);

    const repo = await b.openRepository();
    try {
      const manifest = await repo.readManifest({ vmId: point!.vmInstanceUuid, id: point!.repoPointId });
      expect(manifest.disks.map((d) => d.key)).toEqual([String(disks[0]!.key)]);
      expect(manifest.stats.newStoredBytes).toBeLessThan(2 * MiB);
      const recorded = manifest.vm as { excludedDisks: unknown; hardware: { disks: { key: number }[] } };
      expect(recorded.excludedDisks).toEqual([{ key: disks[1]!.key, label: 'Hard disk 2', capacityBytes: 16 * MiB }]);
      expect(recorded.hardware.disks.map((d) => d.key)).toEqual([disks[0]!.key]);
    } finally {
      await repo.close();
    }
    // No changeId is kept for the left-out disk (the next backup of it, if it is put back, reads it whole).
    expect(Object.keys(point!.changeIds as object)).toEqual([String(disks[0]!.key)]);
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(disks[0]!.key))).toBe(truth0);

    // The restore: the new VM has only the disk the point holds, and the log says why.
    const { runId: restoreRun, runVmId } = await b.newRestoreRun({ restorePointId: point!.id, name: 'db-01-restored', transport: 'nbdssl' });
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const restored = await b.db.jobRun.findUniqueOrThrow({ where: { id: restoreRun }, include: { vms: true } });
    const restoreLog = (restored.vms[0]!.log as { message: string }[]).map((l) => l.message);
    expect(restored.status, `${restored.vms[0]!.error ?? ''} ${JSON.stringify(restoreLog)}`).toBe('succeeded');
    expect(restoreLog).toContain('Hard disk 2 was excluded from this backup, so the restored VM does not have it');
    const newVm = await b.lab.getVm('db-01-restored');
    expect(newVm.disks.map((d) => d.capacityBytes)).toEqual([8 * MiB]);
    expect(await b.lab.diskSha256('db-01-restored', 0)).toBe(truth0);
  });

  it("a one-off backup leaves out the disks its request's VM names", async () => {
    const vm = await b.lab.getVm('db-01');
    const oneOff = {
      vcenterId: b.vcenterId,
      repositoryId: b.repositoryId,
      vm: { moref: vm.moref, name: vm.name, instanceUuid: vm.instanceUuid, excludeDisks: [disks[0]!.key] },
      transportMode: 'nbdssl',
      options: { quiesce: 'off', failoverToNetwork: false, enableCbt: true, cbtSanityRate: 0 },
    };
    const run = await b.db.jobRun.create({ data: { request: { oneOff }, vms: { create: [{ vmMoref: vm.moref, vmName: vm.name, vmInstanceUuid: vm.instanceUuid }] } } });
    await b.runAll(run.id);
    const { run: done, vm: item, point } = await runOutcome(b, run.id);
    const log = (item.log as { message: string }[]).map((l) => l.message);
    expect(done.status, `${item.error ?? ''} ${JSON.stringify(log)}`).toBe('succeeded');
    expect(log).toContain('Hard disk 1 (8 MiB) left out by the job');
    expect(item.disks.map((d) => d.deviceKey)).toEqual([disks[1]!.key]);
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(disks[1]!.key))).toBe(await b.lab.diskSha256('db-01', 1));
  });
});
