/**
 * @vaultline/kvm — VMware VMs on KVM. Instant boot: QEMU runs a restore point's
 * disks straight from the repository (served over NBD) through a copy-on-write
 * overlay, then mirrors them to local storage while the guest runs. Restore to
 * KVM/Proxmox: disks converted to qcow2 or raw, with a libvirt domain and a
 * Proxmox `qm` configuration made from the recorded hardware.
 */
export { startQemu, waitForSerial, readSerial, consoleText, qemuArgs, pickAccel, findOvmf, processIdentity, isSameProcess, QEMU_BINARY, OVMF_CANDIDATES } from './qemu.ts';
export type { Accel, Firmware, DiskFormat, DiskInterface, QemuDrive, QemuForward, QemuOptions, QemuHandle, QemuExit, ProcessIdentity } from './qemu.ts';
export { QmpClient, QmpError } from './qmp.ts';
export type { QmpEvent } from './qmp.ts';
// Restore to KVM/Proxmox (restore-kvm.ts and the modules it drives).
export { restoreToKvm, diskFileName, DOMAIN_XML, NOTES_TXT, PROXMOX_SCRIPT } from './restore-kvm.ts';
export type { KvmRestoreRequest, KvmRestoreResult, KvmTarget } from './restore-kvm.ts';
export { KvmRestoreError, readRecordedHardware, guestFamily, diskOrder, planKvmRestore, mapNetworks, MAX_SATA_DISKS, MAX_SCSI_DISKS } from './hardware.ts';
export type { RecordedHardware, RecordedDisk, RecordedNic, GuestFamily, DiskBus, NicModel, KvmPlan, PlannedDisk, NetworkMap, NetworkTarget } from './hardware.ts';
export { libvirtDomainXml, libvirtName, xmlText, xmlAttr } from './libvirt.ts';
export type { ImageFormat, DomainDisk, LibvirtOptions } from './libvirt.ts';
export { proxmoxConfig, proxmoxName, proxmoxOsType } from './proxmox.ts';
export type { ProxmoxBridges, ProxmoxOptions, ProxmoxConfig } from './proxmox.ts';
export { convertDisk, imageInfo, TargetFullError } from './convert.ts';
export type { ConvertRequest, ConvertedDisk } from './convert.ts';
export { prepareDirectory, writeBundleFiles, bundleStream, checkSshTarget, deliverOverSsh } from './deliver.ts';
export type { SshDelivery, DeliveredFile } from './deliver.ts';
export { InstantBoot, instantBootHardware, sweepInstantBoots, JOURNAL_FILE } from './instant-boot.ts';
export type { InstantBootDisk, InstantBootHardware, InstantBootJournal, InstantBootOptions, InstantBootState, MirrorFormat, MirrorResult, SweepReport } from './instant-boot.ts';
