/**
 * Network reads straight from the ESXi host that runs the VM (a vCenter service ticket per request, the
 * host's certificate pinned by the thumbprint the ticket names) instead of through vCenter's /folder proxy,
 * when the host answers; the run log says which way each disk was read. The lab's hosts answer on loopback
 * addresses of their own (root: port 443).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

// Root only (the lab's hosts bind port 443); with CI=true vitest.config.ts refuses a run that is not root.
describe.runIf(isRoot)('network reads directly from the ESXi host', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await startBench({ lab: { directHosts: true } });
    await b.lab.createVm({ name: 'direct-app', cbt: true, powerOn: true, disks: [{ capacityBytes: 24 * MiB }] });
    await b.lab.guestWrite('direct-app', 0, [{ offset: 0, length: 6 * MiB, pattern: 'random', seed: 1 }, { offset: 20 * MiB, length: MiB, pattern: 'text', seed: 2 }]);
  });
  afterAll(async () => {
    await b?.close();
  });

  it('a full and an incremental backup read the flat extent from the VM\'s host, say so, and restore bit-exact', async () => {
    for (const round of [0, 1]) {
      if (round === 1) await b.lab.guestWrite('direct-app', 0, [{ offset: 3 * MiB + 5, length: 300_000, pattern: 'random', seed: 3 }]);
      const truth = await b.lab.diskSha256('direct-app', 0);
      const { runId } = await b.newRun(['direct-app'], 'nbdssl', { cbtSanityRate: 0 });
      await b.runAll(runId);
      const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: true } } } });
      const vm = run.vms[0]!;
      expect(run.status, `${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toBe('succeeded');
      expect(JSON.stringify(vm.log)).toMatch(
        /disk Hard disk 1: reading the flat extent direct-app-flat\.vmdk directly from ESXi host 127\.\d+\.\d+\.\d+ \(a vCenter service ticket per request\) over NBDSSL/,
      );
      expect(JSON.stringify(vm.log)).not.toContain('the rest went through vCenter');
      const point = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: vm.id } });
      const disk = (await b.lab.getVm('direct-app')).disks[0]!;
      expect(await b.restoredSha256(point.repoPointId, point.vmInstanceUuid, String(disk.key))).toBe(truth);
    }
  });

  it('a host that stops answering mid-copy: the rest of the disk comes through vCenter, the run log says so, and the point is bit-exact', async () => {
    await b.lab.createVm({ name: 'direct-fail', cbt: true, powerOn: true, disks: [{ capacityBytes: 40 * MiB }] });
    await b.lab.guestWrite('direct-fail', 0, [{ offset: 0, length: 32 * MiB, pattern: 'random', seed: 5 }]);
    const truth = await b.lab.diskSha256('direct-fail', 0);
    const soap = await b.lab.soap();
    const host = /<val[^>]*>([^<]+)<\/val>/.exec(await soap.retrieve('VirtualMachine', (await b.lab.getVm('direct-fail')).moref, ['runtime.host']))![1]!;
    const address = /<val[^>]*>([^<]+)<\/val>/.exec(await soap.retrieve('HostSystem', host, ['name']))![1]!;
    expect(address).toMatch(/^127\./);
    // 3 requests of 4 MiB answered, then 503.
    await b.lab.directHostAnswers(address, 3);
    try {
      const { runId } = await b.newRun(['direct-fail'], 'nbdssl', { cbtSanityRate: 0 });
      await b.runAll(runId);
      const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: true } } } });
      const vm = run.vms[0]!;
      expect(run.status, `${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toBe('succeeded');
      const log = JSON.stringify(vm.log);
      expect(log).toContain(`directly from ESXi host ${address}`);
      expect(log).toMatch(new RegExp(`disk Hard disk 1: reading directly from ESXi host ${address.replace(/\./g, '\\.')} failed at byte \\d+ of direct-fail/direct-fail-flat\\.vmdk \\([^)]*503[^)]*\\); the rest went through vCenter`));
      const point = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: vm.id } });
      const disk = (await b.lab.getVm('direct-fail')).disks[0]!;
      expect(await b.restoredSha256(point.repoPointId, point.vmInstanceUuid, String(disk.key))).toBe(truth);
    } finally {
      await b.lab.directHostAnswers(address, -1);
    }
  });

  it('a disk that is a snapshot chain (the VM has a user snapshot) is read from the host too, bit-exact', async () => {
    const vm = await b.lab.createVm({ name: 'direct-chain', cbt: true, powerOn: true, disks: [{ capacityBytes: 16 * MiB }] });
    await b.lab.guestWrite('direct-chain', 0, [{ offset: 0, length: 4 * MiB, pattern: 'random', seed: 7 }]);
    const soap = await b.lab.soap();
    await soap.task(`<CreateSnapshot_Task><_this type="VirtualMachine">${vm.moref}</_this><name>user</name><memory>false</memory><quiesce>false</quiesce></CreateSnapshot_Task>`);
    await b.lab.guestWrite('direct-chain', 0, [{ offset: MiB + 3, length: 100_000, pattern: 'text', seed: 8 }]);
    const truth = await b.lab.diskSha256('direct-chain', 0);
    const { runId } = await b.newRun(['direct-chain'], 'nbdssl', { cbtSanityRate: 0 });
    await b.runAll(runId);
    const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: true } });
    const item = run.vms[0]!;
    expect(run.status, `${item.error ?? ''} ${JSON.stringify(item.log)}`).toBe('succeeded');
    expect(JSON.stringify(item.log)).toMatch(/reading the snapshot chain of 1 seSparse link over its base directly from ESXi host 127\.\d+\.\d+\.\d+ \(a vCenter service ticket per request\) over NBDSSL/);
    const point = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: item.id } });
    const disk = (await b.lab.getVm('direct-chain')).disks[0]!;
    expect(await b.restoredSha256(point.repoPointId, point.vmInstanceUuid, String(disk.key))).toBe(truth);
  });
});
