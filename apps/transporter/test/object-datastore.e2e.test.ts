/**
 * VMs on vSAN-like and vVols-like datastores (the lab's object datastores: their disks have no flat file
 * behind /folder, as on vSphere). The network transport reads such a disk from the snapshot's export lease,
 * a streamOptimized VMDK, and says so; SAN is refused with the reason; full and CBT incrementals restore
 * bit-exact against the lab's ground truth.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transportLabel } from '@vaultline/contracts';
import { isRoot, runOutcome as outcome, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

describe('backups of VMs on object datastores (vSAN, vVols) against the lab', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await startBench({ cbtMaxAreas: 3, lab: { objectDatastores: [{ name: 'vsanDatastore', type: 'vsan' }, { name: 'vvolDatastore', type: 'vvol' }] } });
    await b.lab.createVm({
      name: 'vsan01',
      cbt: true,
      powerOn: true,
      disks: [
        { capacityBytes: 40 * MiB, datastore: 'vsanDatastore' },
        { capacityBytes: 24 * MiB + 4096, controller: 'lsilogic', datastore: 'vsanDatastore' },
      ],
    });
    await b.lab.guestWrite('vsan01', 0, [
      { offset: 0, length: 3 * MiB, pattern: 'text', seed: 1 },
      { offset: 17 * MiB + 512, length: 2 * MiB, pattern: 'random', seed: 2 },
      { offset: 39 * MiB, length: MiB, pattern: 'random', seed: 3 },
    ]);
    await b.lab.guestWrite('vsan01', 1, [{ offset: 24 * MiB - 8192, length: 12288, pattern: 'random', seed: 4 }]);
  });
  afterAll(async () => {
    await b?.close();
  });

  it('over the network (NBDSSL full, NBD incremental): each disk comes from the snapshot\'s export lease, the log says why, CBT keeps only what changed, and every point restores bit-exact', async () => {
    const vm = await b.lab.getVm('vsan01');
    const rounds: { mode: 'nbdssl' | 'nbd'; truth: string[]; point: { id: string; vmId: string }; read: number }[] = [];
    for (const mode of ['nbdssl', 'nbd'] as const) {
      if (mode === 'nbd') await b.lab.guestWrite('vsan01', 0, [{ offset: 30 * MiB, length: 256 * 1024, pattern: 'random', seed: 5 }]);
      const truth = [await b.lab.diskSha256('vsan01', 0), await b.lab.diskSha256('vsan01', 1)];
      const { runId } = await b.newRun(['vsan01'], mode, { cbtSanityRate: 0 });
      await b.runAll(runId);
      const { run, vm: item, point } = await outcome(b, runId);
      expect(run.status, `${mode}: ${item.error ?? ''} ${JSON.stringify(item.log)}`).toBe('succeeded');
      expect(item.disks.map((d) => d.transport)).toEqual([mode, mode]);
      expect(item.disks.every((d) => d.cbtUsed)).toBe(true);
      const log = JSON.stringify(item.log);
      for (const label of ['Hard disk 1', 'Hard disk 2']) {
        expect(log).toMatch(new RegExp(`disk ${label}: reading the streamOptimized export of the snapshot \\(an export lease, device \\w+Controller\\d:\\d; datastore vsanDatastore is vSAN, whose disks are objects with no file to fetch; the whole disk is streamed, only the areas to copy are kept\\) over ${transportLabel(mode)}`));
      }
      rounds.push({ mode, truth, point: { id: point!.repoPointId, vmId: point!.vmInstanceUuid }, read: item.disks.reduce((n, d) => n + Number(d.bytesRead), 0) });
      const port = await b.connector.portFor(b.vcenterId);
      expect(await port.findTaggedSnapshots(), 'snapshots left').toEqual([]);
    }
    for (const r of rounds) {
      expect(await b.restoredSha256(r.point.id, r.point.vmId, String(vm.disks[0]!.key)), `${r.mode} disk 0`).toBe(r.truth[0]);
      expect(await b.restoredSha256(r.point.id, r.point.vmId, String(vm.disks[1]!.key)), `${r.mode} disk 1`).toBe(r.truth[1]);
    }
    // The full read the allocated data only; the incremental kept the changed 256 KiB, whatever it streamed.
    expect(rounds[0]!.read).toBeLessThan(8 * MiB);
    expect(rounds[1]!.read).toBeGreaterThanOrEqual(256 * 1024);
    expect(rounds[1]!.read).toBeLessThanOrEqual(256 * 1024 + 4 * 64 * 1024);
  });

  it('the lease reader serves reads of any size and alignment in order, restarts the stream for a read behind it, and zero-fills what no grain holds', async () => {
    const port = await b.connector.portFor(b.vcenterId);
    const vm = await b.lab.getVm('vsan01');
    const snapshot = await port.createSnapshot(vm.moref, 'lease-reader-test', false);
    try {
      const fs = await import('node:fs');
      const [, second] = await port.snapshotDisks(snapshot);
      // The snapshot's frozen file (the lab keeps it under the object): what the lease must stream.
      const truth = fs.readFileSync(b.lab.datastores.find((d) => d.name === 'vsanDatastore')!.path + '/vsan01/' + second!.fileName.split('/').pop()!.replace(/\.vmdk$/, '-flat.vmdk'));
      expect(truth.length).toBe(second!.capacityBytes);
      const reader = await port.openNetworkReader(second!, snapshot, 'nbdssl');
      const got = Buffer.alloc(truth.length, 0xee);
      // Odd sizes: reads begin and end inside grains, so a grain is split across reads.
      for (let at = 0, n = 100_003; at < truth.length; at += n) await reader.read(at, Math.min(n, truth.length - at), got.subarray(at));
      expect(got.equals(truth)).toBe(true);
      // Behind the stream: it starts again from the top.
      const again = await reader.read(24 * MiB - 10_000, 10_000);
      expect(again.equals(truth.subarray(24 * MiB - 10_000, 24 * MiB))).toBe(true);
      const early = await reader.read(100, 5000);
      expect(early.equals(truth.subarray(100, 5100))).toBe(true);
      await expect(reader.read(truth.length - 10, 20)).rejects.toThrow(/outside the disk/);
      await reader.close();
    } finally {
      await port.removeSnapshot(snapshot);
    }
  });

  it('manual SAN is refused before any snapshot, naming vSAN; automatic mode never picks SAN there and says why', async () => {
    const { runId } = await b.newRun(['vsan01'], 'san');
    await b.runAll(runId);
    const { vm: refused } = await outcome(b, runId);
    expect(refused.status).toBe('failed');
    expect(refused.error).toMatch(/datastore vsanDatastore is vSAN, whose disks are not on a LUN/);
    const port = await b.connector.portFor(b.vcenterId);
    expect(await port.findTaggedSnapshots()).toEqual([]);

    const auto = await b.newRun(['vsan01'], 'automatic', { cbtSanityRate: 0 });
    await b.runAll(auto.runId);
    const { run, vm } = await outcome(b, auto.runId);
    expect(run.status, `${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toBe('succeeded');
    for (const d of vm.disks) {
      // HotAdd where this Transporter can (root: the lab's proxy VM), else the network through the lease.
      expect(d.transport).toBe(isRoot ? 'hotadd' : 'nbdssl');
      expect((d.transportReason as string[]).join(' ')).toMatch(/SAN: datastore vsanDatastore is vSAN/);
    }
  });

  it('a vVol disk is read through the export lease too', async () => {
    await b.lab.createVm({ name: 'vvol01', cbt: true, disks: [{ capacityBytes: 16 * MiB, datastore: 'vvolDatastore' }] });
    await b.lab.guestWrite('vvol01', 0, [{ offset: MiB, length: 2 * MiB, pattern: 'random', seed: 6 }]);
    const truth = await b.lab.diskSha256('vvol01', 0);
    const { runId } = await b.newRun(['vvol01'], 'nbdssl');
    await b.runAll(runId);
    const { run, vm: item, point } = await outcome(b, runId);
    expect(run.status, `${item.error ?? ''} ${JSON.stringify(item.log)}`).toBe('succeeded');
    expect(JSON.stringify(item.log)).toContain('datastore vvolDatastore is a vVol datastore, whose disks are objects with no file to fetch');
    const vm = await b.lab.getVm('vvol01');
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(vm.disks[0]!.key))).toBe(truth);
  });
});
