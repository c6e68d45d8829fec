/**
 * Disks a job leaves out (VmBackupInput.excludeDisks), against in-memory FAKES of vSphere, the block devices
 * and the cleanup journal (memory-ports.ts) with a real repository in a tmp dir: the left-out disk is never
 * opened or read, the restore point lists it and describes the VM without it, its changeId is not handed
 * back, and a restore of that point (fake restore port) makes a VM without it, saying why.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { memoryLogger } from '@vaultline/logger';
import { shutdownWorkerPools } from '@vaultline/repository';
import { runVmBackup } from '../src/backup/cycle.ts';
import { formatCapacity } from '../src/backup/exclusions.ts';
import { VmBackupError } from '../src/errors.ts';
import { restoreVm } from '../src/restore/restore-vm.ts';
import type { VmHardware } from '../src/restore/ports.ts';
import { FakeRestoreDevices, FakeRestorePort, MemoryJournal, MiB, PROXY, Timeline, backupDeps, backupInput, readPointDisk, tempRepository, twoDiskLab, type TempRepository } from './memory-ports.ts';

const repos: TempRepository[] = [];
async function repository(): Promise<TempRepository> {
  const r = await tempRepository();
  repos.push(r);
  return r;
}
afterEach(async () => {
  for (const r of repos.splice(0)) await r.dispose();
});
afterAll(async () => {
  await shutdownWorkerPools();
});

/** web01's hardware as a snapshot of it describes it: both disks on one PVSCSI controller. */
const HARDWARE: VmHardware = {
  controllers: [{ key: 1000, kind: 'pvscsi', busNumber: 0 }],
  disks: [
    { key: 2000, label: 'Hard disk 1', controllerKey: 1000, controller: 'pvscsi', busNumber: 0, unitNumber: 0, capacityBytes: 6 * MiB, fileName: '[ds1] web01/web01.vmdk' },
    { key: 2001, label: 'Hard disk 2', controllerKey: 1000, controller: 'pvscsi', busNumber: 0, unitNumber: 1, capacityBytes: 3 * MiB, fileName: '[ds1] web01/web01_1.vmdk' },
  ],
  nics: [{ networkName: 'VM Network' }],
};

describe('disks left out by the job (against fakes of vSphere)', () => {
  it('reads and stores only the other disk; the point lists the left-out one and its hardware omits it; no changeId for it; the run log says so first', async () => {
    const lab = twoDiskLab();
    lab.vsphere.snapshotHardware = async () => structuredClone(HARDWARE);
    const { repo } = await repository();
    const result = await runVmBackup(backupInput({ excludeDisks: [2001] }), backupDeps(lab, repo));

    expect(result.disks.map((d) => d.deviceKey)).toEqual([2000]);
    expect(lab.vsphere.readers.filter((r) => r.diskKey === 2001)).toEqual([]);
    expect([...lab.vsphere.attached.values()]).toEqual([]);
    expect(lab.diskPhases.filter((p) => p.key === 2001)).toEqual([]);
    expect(result.manifest.disks.map((d) => d.key)).toEqual(['2000']);
    const vm = result.manifest.vm as { excludedDisks: unknown; hardware: VmHardware };
    expect(vm.excludedDisks).toEqual([{ key: 2001, label: 'Hard disk 2', capacityBytes: 3 * MiB }]);
    expect(vm.hardware.disks.map((d) => d.key)).toEqual([2000]);
    expect(vm.hardware.controllers).toEqual(HARDWARE.controllers);
    // CBT is on: the kept disk's changeId is handed back, the left-out one's is not.
    expect(Object.keys(result.changeIds)).toEqual(['2000']);
    expect(result.warnings).toEqual([]);
    // Said before anything else happens to the VM.
    const messages = lab.runLog.map((l) => l.message);
    expect(messages[0]).toBe('Hard disk 2 (3 MiB) left out by the job');
    expect(messages.some((m) => /^disk Hard disk 2:/.test(m))).toBe(false);
    expect((await readPointDisk(repo, { vmId: result.manifest.vmId, id: result.manifest.id }, 2000)).equals(lab.vsphere.liveBytes('vm-1', 2000))).toBe(true);
  });

  it('a restore of that point makes a VM with the kept disk only, byte-identical, and its log says the other was excluded', async () => {
    const lab = twoDiskLab();
    lab.vsphere.snapshotHardware = async () => structuredClone(HARDWARE);
    const { repo } = await repository();
    const backedUp = await runVmBackup(backupInput({ excludeDisks: [2001] }), backupDeps(lab, repo));

    const timeline = new Timeline();
    const port = new FakeRestorePort(timeline);
    const lines: string[] = [];
    const result = await restoreVm(
      { repo, ref: { vmId: backedUp.manifest.vmId, id: backedUp.manifest.id }, name: 'web01-r', restoreId: 'restore-x1', placement: { resourcePool: 'Resources', folder: 'vm' } },
      {
        vsphere: port,
        journal: new MemoryJournal(timeline),
        log: memoryLogger('core-fake-restore', 'warn').log,
        devices: new FakeRestoreDevices(port, timeline),
        proxy: { proxyVm: PROXY },
        runLog: (level, m) => lines.push(`${level}: ${m}`),
      },
    );
    const restored = await port.vm(result.vmMoref);
    expect(restored.disks.map((d) => d.capacityBytes)).toEqual([6 * MiB]);
    expect(result.disks).toHaveLength(1);
    expect(port.diskBytes(restored.disks[0]!.fileName).equals(lab.vsphere.liveBytes('vm-1', 2000))).toBe(true);
    expect(lines).toContain('info: Hard disk 2 was excluded from this backup, so the restored VM does not have it');
  });

  it('leaving out every disk fails the VM before any snapshot, saying so', async () => {
    const lab = twoDiskLab();
    const { repo } = await repository();
    const run = runVmBackup(backupInput({ excludeDisks: [2000, 2001] }), backupDeps(lab, repo));
    await expect(run).rejects.toBeInstanceOf(VmBackupError);
    await expect(run).rejects.toThrow('the job leaves out every disk of web01 that can be backed up; nothing to back up');
    expect(lab.vsphere.snapshotsTaken).toEqual([]);
    expect(await repo.listRestorePoints()).toEqual([]);
  });

  it('a left-out key the VM does not have is a warning; both disks are backed up and nothing is listed as left out', async () => {
    const lab = twoDiskLab();
    const { repo } = await repository();
    const result = await runVmBackup(backupInput({ excludeDisks: [2005] }), backupDeps(lab, repo));
    expect(result.disks.map((d) => d.deviceKey)).toEqual([2000, 2001]);
    expect((result.manifest.vm as { excludedDisks?: unknown }).excludedDisks).toBeUndefined();
    expect(lab.runLog).toContainEqual({ level: 'warn', message: 'the job leaves out disk 2005, which web01 does not have (any more); its disks are 2000 (Hard disk 1), 2001 (Hard disk 2)' });
  });

  it('a disk left out last time and backed up now is read whole, without a warning; the kept disk is an incremental', async () => {
    const lab = twoDiskLab();
    const { repo } = await repository();
    const first = await runVmBackup(backupInput({ excludeDisks: [2001] }), backupDeps(lab, repo));
    lab.runLog.length = 0;
    const previous = {
      ref: { vmId: first.manifest.vmId, id: first.manifest.id },
      changeIds: first.changeIds,
      capacities: Object.fromEntries(first.manifest.disks.map((d) => [d.key, d.capacity])),
      suspect: false,
    };
    const second = await runVmBackup(backupInput({ runVmId: 'runvm-2', previous }), backupDeps(lab, repo));
    expect(second.warnings).toEqual([]);
    expect(second.disks.map((d) => [d.deviceKey, d.readMode])).toEqual([
      [2000, 'changed'],
      [2001, 'full'],
    ]);
    expect(lab.runLog).toContainEqual({ level: 'info', message: 'disk Hard disk 2: not in the last restore point; reading all allocated areas' });
    expect((await readPointDisk(repo, { vmId: second.manifest.vmId, id: second.manifest.id }, 2001)).equals(lab.vsphere.liveBytes('vm-1', 2001))).toBe(true);
  });

  it('capacities read the way the run log writes them', () => {
    expect([16 * 1024 * MiB, 1536 * MiB, 512 * MiB, 3 * MiB, 1000].map(formatCapacity)).toEqual(['16 GiB', '1.5 GiB', '512 MiB', '3 MiB', '1000 bytes']);
  });
});
