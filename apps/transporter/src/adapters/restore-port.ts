/**
 * The restore engine's RestorePort over @vaultline/vsphere: one logged-in client, the restore's own session.
 * The restored VM is created from the restore point's hardware description as the backup stored it.
 */
import { createSpecFromHardware, HotAddApi, hostsMounting, newDiskChange, type HardwareDescription, type VSphereClient } from '@vaultline/vsphere';
import type { RestorePort } from '@vaultline/core';

export function restorePort(client: VSphereClient): RestorePort {
  return {
    networkTransport: client.soap.url.protocol === 'https:' ? 'nbdssl' : 'nbd',
    standaloneHost: client.isVCenter ? undefined : client.about.fullName || 'ESXi',
    async inventory() {
      const inv = await client.inventory.all();
      return { ...inv, datastores: inv.datastores.map((d) => ({ ...d, mountedOn: hostsMounting(inv, d) })) };
    },
    placementTargets: () => client.inventory.placementTargets(),
    vmPlacement: (moref) => client.vms.placement(moref),
    vm: (moref) => client.inventory.vm(moref),
    vms: () => client.inventory.vms(),
    // The hardware is what VSpherePort.snapshotHardware gave the backup, kept in the restore point.
    createVm: (hw, target) => client.vms.create(createSpecFromHardware(hw as HardwareDescription, target)),
    restoreIdOf: (moref) => client.vms.restoreIdOf(moref),
    destroyRestored: (moref, restoreId) => client.vms.destroyRestored(moref, restoreId),
    powerOn: (moref) => client.vms.powerOn(moref),
    powerOff: (moref) => client.vms.powerOff(moref),
    rename: (moref, name) => client.vms.rename(moref, name),
    async freeDiskSlot(vmMoref) {
      const devices = await client.hotadd.devicesOf(vmMoref);
      const slot = HotAddApi.chooseSlot(devices);
      return { controllerKey: slot.controller.key, unitNumber: slot.unitNumber, diskKeys: devices.disks.map((d) => d.key) };
    },
    async createDisk(vmMoref, d) {
      await client.vms.reconfigure(vmMoref, { deviceChange: [newDiskChange({ key: -300, ...d, thin: true })] });
    },
    attachForWrite: (vmMoref, fileName) => client.hotadd.attach(vmMoref, fileName, { diskMode: 'independent_persistent' }),
    detachDisk: (vmMoref, deviceKey, expectFileName) => client.hotadd.detach(vmMoref, deviceKey, { expectFileName }),
    putFile: (file, body, size) => client.files.put(file, body, { size }),
    readFileRange: (file, offset, length, into) => client.files.readRangeInto(file, offset, length, into),
  };
}
