import { describe, expect, it } from 'vitest';
import { ovfDescriptor } from '@vaultline/vmdk';
import { hardwareFromOvf, summariseOvf } from '@vaultline/vmdk/testing';
import { APPLIANCE_EXTRA_CONFIG, APPLIANCE_HW, applianceHardware } from '../src/appliance-ovf.ts';

describe('the appliance VM\'s OVF', () => {
  it('is the hardware a HotAdd proxy needs, as an independent XML reader sees it', () => {
    const capacity = 32 * 1024 ** 3;
    const xml = ovfDescriptor(applianceHardware(capacity), [{ diskKey: 2000, href: 'v-disk1.vmdk', capacity, size: 123 }], {
      virtualSystemType: APPLIANCE_HW.virtualSystemType,
      extraConfig: APPLIANCE_EXTRA_CONFIG,
      product: { product: 'Vaultline backup appliance', vendor: 'Vaultline', version: '9.9.9' },
    });
    const s = summariseOvf(xml);
    expect(s.system).toEqual({ id: 'Vaultline', name: 'Vaultline', osId: '1', osType: 'debian10_64Guest', virtualSystemType: 'vmx-13' });
    const hw = hardwareFromOvf(s);
    expect(hw.numCpu).toBeGreaterThanOrEqual(2);
    expect(hw.memoryMiB).toBeGreaterThanOrEqual(4096);
    expect(hw.controllers.every((c) => c.kind === 'pvscsi')).toBe(true);
    expect(hw.controllers).toHaveLength(4);
    expect(hw.disks).toEqual([{ controller: 'pvscsi0', unitNumber: 0, capacityBytes: capacity }]);
    expect(hw.nics).toEqual([{ type: 'VirtualVmxnet3', networkName: 'VM Network' }]);
    expect(s.extraConfig).toEqual([{ key: 'disk.EnableUUID', value: 'TRUE' }]);
    expect(s.product).toEqual({ Product: 'Vaultline backup appliance', Vendor: 'Vaultline', Version: '9.9.9' });
  });
});
