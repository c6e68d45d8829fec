/**
 * restoreVm / restoreDisk against in-memory FAKES of vSphere's restore port and the Transporter's block devices
 * (memory-ports.ts), from a real restore point in a tmp-dir repository: a failure or cancel mid-write undoes
 * what was done (detach, destroy the marked VM) and the journal ends empty.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { shutdownWorkerPools } from '@vaultline/repository';
import { CancelledError } from '../src/errors.ts';
import { restoreDisk } from '../src/restore/restore-disk.ts';
import { restoreVm, type RestoreVmDeps, type RestoreVmInput } from '../src/restore/restore-vm.ts';
import { FakeRestoreDevices, FakeRestorePort, MemoryJournal, MiB, PROXY, Timeline, restorePointWithHardware, seededBytes, tempRepository, type TempRepository } from './memory-ports.ts';
import { memoryLogger } from '@vaultline/logger';

const repos: TempRepository[] = [];
afterEach(async () => {
  for (const r of repos.splice(0)) await r.dispose();
});
afterAll(async () => {
  await shutdownWorkerPools();
});

/** 2 MiB and 3 MiB disks with a zero hole each (HotAdd skips zeros; the restored disk must still read them). */
function diskImages(): { key: number; bytes: Buffer }[] {
  const a = seededBytes(7, 2 * MiB);
  a.fill(0, 512 * 1024, MiB);
  const b = seededBytes(8, 3 * MiB);
  b.fill(0, 0, 256 * 1024);
  return [
    { key: 2000, bytes: a },
    { key: 2001, bytes: b },
  ];
}

async function setup() {
  const tr = await tempRepository();
  repos.push(tr);
  const images = diskImages();
  const { ref } = await restorePointWithHardware(tr.repo, images);
  const timeline = new Timeline();
  const port = new FakeRestorePort(timeline);
  const devices = new FakeRestoreDevices(port, timeline);
  const journal = new MemoryJournal(timeline);
  const runLog: string[] = [];
  const state = { cancelled: false };
  const input: RestoreVmInput = { repo: tr.repo, ref, name: 'app01-r', restoreId: 'restore-0001', placement: { resourcePool: 'Resources', folder: 'vm' } };
  const deps: RestoreVmDeps = {
    vsphere: port,
    journal,
    log: memoryLogger('core-fake-restore', 'warn').log,
    devices,
    proxy: { proxyVm: PROXY },
    runLog: (level, m) => runLog.push(`${level}: ${m}`),
    isCancelled: () => state.cancelled,
  };
  return { repo: tr.repo, ref, images, timeline, port, devices, journal, runLog, state, input, deps };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** The journal ends empty, nothing is attached to the proxy, and every cleared row had its undo happen first. */
function expectUndone(s: Setup): void {
  expect(s.journal.open.map((r) => `${r.kind} ${r.id}`)).toEqual([]);
  expect([...s.port.attached.values()]).toEqual([]);
  expect(s.port.violations).toEqual([]);
  const t = s.timeline;
  for (const row of s.journal.rows.values()) {
    const cleared = t.first(`journal.resolve ${row.kind} ${row.id}`);
    if (row.kind === 'disk_attach') {
      const { deviceKey, uuid } = row.target as { deviceKey: number; uuid: string };
      expect(t.first(new RegExp(`^restore\\.detachDisk vm-proxy ${deviceKey}$`))).toBeLessThan(cleared);
      expect(t.first(`restoreDevices.waitGone ${uuid}`)).toBeLessThan(cleared);
    }
  }
}

describe('restoreVm (against fakes of vSphere)', () => {
  it('HotAdd: both disks are written, read back and detached; the VM is kept and the journal is empty', async () => {
    const s = await setup();
    const result = await restoreVm(s.input, s.deps);
    expect(result.disks.map((d) => d.transport)).toEqual(['hotadd', 'hotadd']);
    const vm = await s.port.vm(result.vmMoref);
    expect(vm.name).toBe('app01-r');
    expect(await s.port.restoreIdOf(result.vmMoref)).toBe('restore-0001');
    for (const [i, img] of s.images.entries()) expect(s.port.diskBytes(vm.disks[i]!.fileName).equals(img.bytes)).toBe(true);
    expect(s.port.destroyed).toEqual([]);
    // The restore_vm row: added before CreateVM, cleared once the VM is in place.
    const row = [...s.journal.rows.values()].find((r) => r.kind === 'restore_vm')!;
    expect(s.timeline.first(`journal.add restore_vm ${row.id}`)).toBeLessThan(s.timeline.first('restore.createVm.call app01-r'));
    expect(row.target).toEqual({ restoreId: 'restore-0001', name: 'app01-r', vm: result.vmMoref });
    expectUndone(s);
  });

  it('a HotAdd write fails mid-disk with failover off: the disk is detached, the marked VM destroyed, the journal empty', async () => {
    const s = await setup();
    s.port.writeFaults.push({ via: 'hotadd', file: /app01-r_1\.vmdk$/, afterBytes: MiB, message: 'fake EIO writing /dev/sdd' });
    await expect(restoreVm({ ...s.input, failoverToNetwork: false }, s.deps)).rejects.toThrow('fake EIO writing /dev/sdd');

    expect(s.port.destroyed.map((d) => [d.name, d.restoreId])).toEqual([['app01-r', 'restore-0001']]);
    expect((await s.port.vms()).map((v) => v.name)).toEqual(['vaultline-proxy']);
    const attachRows = [...s.journal.rows.values()].filter((r) => r.kind === 'disk_attach');
    expect(attachRows).toHaveLength(2);
    // The VM is destroyed only after its disks were detached from the proxy, and its row cleared only after that.
    const t = s.timeline;
    const destroyedAt = t.first(/^restore\.destroyRestored /);
    for (const r of attachRows) expect(t.first(`journal.resolve disk_attach ${r.id}`)).toBeLessThan(destroyedAt);
    expect(destroyedAt).toBeLessThan(t.first(/^journal\.resolve restore_vm /));
    expect(s.devices.opened.every((d) => d.closed)).toBe(true);
    expectUndone(s);
  });

  it('a HotAdd write fails mid-disk with failover on: that disk is written over NBDSSL instead and the VM is byte-identical', async () => {
    const s = await setup();
    s.port.writeFaults.push({ via: 'hotadd', file: /app01-r\.vmdk$/, afterBytes: 256 * 1024, message: 'fake EIO writing /dev/sdc' });
    const result = await restoreVm(s.input, s.deps);
    expect(result.disks.map((d) => d.transport)).toEqual(['nbdssl', 'hotadd']);
    expect(result.disks[0]!.reasons).toContain('HotAdd failed: fake EIO writing /dev/sdc; failover to NBDSSL');
    const vm = await s.port.vm(result.vmMoref);
    for (const [i, img] of s.images.entries()) expect(s.port.diskBytes(vm.disks[i]!.fileName).equals(img.bytes)).toBe(true);
    expect(s.timeline.has('restore.putFile ds1/app01-r/app01-r-flat.vmdk')).toBe(true);
    expectUndone(s);
  });

  it('cancelled mid-write: CancelledError, the disk detached, the marked VM destroyed, the journal empty', async () => {
    const s = await setup();
    s.timeline.listener = (e) => {
      if (e.startsWith('restore.attachForWrite 3')) s.state.cancelled = true;
    };
    await expect(restoreVm(s.input, s.deps)).rejects.toBeInstanceOf(CancelledError);
    expect(s.port.destroyed.map((d) => d.name)).toEqual(['app01-r']);
    expect(s.devices.opened).toHaveLength(1);
    expectUndone(s);
  });
});

describe('restoreDisk (against fakes of vSphere)', () => {
  it('writes the disk as a new disk of an existing VM over the network and reads it back', async () => {
    const s = await setup();
    s.port.addVm({ moref: 'vm-target', name: 'db01', powerState: 'poweredOn', template: false, vmPathName: '[ds1] db01/db01.vmx', datastores: ['ds1'], disks: [{ key: 2000, controllerKey: 1000, controller: 'pvscsi', busNumber: 0, unitNumber: 0, capacityBytes: MiB, fileName: '[ds1] db01/db01.vmdk' }] });
    s.port.files.set('ds1/db01/db01-flat.vmdk', Buffer.alloc(MiB, 0x55));
    const written = await restoreDisk({ repo: s.repo, ref: s.ref, diskKey: '2001', targetVm: 'vm-target' }, { vsphere: s.port, journal: s.journal, log: s.deps.log });
    expect(written.transport).toBe('nbdssl');
    expect(s.port.diskBytes(written.fileName).equals(s.images[1]!.bytes)).toBe(true);
    expect((await s.port.vm('vm-target')).disks.map((d) => d.fileName)).toEqual(['[ds1] db01/db01.vmdk', written.fileName]);
    // Journaled from before the disk existed until it was written, then cleared.
    expect(s.journal.calls.map((c) => `${c.op} ${c.kind}`)).toEqual(['add disk_attach', 'resolve disk_attach']);
    expect([...s.journal.rows.values()].filter((r) => r.status === 'pending')).toEqual([]);
  });

  it('a network write failing mid-disk detaches the new disk again; the existing disk is untouched and its file stays', async () => {
    const s = await setup();
    s.port.addVm({ moref: 'vm-target', name: 'db01', powerState: 'poweredOn', template: false, vmPathName: '[ds1] db01/db01.vmx', datastores: ['ds1'], disks: [{ key: 2000, controllerKey: 1000, controller: 'pvscsi', busNumber: 0, unitNumber: 0, capacityBytes: MiB, fileName: '[ds1] db01/db01.vmdk' }] });
    s.port.files.set('ds1/db01/db01-flat.vmdk', Buffer.alloc(MiB, 0x55));
    s.port.writeFaults.push({ via: 'network', file: /restored/, afterBytes: MiB, message: 'fake HTTP 503 from the datastore' });
    await expect(restoreDisk({ repo: s.repo, ref: s.ref, diskKey: '2001', targetVm: 'vm-target' }, { vsphere: s.port, journal: s.journal, log: s.deps.log })).rejects.toThrow('fake HTTP 503 from the datastore');
    const vm = await s.port.vm('vm-target');
    expect(vm.disks.map((d) => d.fileName)).toEqual(['[ds1] db01/db01.vmdk']);
    expect(s.port.files.get('ds1/db01/db01-flat.vmdk')!.equals(Buffer.alloc(MiB, 0x55))).toBe(true);
    expect([...s.port.files.keys()].filter((k) => k.includes('-restored-'))).toHaveLength(1);
    expect(s.timeline.has(/^restore\.detachDisk vm-target /)).toBe(true);
    // The row named the new disk while it was attached, and is cleared once it is detached.
    const [row] = [...s.journal.rows.values()];
    expect(row).toMatchObject({ kind: 'disk_attach', target: { proxyVm: 'vm-target' } });
    expect(String(row!.target.fileName)).toMatch(/-restored-/);
    expect(row!.status).not.toBe('pending');
  });
});
