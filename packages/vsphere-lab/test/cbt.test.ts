import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';
import type { SoapClient } from '../src/soap.ts';
import { aligned, createSnapshot, fault, GiB, KiB, MiB, qcda, qcdaAll, removeSnapshot, soapDisks } from './helpers.ts';

let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab();
  soap = await lab.soap();
});
afterAll(async () => {
  await lab?.stop();
});

describe('QueryChangedDiskAreas', () => {
  it('changeId "*" returns the allocated areas of a thin disk, 64 KiB aligned', async () => {
    const vm = await lab.createVm({ name: 'cbt-star', disks: [{ capacityBytes: 256 * MiB }], cbt: true });
    await lab.guestWrite('cbt-star', 0, [
      { offset: 0, length: 100, pattern: 'text' },
      { offset: 10 * MiB + 5, length: 200 * KiB, pattern: 'random', seed: 2 },
      { offset: 200 * MiB, length: 4096, pattern: 'zeros' },
    ]);
    const snap = await createSnapshot(soap, vm.moref);
    const r = await qcda(soap, vm.moref, snap, vm.disks[0]!.key, 0, '*');
    expect(r.startOffset).toBe(0);
    expect(r.length).toBe(256 * MiB);
    for (const a of r.areas) {
      expect(a.start % (64 * KiB)).toBe(0);
      expect(a.length % (64 * KiB)).toBe(0);
    }
    // Every written byte is covered, and nothing far from the writes is reported.
    const covers = (off: number, len: number) => r.areas.some((a) => a.start <= off && off + len <= a.start + a.length);
    expect(covers(0, 100)).toBe(true);
    expect(covers(10 * MiB + 5, 200 * KiB)).toBe(true);
    expect(covers(200 * MiB, 4096)).toBe(true);
    const total = r.areas.reduce((n, a) => n + a.length, 0);
    expect(total).toBeLessThanOrEqual(3 * 64 * KiB + 256 * KiB + 64 * KiB);
    expect(r.areas.some((a) => a.start >= 20 * MiB && a.start < 200 * MiB)).toBe(false);
  });

  it("a snapshot's changeId returns exactly the areas written between two snapshots, and not writes after the later one", async () => {
    const vm = await lab.createVm({ name: 'cbt-incr', disks: [{ capacityBytes: 1 * GiB }], cbt: true, powerOn: true });
    const key = vm.disks[0]!.key;
    await lab.guestWrite('cbt-incr', 0, [{ offset: 0, length: 1 * MiB, pattern: 'text' }]);
    const s1 = await createSnapshot(soap, vm.moref, 'full');
    const [d1] = await soapDisks(soap, 'VirtualMachineSnapshot', s1);
    expect(d1!.changeId).toMatch(/^52( [0-9a-f]{2}){7}-[0-9a-f]{2}( [0-9a-f]{2}){7}\/\d+$/);
    await removeSnapshot(soap, s1); // a backup removes its snapshot; the changeId stays valid

    await lab.guestWrite('cbt-incr', 0, [
      { offset: 20 * MiB, length: 128 * KiB, pattern: 'random', seed: 3 },
      { offset: 1000, length: 10, pattern: 'text', seed: 4 },
      { offset: 700 * MiB + 100, length: 64 * KiB, pattern: 'random', seed: 5 }, // straddles two blocks
    ]);
    const s2 = await createSnapshot(soap, vm.moref, 'incr');
    await lab.guestWrite('cbt-incr', 0, [{ offset: 500 * MiB, length: 1 * MiB, pattern: 'random', seed: 6 }]); // after s2

    const r = await qcda(soap, vm.moref, s2, key, 0, d1!.changeId);
    expect(r.areas).toEqual([aligned(0, 1010), aligned(20 * MiB, 128 * KiB), aligned(700 * MiB + 100, 64 * KiB)]);
    expect(r.areas.some((a) => a.start === 500 * MiB)).toBe(false);

    // The next incremental (from s2's changeId) sees only the write made after s2.
    const [d2] = await soapDisks(soap, 'VirtualMachineSnapshot', s2);
    const s3 = await createSnapshot(soap, vm.moref, 'incr2');
    const r3 = await qcda(soap, vm.moref, s3, key, 0, d2!.changeId);
    expect(r3.areas).toEqual([{ start: 500 * MiB, length: 1 * MiB }]);
    // Nothing changed between a snapshot and itself.
    expect((await qcda(soap, vm.moref, s3, key, 0, (await soapDisks(soap, 'VirtualMachineSnapshot', s3))[0]!.changeId)).areas).toEqual([]);
    await removeSnapshot(soap, s3);
    await removeSnapshot(soap, s2);
  });

  it('startOffset clips the reply and the reply length reaches the end of the disk', async () => {
    const vm = await lab.createVm({ name: 'cbt-offset', disks: [{ capacityBytes: 64 * MiB }], cbt: true });
    await lab.guestWrite('cbt-offset', 0, [
      { offset: 1 * MiB, length: 4096, pattern: 'random' },
      { offset: 40 * MiB, length: 4096, pattern: 'random' },
    ]);
    const snap = await createSnapshot(soap, vm.moref);
    const r = await qcda(soap, vm.moref, snap, vm.disks[0]!.key, 32 * MiB, '*');
    expect(r).toEqual({ startOffset: 32 * MiB, length: 32 * MiB, areas: [{ start: 40 * MiB, length: 64 * KiB }] });
  });

  it('a thick disk reports its whole capacity as allocated for "*"', async () => {
    const vm = await lab.createVm({ name: 'cbt-thick', disks: [{ capacityBytes: 32 * MiB, thin: false }], cbt: true });
    const snap = await createSnapshot(soap, vm.moref);
    const r = await qcda(soap, vm.moref, snap, vm.disks[0]!.key, 0, '*');
    expect(r.areas).toEqual([{ start: 0, length: 32 * MiB }]);
  });

  it('snapshots of a VM with CBT off carry no changeId, and QueryChangedDiskAreas faults with NotSupported', async () => {
    const vm = await lab.createVm({ name: 'cbt-off', disks: [{ capacityBytes: 32 * MiB }], cbt: false });
    await lab.guestWrite('cbt-off', 0, [{ offset: 0, length: 4096, pattern: 'random' }]);
    const snap = await createSnapshot(soap, vm.moref);
    expect((await soapDisks(soap, 'VirtualMachineSnapshot', snap))[0]!.changeId).toBe('');
    const f = await fault(qcda(soap, vm.moref, snap, vm.disks[0]!.key, 0, '*'));
    expect(f.faultType).toBe('NotSupported');
  });

  it('bad changeId, device key and startOffset fault with InvalidArgument; a bad snapshot with ManagedObjectNotFound', async () => {
    const vm = await lab.createVm({ name: 'cbt-faults', disks: [{ capacityBytes: 32 * MiB }], cbt: true });
    const key = vm.disks[0]!.key;
    const snap = await createSnapshot(soap, vm.moref);
    const good = (await soapDisks(soap, 'VirtualMachineSnapshot', snap))[0]!.changeId;
    for (const bad of ['bogus', 'bogus/1', `${good.split('/')[0]}/999`, '52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/0']) {
      const f = await fault(qcda(soap, vm.moref, snap, key, 0, bad));
      expect(f.faultType).toBe('InvalidArgument');
      expect(f.xml).toContain('<invalidProperty>changeId</invalidProperty>');
    }
    const fk = await fault(qcda(soap, vm.moref, snap, key + 12345, 0, '*'));
    expect(fk.faultType).toBe('InvalidArgument');
    expect(fk.xml).toContain('<invalidProperty>deviceKey</invalidProperty>');
    const fo = await fault(qcda(soap, vm.moref, snap, key, 32 * MiB, '*'));
    expect(fo.xml).toContain('<invalidProperty>startOffset</invalidProperty>');
    const fs = await fault(qcda(soap, vm.moref, 'snapshot-999999', key, 0, '*'));
    expect(fs.faultType).toBe('ManagedObjectNotFound');
  });

  it('turning CBT off and on again invalidates older changeIds', async () => {
    const vm = await lab.createVm({ name: 'cbt-reset', disks: [{ capacityBytes: 32 * MiB }], cbt: true });
    const s1 = await createSnapshot(soap, vm.moref);
    const old = (await soapDisks(soap, 'VirtualMachineSnapshot', s1))[0]!.changeId;
    await removeSnapshot(soap, s1);
    for (const on of [false, true]) {
      await soap.task(
        `<ReconfigVM_Task><_this type="VirtualMachine">${vm.moref}</_this><spec><changeTrackingEnabled>${on}</changeTrackingEnabled></spec></ReconfigVM_Task>`,
      );
    }
    const s2 = await createSnapshot(soap, vm.moref);
    const f = await fault(qcda(soap, vm.moref, s2, vm.disks[0]!.key, 0, old));
    expect(f.faultType).toBe('InvalidArgument');
  });
});

describe('QueryChangedDiskAreas paging', () => {
  let small: Lab;
  beforeAll(async () => {
    small = await startLab({ cbtMaxAreas: 2 });
  });
  afterAll(async () => {
    await small?.stop();
  });

  it('with cbtMaxAreas=2 a reply covers less than the rest of the disk, and a client loop still gets every area', async () => {
    const s = await small.soap();
    const vm = await small.createVm({ name: 'paging', disks: [{ capacityBytes: 128 * MiB }], cbt: true });
    const offsets = [0, 3 * MiB, 9 * MiB, 27 * MiB, 81 * MiB, 100 * MiB];
    await small.guestWrite('paging', 0, offsets.map((offset, i) => ({ offset, length: 4096, pattern: 'random' as const, seed: i })));
    const snap = await createSnapshot(s, vm.moref);
    const first = await qcda(s, vm.moref, snap, vm.disks[0]!.key, 0, '*');
    expect(first.areas).toHaveLength(2);
    expect(first.length).toBe(3 * MiB + 64 * KiB);
    expect(first.length).toBeLessThan(128 * MiB);
    const all = await qcdaAll(s, vm.moref, snap, vm.disks[0]!.key, 128 * MiB, '*');
    expect(all.calls).toBe(3); // 2 + 2 + 2 areas; only the last reply reaches the end
    expect(all.areas).toEqual(offsets.map((o) => ({ start: o, length: 64 * KiB })));
  });
});
