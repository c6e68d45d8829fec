/**
 * A standalone ESXi host registered directly, with no vCenter (the lab as a HostAgent: ha-datacenter, one
 * host). Backups over the network work as against a vCenter, incrementals included, and a restore onto the
 * host is bit-exact; HotAdd needs the Transporter's VM on that same host, and says so when it is not.
 */
import { chooseTransport } from '@vaultline/core';
import { VSphereClient } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

describe('a standalone ESXi host (no vCenter)', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await startBench({ cbtMaxAreas: 3, lab: { esx: true } });
    await b.lab.createVm({ name: 'esx-app', cbt: true, powerOn: true, disks: [{ capacityBytes: 32 * MiB }, { capacityBytes: 8 * MiB, controller: 'lsilogic' }] });
    await b.lab.guestWrite('esx-app', 0, [{ offset: 0, length: 3 * MiB, pattern: 'text', seed: 1 }, { offset: 20 * MiB, length: MiB, pattern: 'random', seed: 2 }]);
    await b.lab.guestWrite('esx-app', 1, [{ offset: MiB, length: 2 * MiB, pattern: 'random', seed: 3 }]);
  });
  afterAll(async () => {
    await b?.close();
  });

  it('is what the client sees: API type HostAgent, ha-datacenter, one host, no vCenter instance UUID', async () => {
    const client = await VSphereClient.connect({ url: b.lab.url, username: b.lab.username, password: b.lab.password, thumbprintSha256: b.lab.thumbprintSha256, keepAliveMs: 0 });
    try {
      expect(client.about.apiType).toBe('HostAgent');
      expect(client.isVCenter).toBe(false);
      expect(client.about.instanceUuid ?? '').toBe('');
      const inv = await client.inventory.all();
      expect(inv.datacenters.map((d) => d.name)).toEqual(['ha-datacenter']);
      expect(inv.hosts).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('backs up over the network (full, then CBT incremental); each point reads back bit-exact, and the newest restores onto the host as a new VM, bit-exact', async () => {
    const rounds: { truth: string[]; point: { id: string; repoPointId: string; vmInstanceUuid: string } }[] = [];
    for (const round of [0, 1]) {
      if (round === 1) await b.lab.guestWrite('esx-app', 0, [{ offset: 10 * MiB + 5, length: 100_000, pattern: 'random', seed: 4 }]);
      const truth = [await b.lab.diskSha256('esx-app', 0), await b.lab.diskSha256('esx-app', 1)];
      const { runId } = await b.newRun(['esx-app'], 'nbdssl', { cbtSanityRate: 0 });
      await b.runAll(runId);
      const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: true } } } });
      const vm = run.vms[0]!;
      expect(run.status, `${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toBe('succeeded');
      expect(vm.disks.every((d) => d.transport === 'nbdssl' && d.cbtUsed)).toBe(true);
      if (round === 1) expect(vm.disks.reduce((n, d) => n + Number(d.bytesRead), 0)).toBeLessThanOrEqual(100_000 + 2 * 64 * 1024);
      const point = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: vm.id } });
      rounds.push({ truth, point });
      const port = await b.connector.portFor(b.vcenterId);
      expect(await port.findTaggedSnapshots()).toEqual([]);
    }
    const disks = (await b.lab.getVm('esx-app')).disks;
    for (const r of rounds) {
      expect(await b.restoredSha256(r.point.repoPointId, r.point.vmInstanceUuid, String(disks[0]!.key))).toBe(r.truth[0]);
      expect(await b.restoredSha256(r.point.repoPointId, r.point.vmInstanceUuid, String(disks[1]!.key))).toBe(r.truth[1]);
    }
    // A restore onto the standalone host, over the network (SAN never writes; HotAdd is not asked for here).
    const newest = rounds.at(-1)!;
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: newest.point.id, name: 'esx-app-restored', transport: 'nbdssl' });
    await b.restoreHandler({ runVmId }, { attempt: 1 });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: true } });
    expect(done.status, `${done.error ?? ''} ${JSON.stringify(done.vms[0]?.log)}`).toBe('succeeded');
    expect(await b.lab.diskSha256('esx-app-restored', 0)).toBe(newest.truth[0]);
    expect(await b.lab.diskSha256('esx-app-restored', 1)).toBe(newest.truth[1]);
  });

  it("HotAdd from a Transporter whose VM runs on another standalone host is refused with the reason", () => {
    const facts = { disk: { key: 2000, label: 'Hard disk 1', capacityBytes: MiB, fileName: '[datastore1] a/a.vmdk', datastore: 'datastore1', controller: 'pvscsi' as const }, datastoreType: 'VMFS', naaIds: [], visibleLun: null };
    const transporter = { blockDevices: true, proxyVm: null, proxyVmUuid: '4211aaaa-0000-0000-0000-000000000001', standaloneHost: 'VMware ESXi 6.5.0 build-5969303', datastoreHosts: new Map(), networkTransport: 'nbdssl' as const };
    expect(() => chooseTransport('hotadd', facts, transporter)).toThrow(
      'HotAdd: this is a standalone ESXi host (VMware ESXi 6.5.0 build-5969303), and this Transporter\'s VM (BIOS UUID 4211aaaa-0000-0000-0000-000000000001) does not run on it: without a vCenter, HotAdd needs the Transporter\'s VM on the same host as the disks (transport mode is manual: hotadd)',
    );
    expect(chooseTransport('automatic', facts, transporter).transport).toBe('nbdssl');
  });
});
