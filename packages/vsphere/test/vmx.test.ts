import { describe, expect, it } from 'vitest';
import { INSTANT_RECOVERY_MARKER_KEY, vmxFromHardware, vmxGuestOs, type HardwareDescription } from '../src/index.ts';

const disk = (key: number, controllerKey: number, controller: HardwareDescription['disks'][number]['controller'], busNumber: number, unitNumber: number, diskMode = 'persistent') => ({
  key,
  label: `Hard disk ${key - 1999}`,
  controllerKey,
  controller,
  busNumber,
  unitNumber,
  capacityBytes: 8 * 2 ** 30,
  fileName: `[ds1] app/app_${key}.vmdk`,
  parents: [],
  thin: true,
  eagerlyScrub: false,
  diskMode,
  backing: { type: 'VirtualDiskFlatVer2BackingInfo', fileName: `[ds1] app/app_${key}.vmdk` },
});

const hw: HardwareDescription = {
  name: 'app',
  guestId: 'debian10_64Guest',
  numCpu: 4,
  numCoresPerSocket: 2,
  memoryMiB: 3072,
  firmware: 'efi',
  controllers: [
    { key: 1000, kind: 'pvscsi', type: 'ParaVirtualSCSIController', busNumber: 0 },
    { key: 1001, kind: 'lsisas', type: 'VirtualLsiLogicSASController', busNumber: 1 },
    { key: 15000, kind: 'sata', type: 'VirtualAHCIController', busNumber: 0 },
    { key: 200, kind: 'ide', type: 'VirtualIDEController', busNumber: 0 },
  ],
  disks: [disk(2000, 1000, 'pvscsi', 0, 0), disk(2001, 1001, 'lsisas', 1, 3, 'independent_persistent'), disk(16000, 15000, 'sata', 0, 1), disk(3000, 200, 'ide', 0, 1)],
  nics: [
    { key: 4000, type: 'VirtualVmxnet3', networkName: 'Prod', macAddress: '00:50:56:aa:bb:cc' },
    { key: 4001, type: 'VirtualE1000e', networkName: 'Backup' },
  ],
};

const parse = (text: string) => new Map(text.trim().split('\n').map((l) => /^(\S+) = "(.*)"$/.exec(l)!.slice(1, 3) as [string, string]));

describe('vmxFromHardware', () => {
  const files = new Map([
    [2000, 'app.vmdk'],
    [2001, 'app_1.vmdk'],
    [16000, 'app_2.vmdk'],
    [3000, 'app_3.vmdk'],
  ]);

  it('puts every disk at its controller, bus and unit, with the controllers, CPUs, memory, firmware and marker', () => {
    const v = parse(vmxFromHardware(hw, { name: 'app (recovered)', recoveryId: 'ir-7', diskFiles: files }));
    expect(v.get('displayName')).toBe('app (recovered)');
    expect(v.get('guestOS')).toBe('debian10-64');
    expect([v.get('numvcpus'), v.get('cpuid.coresPerSocket'), v.get('memSize'), v.get('firmware')]).toEqual(['4', '2', '3072', 'efi']);
    expect(v.get(INSTANT_RECOVERY_MARKER_KEY)).toBe('ir-7');
    expect([v.get('scsi0.virtualDev'), v.get('scsi1.virtualDev'), v.get('sata0.present')]).toEqual(['pvscsi', 'lsisas1068', 'TRUE']);
    expect(v.has('ide0.present')).toBe(false);
    expect([v.get('scsi0:0.fileName'), v.get('scsi1:3.fileName'), v.get('sata0:1.fileName'), v.get('ide0:1.fileName')]).toEqual(['app.vmdk', 'app_1.vmdk', 'app_2.vmdk', 'app_3.vmdk']);
    expect(v.get('scsi1:3.mode')).toBe('independent-persistent');
    expect(v.get('scsi0:0.deviceType')).toBe('scsi-hardDisk');
  });

  it('gives NICs new MAC addresses and leaves them disconnected unless asked; maps networks', () => {
    const off = parse(vmxFromHardware(hw, { name: 'a', recoveryId: 'r', diskFiles: files }));
    expect([off.get('ethernet0.virtualDev'), off.get('ethernet0.addressType'), off.get('ethernet0.startConnected'), off.has('ethernet0.address')]).toEqual(['vmxnet3', 'generated', 'FALSE', false]);
    const on = parse(vmxFromHardware(hw, { name: 'a', recoveryId: 'r', diskFiles: files, connectNics: true, networkMap: { Prod: 'DR-Prod' } }));
    expect([on.get('ethernet0.startConnected'), on.get('ethernet0.networkName'), on.get('ethernet1.networkName'), on.get('ethernet1.virtualDev')]).toEqual(['TRUE', 'DR-Prod', 'Backup', 'e1000e']);
  });

  it('leaves out disks it has no file for, and refuses a name that would break the file', () => {
    const v = parse(vmxFromHardware(hw, { name: 'a', recoveryId: 'r', diskFiles: new Map([[2000, 'app.vmdk']]) }));
    expect([...v.keys()].filter((k) => k.endsWith('.fileName'))).toEqual(['scsi0:0.fileName']);
    expect(() => vmxFromHardware(hw, { name: 'a"\nfirmware = "bios', recoveryId: 'r', diskFiles: files })).toThrow(/cannot hold quotes/);
  });

  it('maps guest ids to .vmx guest names', () => {
    expect(['debian10_64Guest', 'otherLinux64Guest', 'windows2019srv_64Guest', 'otherGuest', undefined].map(vmxGuestOs)).toEqual(['debian10-64', 'otherlinux-64', 'windows2019srv-64', 'other', 'other']);
  });
});
