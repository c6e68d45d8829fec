export { VSphereClient, parseServiceContent } from './client.ts';
export type { ConnectOptions } from './client.ts';
export { InventoryApi, VM_PATHS, hostsMounting } from './inventory.ts';
export { SnapshotsApi, snapshotTag, runIdOf, hardwareOf } from './snapshots.ts';
export { SNAPSHOT_PREFIX } from '@vaultline/contracts';
export type { CreateSnapshotOptions, TaggedSnapshot, SnapshotDisks } from './snapshots.ts';
export { CbtApi, normalizeAreas } from './cbt.ts';
export type { ChangedAreas } from './cbt.ts';
export { HotAddApi } from './hotadd.ts';
export type { AttachOptions } from './hotadd.ts';
export { FilesApi, parseDatastorePath, flatExtentPath } from './files.ts';
export type { DatastoreFile, ServiceTicket, ReadOptions } from './files.ts';
export { LeasesApi, ExportLease, leaseDeviceOf } from './lease.ts';
export { waitLeaseReady } from './lease.ts';
export type { LeaseDeviceUrl, ReadyLease } from './lease.ts';
export { ImportLease, STREAM_VMDK_TYPE } from './import.ts';
export type { UploadOptions } from './import.ts';
export { DatastoresApi } from './datastores.ts';
export { vmxFromHardware, vmxGuestOs, INSTANT_RECOVERY_MARKER_KEY } from './vmx.ts';
export type { VmxOptions } from './vmx.ts';
export type { NasMountSpec } from './datastores.ts';
export { VmsApi, createVmConfig, createSpecFromHardware, RESTORE_MARKER_KEY } from './vms.ts';
export type { CreateVmSpec, RestoreTarget, VmFile } from './vms.ts';
export { Tasks } from './tasks.ts';
export { TaggingApi, type TaggedTree, type VSphereTag } from './tagging.ts';
export {
  parseDevices,
  deviceChangeXml,
  attachDiskChange,
  detachDiskChange,
  newDiskChange,
  controllerChange,
  nicChange,
  configSpecXml,
  freeUnits,
  CONTROLLER_TYPES,
  SCSI_KINDS,
  controllerKindOf,
} from './devices.ts';
export type { DeviceChange, ConfigSpec, ParsedDevices, NicType } from './devices.ts';
export { probeThumbprint, normalizeThumbprint } from './soap/tls.ts';
export type { Thumbprints, TrustOptions } from './soap/tls.ts';
export { SoapClient, pickVersion, KNOWN_VERSIONS } from './soap/client.ts';
export * from './soap/faults.ts';
export { forOperators, operatorText } from './advice.ts';
export type { XmlNode, MoRef, Xml } from './soap/xml.ts';
export * from './types.ts';
