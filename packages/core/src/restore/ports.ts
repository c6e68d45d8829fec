/**
 * What a restore needs from the outside world: vSphere (RestorePort) and the
 * Transporter's machine (RestoreDevices: a hot-added disk opened for writing;
 * only the empty disk a restore created itself, attached in a persistent mode,
 * is ever opened this way). The Transporter wires them to @vaultline/vsphere
 * and its block devices; the restore engine knows neither.
 */
import type { Readable } from 'node:stream';

export interface HotAddedDiskWriter {
  readonly device: string;
  readonly capacity: number;
  /** Positional write of the whole buffer. */
  write(offset: number, data: Buffer): Promise<void>;
  /** fsync, then drop the device's cached pages so later reads come from the disk itself. */
  flush(): Promise<void>;
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export interface RestoreDevices {
  canUseBlockDevices(): Promise<boolean>;
  /** Waits for a disk hot-added in a persistent mode to appear and opens it read-write. */
  openHotAddedForWrite(diskUuid: string, capacity: number): Promise<HotAddedDiskWriter>;
  waitGone(diskUuid: string): Promise<void>;
}

/** A disk as vSphere describes it, on a VM or in a restore point's hardware: where it is attached, and its file. */
export interface HardwareDisk {
  key: number;
  label?: string | undefined;
  controllerKey: number;
  controller: string;
  busNumber: number;
  unitNumber: number;
  capacityBytes: number;
  /** "[datastore] folder/disk.vmdk" */
  fileName: string;
}

/**
 * The virtual hardware a restore point keeps (what VSpherePort.snapshotHardware returned): the parts the
 * engine reads. The port gets the whole description back to create the VM from it.
 */
export interface VmHardware {
  controllers: { key: number; kind: string; busNumber: number }[];
  disks: HardwareDisk[];
  nics: { networkName?: string | undefined }[];
}

export interface RestoreVmInfo {
  moref: string;
  name: string;
  powerState: string;
  template: boolean;
  /** "[datastore] folder/vm.vmx" */
  vmPathName?: string | undefined;
  datastores: string[];
  disks: HardwareDisk[];
}

export interface RestoreInventory {
  datacenters: { vmFolder: string }[];
  clusters: { hosts: string[]; resourcePool?: string | undefined }[];
  hosts: { moref: string; name: string }[];
  datastores: {
    name: string;
    type: string;
    datacenter: string;
    /** Negative when vSphere does not say. */
    freeBytes: number;
    accessible: boolean;
    /** Host morefs that mount it: the datastore's host list and the hosts' datastore lists both count (either can lag). */
    mountedOn: string[];
  }[];
  networks: { moref: string; name: string }[];
  vms: RestoreVmInfo[];
}

export interface PlacementTargets {
  folders: { moref: string; name: string; datacenter: string; path: string }[];
  resourcePools: { moref: string; name: string; hosts: string[] }[];
}

/** Where and under which name CreateVM puts the restored VM. */
export interface NewVm {
  name: string;
  /** The marker the VM carries: only a VM with it can be destroyed by undo. */
  restoreId: string;
  folder: string;
  resourcePool: string;
  host?: string | undefined;
  datastore: string;
  /** source network name -> target network */
  networkMap: Record<string, { name: string; moref: string }>;
}

/** A file on a datastore, as the datastore interface (/folder) names it. */
export interface DatastoreFile {
  datacenter: string;
  datastore: string;
  /** path inside the datastore, e.g. "app01/app01-flat.vmdk" */
  path: string;
}

/**
 * A disk image as the engine streams it from a restore point: `read` is called in ascending, non-overlapping
 * ranges inside `extents`; everything outside them is zeros and is never read.
 */
export interface DiskImageSource {
  readonly capacity: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** Ascending ranges that may hold data (what is not in them is a hole of the restore point). */
  extents(): AsyncIterable<{ offset: number; length: number }>;
}

/**
 * A VM being created through an import lease (vSphere's ImportVApp): it exists, empty, as soon as this is
 * returned; each disk is uploaded as a thin disk (only non-zero data is sent, so it gets blocks only there),
 * then the lease is completed. Until then the VM's files may not be readable. On failure: abort, then
 * destroy the VM through its restore marker (undo.ts), as after any failed restore.
 */
export interface VmImport {
  readonly vmMoref: string;
  /**
   * Uploads `source` into the new VM's disk `disk` (`index`: its position in the hardware description's disk
   * list, the order the VM was created with). Resolves with the bytes sent over the wire once vSphere took the
   * whole disk.
   */
  uploadDisk(disk: HardwareDisk, index: number, source: DiskImageSource): Promise<{ streamBytes: number }>;
  complete(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * What a restore needs from vSphere, as narrow as the engine uses it. The Transporter implements it over
 * @vaultline/vsphere; every operation that changes an existing VM is one of the few named here.
 */
export interface RestorePort {
  /** The network transport of this vCenter: nbdssl over HTTPS, nbd over plain HTTP. */
  readonly networkTransport: 'nbdssl' | 'nbd';
  /** The product name when connected to a standalone ESXi host rather than a vCenter. */
  readonly standaloneHost: string | undefined;
  inventory(): Promise<RestoreInventory>;
  placementTargets(): Promise<PlacementTargets>;
  /** Where a VM is now: its folder, resource pool and host. */
  vmPlacement(moref: string): Promise<{ folder?: string | undefined; resourcePool?: string | undefined; host?: string | undefined }>;
  vm(moref: string): Promise<RestoreVmInfo>;
  vms(): Promise<{ moref: string; name: string }[]>;
  /** CreateVM from the restore point's hardware, carrying the restore marker; returns the new VM's moref. */
  createVm(hw: VmHardware, target: NewVm): Promise<string>;
  /**
   * The same VM (same spec, same restore marker) created through an import lease, whose disks are then written
   * over the network as thin disks (see VmImport). A port without it writes network disks in full.
   */
  importVm?(hw: VmHardware, target: NewVm): Promise<VmImport>;
  /** The restore marker a VM carries, if any. */
  restoreIdOf(moref: string): Promise<string | undefined>;
  /** Destroys the VM only when it carries the marker `restoreId`; any other VM is refused. */
  destroyRestored(moref: string, restoreId: string): Promise<void>;
  powerOn(moref: string): Promise<void>;
  powerOff(moref: string): Promise<void>;
  rename(moref: string, name: string): Promise<void>;
  /** Where a new disk can go on the VM (a free SCSI unit), and the keys of the disks it has now. */
  freeDiskSlot(vmMoref: string): Promise<{ controllerKey: number; unitNumber: number; diskKeys: number[] }>;
  /** Creates a new, empty thin disk file attached at that slot (CreateFile through ReconfigVM). */
  createDisk(vmMoref: string, disk: { controllerKey: number; unitNumber: number; fileName: string; capacityBytes: number }): Promise<void>;
  /** HotAdd for writing: attaches the disk file to the VM in independent_persistent mode; returns the new device. */
  attachForWrite(vmMoref: string, fileName: string): Promise<{ key: number; uuid?: string | undefined }>;
  /** Detaches the device, only while it still is `expectFileName`, without any file operation. */
  detachDisk(vmMoref: string, deviceKey: number, expectFileName: string): Promise<void>;
  /** Uploads a datastore file of `size` bytes (a network write). */
  putFile(file: DatastoreFile, body: Readable, size: number): Promise<void>;
  /** Reads [offset, offset + length) of a datastore file into `into`. */
  readFileRange(file: DatastoreFile, offset: number, length: number, into: Buffer): Promise<Buffer>;
}
