/**
 * The restore engine's RestorePort over @vaultline/vsphere: one logged-in client, the restore's own session.
 * The restored VM is created from the restore point's hardware description as the backup stored it — with
 * CreateVM, or with the same spec through an import lease (ImportVApp), whose disks are uploaded as
 * streamOptimized VMDKs: only non-zero 64 KiB grains are sent, so vSphere lands them as thin disks.
 */
import { streamOptimizedChunks } from '@vaultline/vmdk';
import { createSpecFromHardware, createVmConfig, HotAddApi, hostsMounting, newDiskChange, type ControllerKind, type HardwareDescription, type VSphereClient } from '@vaultline/vsphere';
import type { RestorePort, VmImport } from '@vaultline/core';

/** deflate level of the uploaded grains: fast (the disk's data is what matters, not the wire size). */
const IMPORT_COMPRESSION = 1;
/** Grains read and compressed per batch (4 MiB). */
const IMPORT_BATCH_GRAINS = 64;

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
    async importVm(hw, target): Promise<VmImport> {
      const spec = createSpecFromHardware(hw as HardwareDescription, target);
      const lease = await client.vms.importVm(createVmConfig(spec), target.folder, target.resourcePool, target.host);
      // The lease is kept alive with how far the uploads got (of all disks' capacity) until it is completed or aborted.
      const total = spec.disks.reduce((n, d) => n + d.capacityBytes, 0);
      let done = 0;
      lease.startKeepAlive(() => (total > 0 ? Math.min(99, (done / total) * 100) : 0));
      return {
        vmMoref: lease.vm,
        async uploadDisk(disk, index, source) {
          const device = lease.deviceFor({ controller: disk.controller as ControllerKind, busNumber: disk.busNumber, unitNumber: disk.unitNumber }, index);
          const base = done;
          const chunks = streamOptimizedChunks(
            {
              capacity: source.capacity,
              read: async (offset, length) => {
                const data = await source.read(offset, length);
                done = base + offset + length;
                return data;
              },
              allocatedExtents: () => source.extents(),
            },
            { compressionLevel: IMPORT_COMPRESSION, batchGrains: IMPORT_BATCH_GRAINS, fileName: disk.fileName.replace(/^\[[^\]]*\]\s*/, '').replace(/^.*\//, '') },
          );
          const { bytes } = await lease.upload(device, chunks);
          done = base + source.capacity;
          return { streamBytes: bytes };
        },
        complete: () => lease.complete(),
        abort: () => lease.abort(),
      };
    },
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
