/**
 * A VM that already has user snapshots, as many real ones do: its disks are chains of ESXi delta links
 * (seSparse on the VMFS6-like datastore1, vmfsSparse on the VMFS5-like datastore2), which the lab now
 * writes in those formats. The backup's own snapshot freezes the newest link; every transport must read
 * the disk as that chain composes it (ground truth: the lab's own image of the disk, which qemu-img agrees
 * with in the lab's tests), and leave the user's snapshots as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transportLabel } from '@vaultline/contracts';
import { isRoot, runOutcome as outcome, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;

describe('backups of a VM with two user snapshots (disks are delta chains)', () => {
  let b: Bench;
  let userSnapshots: string[];
  const snapshotTree = async () => {
    const soap = await b.lab.soap();
    const xml = await soap.retrieve('VirtualMachine', (await b.lab.getVm('chained')).moref, ['snapshot']);
    return [...xml.matchAll(/<snapshot type="VirtualMachineSnapshot">([^<]+)<\/snapshot>/g)].map((m) => m[1]!).sort();
  };
  beforeAll(async () => {
    b = await startBench({ cbtMaxAreas: 3 });
    const vm = await b.lab.createVm({
      name: 'chained',
      cbt: true,
      powerOn: true,
      disks: [
        { capacityBytes: 40 * MiB, datastore: 'datastore1' },
        { capacityBytes: 24 * MiB, controller: 'lsilogic', datastore: 'datastore2' },
      ],
    });
    const soap = await b.lab.soap();
    const snapshot = (name: string) =>
      soap.task(`<CreateSnapshot_Task><_this type="VirtualMachine">${vm.moref}</_this><name>${name}</name><memory>false</memory><quiesce>false</quiesce></CreateSnapshot_Task>`);
    await b.lab.guestWrite('chained', 0, [{ offset: 0, length: 4 * MiB, pattern: 'text', seed: 1 }, { offset: 30 * MiB, length: 2 * MiB, pattern: 'random', seed: 2 }]);
    await b.lab.guestWrite('chained', 1, [{ offset: MiB, length: 3 * MiB, pattern: 'random', seed: 3 }]);
    userSnapshots = [await snapshot('before upgrade')];
    // Unaligned writes into the first link: its grains take the rest from the base.
    await b.lab.guestWrite('chained', 0, [{ offset: 2 * MiB + 100, length: 300_000, pattern: 'random', seed: 4 }]);
    await b.lab.guestWrite('chained', 1, [{ offset: 2 * MiB + 7, length: 9_000, pattern: 'text', seed: 5 }]);
    userSnapshots.push(await snapshot('before patch'));
    await b.lab.guestWrite('chained', 0, [{ offset: 31 * MiB, length: 64 * 1024, pattern: 'zeros' }, { offset: 39 * MiB, length: MiB, pattern: 'random', seed: 6 }]);
    await b.lab.guestWrite('chained', 1, [{ offset: 23 * MiB, length: 4096, pattern: 'random', seed: 7 }]);
    userSnapshots.sort();
    expect((await b.lab.getVm('chained')).disks.map((d) => d.parents.length)).toEqual([2, 2]);
  });
  afterAll(async () => {
    await b?.close();
  });

  const modes = (isRoot ? ['nbdssl', 'nbd', 'hotadd', 'san'] : ['nbdssl', 'nbd']) as ('nbdssl' | 'nbd' | 'hotadd' | 'san')[];

  it(`each mode (${modes.join(', ')}) reads the composed chain: every restore point is bit-exact, the user's snapshots stay, no snapshot of ours is left`, async () => {
    for (const [i, mode] of modes.entries()) {
      // A change per round, in the newest link, so each round copies through that mode.
      await b.lab.guestWrite('chained', 0, [{ offset: 10 * MiB + i * 4096, length: 4096, pattern: 'random', seed: 10 + i }]);
      const truth = [await b.lab.diskSha256('chained', 0), await b.lab.diskSha256('chained', 1)];
      const { runId } = await b.newRun(['chained'], mode, { cbtSanityRate: 0 });
      await b.runAll(runId);
      const { run, vm, point } = await outcome(b, runId);
      expect(run.status, `${mode}: ${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toBe('succeeded');
      expect(vm.disks.map((d) => d.transport)).toEqual([mode, mode]);
      const log = JSON.stringify(vm.log);
      if (mode === 'nbd' || mode === 'nbdssl') {
        // The lab's hosts have names that do not resolve here: the chain's bytes come through vCenter, and the log says why.
        expect(log).toMatch(new RegExp(`disk Hard disk 1: reading the snapshot chain of 2 seSparse links over its base through vCenter \\(host name DC0_C0_H\\d does not resolve here\\) over ${transportLabel(mode)}`));
        expect(log).toMatch(new RegExp(`disk Hard disk 2: reading the snapshot chain of 2 vmfsSparse links over its base through vCenter \\(host name DC0_C0_H\\d does not resolve here\\) over ${transportLabel(mode)}`));
      }
      const disks = (await b.lab.getVm('chained')).disks;
      expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(disks[0]!.key)), `${mode} disk 1`).toBe(truth[0]);
      expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(disks[1]!.key)), `${mode} disk 2`).toBe(truth[1]);
      expect(await snapshotTree(), `${mode}: the user's snapshots`).toEqual(userSnapshots);
      const port = await b.connector.portFor(b.vcenterId);
      expect(await port.findTaggedSnapshots()).toEqual([]);
      expect(disks.map((d) => d.parents.length), `${mode}: the chain is as the user left it`).toEqual([2, 2]);
    }
  });

  it('an incremental over the chain reads what CBT says changed and restores bit-exact', async () => {
    await b.lab.guestWrite('chained', 0, [{ offset: 5 * MiB + 3, length: 200_000, pattern: 'random', seed: 30 }]);
    await b.lab.guestWrite('chained', 1, [{ offset: 12 * MiB, length: 64 * 1024, pattern: 'random', seed: 31 }]);
    const truth = [await b.lab.diskSha256('chained', 0), await b.lab.diskSha256('chained', 1)];
    const { runId } = await b.newRun(['chained'], 'nbdssl', { cbtSanityRate: 0 });
    await b.runAll(runId);
    const { run, vm, point } = await outcome(b, runId);
    expect(run.status, `${vm.error ?? ''} ${JSON.stringify(vm.log)}`).toBe('succeeded');
    expect(vm.disks.every((d) => d.cbtUsed)).toBe(true);
    const read = vm.disks.reduce((n, d) => n + Number(d.bytesRead), 0);
    expect(read).toBeGreaterThanOrEqual(200_000 + 64 * 1024);
    expect(read).toBeLessThanOrEqual(200_000 + 64 * 1024 + 6 * 64 * 1024);
    const disks = (await b.lab.getVm('chained')).disks;
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(disks[0]!.key))).toBe(truth[0]);
    expect(await b.restoredSha256(point!.repoPointId, point!.vmInstanceUuid, String(disks[1]!.key))).toBe(truth[1]);
  });
});
