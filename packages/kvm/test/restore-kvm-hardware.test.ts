/**
 * Reading the recorded hardware of a restore point defensively, and the plan made from it: guest
 * family → bus and NIC model, boot disk first, disks the point does not hold, what NOTES says.
 */
import { describe, expect, it } from 'vitest';
import { diskOrder, guestFamily, KvmRestoreError, planKvmRestore, readRecordedHardware } from '../src/hardware.ts';
import { manifestOf, recordedVm } from './restore-kvm-fixtures.ts';

const GiB = 2 ** 30;

describe('recorded hardware', () => {
  it('reads what a backup records (manifest.vm.hardware) and a bare HardwareDescription alike', () => {
    const vm = recordedVm({ numCpu: 6, numCoresPerSocket: 3, memoryMiB: 3072, firmware: 'efi' });
    const a = readRecordedHardware(vm);
    expect(a).toMatchObject({ name: 'app01', numCpu: 6, numCoresPerSocket: 3, memoryMiB: 3072, firmware: 'efi', biosUuid: '4212a1b2-c3d4-e5f6-0718-293a4b5c6d7e' });
    expect(a.disks).toEqual([{ key: 2000, label: 'Hard disk 1', controller: 'pvscsi', busNumber: 0, unitNumber: 0, capacityBytes: GiB }]);
    expect(a.nics).toEqual([{ label: 'Network adapter 1', macAddress: '00:50:56:aa:bb:01', networkName: 'VM Network' }]);
    const b = readRecordedHardware(vm.hardware);
    expect({ ...b, biosUuid: a.biosUuid }).toEqual(a);
    expect(b.biosUuid).toBeUndefined();
  });

  it('names every missing or bad field at once', () => {
    const vm = recordedVm({});
    const hw = vm.hardware as Record<string, unknown>;
    delete hw.numCpu;
    hw.memoryMiB = -1;
    hw.numCoresPerSocket = 0;
    hw.firmware = 'coreboot';
    (hw.disks as Array<Record<string, unknown>>)[0]!.capacityBytes = undefined;
    const err = (() => {
      try {
        readRecordedHardware(vm, 'restore point X');
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(KvmRestoreError);
    expect(err?.message).toContain('restore point X');
    for (const part of ['numCpu is undefined', 'memoryMiB is -1', 'numCoresPerSocket is 0', 'firmware is "coreboot"', 'disks[0] (Hard disk 1) lacks capacityBytes']) expect(err?.message).toContain(part);
  });

  it('refuses a point without any description, and a topology that does not divide', () => {
    expect(() => readRecordedHardware(null)).toThrow(/no VM description/);
    expect(() => readRecordedHardware({ name: 'x', moref: 'vm-1' })).toThrow(/manifest.vm.hardware is missing/);
    expect(() => readRecordedHardware(recordedVm({ numCpu: 3, numCoresPerSocket: 2 }))).toThrow(/numCoresPerSocket 2 does not divide numCpu 3/);
  });

  it('guest family from the guestId, then the full name', () => {
    for (const id of ['ubuntu64Guest', 'debian12_64Guest', 'rhel9_64Guest', 'centos8_64Guest', 'otherLinux64Guest', 'other5xLinux64Guest', 'sles15_64Guest', 'oracleLinux8_64Guest', 'amazonlinux3_64Guest', 'rockylinux_64Guest']) {
      expect([id, guestFamily(id)]).toEqual([id, 'linux']);
    }
    for (const id of ['windows9_64Guest', 'windows2019srv_64Guest', 'winNetStandardGuest', 'windows11_64Guest']) expect([id, guestFamily(id)]).toEqual([id, 'windows']);
    expect(guestFamily('freebsd13_64Guest')).toBe('unknown');
    expect(guestFamily('otherGuest64')).toBe('unknown');
    expect(guestFamily(undefined, 'Microsoft Windows 10 (64-bit)')).toBe('windows');
    expect(guestFamily('', 'Red Hat Enterprise Linux 9')).toBe('linux');
  });

  it('disk order: SCSI before SATA, NVMe and IDE, then bus, then unit', () => {
    const d = (controller: string, busNumber: number, unitNumber: number, key: number) => ({ key, controller, busNumber, unitNumber, capacityBytes: GiB });
    const order = diskOrder([d('ide', 0, 0, 1), d('sata', 0, 0, 2), d('pvscsi', 1, 0, 3), d('pvscsi', 0, 2, 4), d('lsilogic', 0, 0, 5), d('nvme', 0, 0, 6)]);
    expect(order.map((x) => x.key)).toEqual([4, 3, 5, 2, 6, 1]);
  });
});

describe('restore plan', () => {
  it('Linux → virtio-scsi + virtio, with a plain note; Windows → SATA + e1000e; unknown → SATA said plainly', () => {
    const linux = planKvmRestore(manifestOf(recordedVm({ guestId: 'debian11_64Guest' })));
    expect([linux.family, linux.bus, linux.nicModel]).toEqual(['linux', 'virtio-scsi', 'virtio']);
    expect(linux.notes.join('\n')).toMatch(/initramfs/);
    const win = planKvmRestore(manifestOf(recordedVm({ guestId: 'windows9_64Guest' })));
    expect([win.family, win.bus, win.nicModel]).toEqual(['windows', 'sata', 'e1000e']);
    expect(win.notes.join('\n')).toMatch(/SATA first boot.*No virtio driver was injected/s);
    const w7 = planKvmRestore(manifestOf(recordedVm({ guestId: 'windows7Server64Guest' })));
    expect([w7.bus, w7.nicModel]).toEqual(['sata', 'e1000']);
    const w2003 = planKvmRestore(manifestOf(recordedVm({ guestId: 'winNetStandardGuest' })));
    expect(w2003.notes.join('\n')).toContain('no AHCI driver of their own');
    const other = planKvmRestore(manifestOf(recordedVm({ guestId: 'solaris11_64Guest', guestFullName: 'Oracle Solaris 11' })));
    expect([other.family, other.bus, other.nicModel]).toEqual(['unknown', 'sata', 'e1000e']);
    expect(other.notes.join('\n')).toMatch(/Unknown guest OS \(Oracle Solaris 11\).*Whether it boots is not known/s);
  });

  it('skips disks the point does not hold, with a note, and keeps the boot disk first', () => {
    const vm = recordedVm({ disks: [['pvscsi', 0, 1, GiB], ['pvscsi', 0, 0, 2 * GiB], ['pvscsi', 0, 2, 3 * GiB]] });
    const plan = planKvmRestore(manifestOf(vm, ['2000', '2001']));
    expect(plan.disks.map((d) => [d.diskKey, d.index])).toEqual([
      ['2001', 0],
      ['2000', 1],
    ]);
    expect(plan.notes.join('\n')).toContain('Disk Hard disk 3 is not in this restore point');
    expect(plan.notes.join('\n')).toContain('Boot disk: Hard disk 2 (pvscsi 0:0 on VMware)');
    expect(() => planKvmRestore(manifestOf(vm, []))).toThrow(/holds none of the recorded disks/);
  });

  it('a bus chosen by the admin wins and is said', () => {
    const plan = planKvmRestore(manifestOf(recordedVm({ guestId: 'windows9_64Guest' })), { bus: 'virtio-scsi' });
    expect(plan.bus).toBe('virtio-scsi');
    expect(plan.notes.join('\n')).toContain('The disk bus was set to virtio-scsi on request instead of sata.');
  });
});
