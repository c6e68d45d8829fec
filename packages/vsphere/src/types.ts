/** Public data types of @vaultline/vsphere. Byte sizes and offsets are numbers (all < 2^53). */
import type { MoRef } from './soap/xml.ts';

export type { MoRef };

export interface AboutInfo {
  name: string;
  fullName: string;
  version: string;
  build: string;
  apiType: 'VirtualCenter' | 'HostAgent' | string;
  apiVersion: string;
  instanceUuid?: string | undefined;
}

export interface ServiceContent {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef;
  sessionManager: MoRef;
  searchIndex?: MoRef | undefined;
  fileManager?: MoRef | undefined;
  virtualDiskManager?: MoRef | undefined;
  about: AboutInfo;
}

export interface UserSession {
  key: string;
  userName: string;
  loginTime?: string | undefined;
}

export interface Datacenter {
  moref: string;
  name: string;
  /** inventory path, e.g. "Europe/DC1" (the name for a top-level datacenter); the `dcPath` of /folder URLs */
  path: string;
  vmFolder: string;
  hostFolder: string;
  datastoreFolder: string;
}

export interface Cluster {
  moref: string;
  name: string;
  /** datacenter inventory path (see Datacenter.path) */
  datacenter: string;
  hosts: string[];
  datastores: string[];
  resourcePool?: string | undefined;
}

export interface Host {
  moref: string;
  name: string;
  datacenter: string;
  /** cluster moref, if the host is in a cluster */
  cluster?: string | undefined;
  connectionState?: string | undefined;
  powerState?: string | undefined;
  inMaintenanceMode?: boolean | undefined;
  datastores: string[];
  /** The host's hardware UUID (hardware.systemInfo.uuid): what identifies a standalone ESXi host. */
  systemUuid?: string | undefined;
}

export interface VmfsExtent {
  /** canonical LUN name, e.g. "naa.600a0980…" */
  diskName: string;
  partition: number;
}

export interface Datastore {
  moref: string;
  name: string;
  datacenter: string;
  /** "VMFS", "NFS", "NFS41", "vsan", "VVOL", … */
  type: string;
  capacityBytes: number;
  freeBytes: number;
  url?: string | undefined;
  accessible: boolean;
  vmfs?: { uuid?: string | undefined; version?: string | undefined; extents: VmfsExtent[] } | undefined;
  /** hosts that mount this datastore */
  hosts: { host: string; mounted: boolean; accessible: boolean }[];
}

/** A folder that can hold VMs (a datacenter's vmFolder or one below it). */
export interface VmFolder {
  moref: string;
  name: string;
  datacenter: string;
  /** inventory path below the datacenter's vm folder, e.g. "vm/Restores/2026" */
  path: string;
}

export interface ResourcePool {
  moref: string;
  name: string;
  datacenter: string;
  /** the cluster or standalone compute resource the pool belongs to */
  owner?: string | undefined;
  /** hosts of that compute resource */
  hosts: string[];
}

export interface Network {
  moref: string;
  name: string;
  datacenter: string;
}

export type ControllerKind = 'pvscsi' | 'lsilogic' | 'lsisas' | 'buslogic' | 'ide' | 'sata' | 'nvme' | 'other';

export interface Controller {
  key: number;
  kind: ControllerKind;
  /** vim type, e.g. ParaVirtualSCSIController */
  type: string;
  busNumber: number;
  /** unit reserved by the controller itself (SCSI: 7) */
  scsiCtlrUnitNumber?: number | undefined;
  sharedBus?: string | undefined;
}

export type DiskMode =
  | 'persistent'
  | 'nonpersistent'
  | 'undoable'
  | 'independent_persistent'
  | 'independent_nonpersistent'
  | 'append';

export interface DiskBacking {
  /** vim type of the backing, e.g. VirtualDiskFlatVer2BackingInfo */
  type: string;
  fileName: string;
  datastore?: string | undefined;
  diskMode?: DiskMode | string | undefined;
  thinProvisioned?: boolean | undefined;
  eagerlyScrub?: boolean | undefined;
  uuid?: string | undefined;
  changeId?: string | undefined;
  deltaDiskFormat?: string | undefined;
  sharing?: string | undefined;
  /** RDM only */
  compatibilityMode?: string | undefined;
  lunUuid?: string | undefined;
  parent?: DiskBacking | undefined;
}

export interface Disk {
  key: number;
  label?: string | undefined;
  controllerKey: number;
  controller: ControllerKind;
  busNumber: number;
  unitNumber: number;
  capacityBytes: number;
  fileName: string;
  /** parent chain file names, nearest first */
  parents: string[];
  thin: boolean;
  eagerlyScrub: boolean;
  diskMode: string;
  uuid?: string | undefined;
  changeId?: string | undefined;
  sharing?: string | undefined;
  backing: DiskBacking;
}

export interface Nic {
  key: number;
  type: string;
  label?: string | undefined;
  macAddress?: string | undefined;
  network?: string | undefined;
  networkName?: string | undefined;
}

export interface SnapshotTreeNode {
  moref: string;
  name: string;
  description: string;
  id: number;
  createTime: string;
  state: string;
  quiesced: boolean;
  children: SnapshotTreeNode[];
}

export interface VirtualMachine {
  moref: string;
  name: string;
  datacenter?: string | undefined;
  biosUuid?: string | undefined;
  instanceUuid?: string | undefined;
  powerState: 'poweredOn' | 'poweredOff' | 'suspended' | string;
  toolsStatus?: string | undefined;
  toolsRunningStatus?: string | undefined;
  guestId?: string | undefined;
  guestFullName?: string | undefined;
  numCpu?: number | undefined;
  memoryMiB?: number | undefined;
  template: boolean;
  host?: string | undefined;
  resourcePool?: string | undefined;
  folder?: string | undefined;
  vmPathName?: string | undefined;
  changeTrackingEnabled: boolean;
  changeTrackingSupported?: boolean | undefined;
  consolidationNeeded: boolean;
  hasSnapshots: boolean;
  currentSnapshot?: string | undefined;
  controllers: Controller[];
  disks: Disk[];
  nics: Nic[];
  datastores: string[];
}

export interface Inventory {
  datacenters: Datacenter[];
  clusters: Cluster[];
  hosts: Host[];
  datastores: Datastore[];
  networks: Network[];
  vms: VirtualMachine[];
}

/** A datacenter, cluster, host or VM folder a backup job can take as a source (see InventoryApi.tree). */
export interface InventoryContainerInfo {
  /** A tag (moref = the tag's id, path "Category/Tag") holds the VMs it is attached to, directly or through a container. */
  kind: 'datacenter' | 'cluster' | 'host' | 'folder' | 'tag';
  moref: string;
  name: string;
  /** "DC0", "DC0/DC0_C0", "DC0/DC0_C0/DC0_C0_H0", "DC0/vm/Apps" (host folders between a datacenter and a cluster included) */
  path: string;
  /** The container above it: folder → folder or datacenter; cluster → datacenter; host → cluster or datacenter; null for a datacenter. */
  parent: string | null;
  /** datacenter moref */
  datacenter: string;
}

/** Where a VM is: the containers that hold it. */
export interface VmPlacement {
  datacenter: string;
  folder?: string | undefined;
  folderPath?: string | undefined;
  host?: string | undefined;
  cluster?: string | undefined;
  /** Every container holding it (morefs): datacenter, VM folders (the datacenter's root vm folder included), cluster, host. */
  containers: string[];
}

export interface InventoryTree {
  vms: Array<VirtualMachine & { placement: VmPlacement }>;
  containers: InventoryContainerInfo[];
}

export type TaskState = 'queued' | 'running' | 'success' | 'error';

export interface TaskInfo {
  moref: string;
  state: TaskState;
  progress?: number | undefined;
  descriptionId?: string | undefined;
  entity?: string | undefined;
  cancelable?: boolean | undefined;
}

export interface WaitTaskOptions {
  /** give up after this many ms (default 30 min); the task is cancelled when `cancelOnTimeout` */
  timeoutMs?: number | undefined;
  onProgress?: ((percent: number, info: TaskInfo) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** CancelTask on timeout or abort (default true) */
  cancelOnTimeout?: boolean | undefined;
  /** for messages */
  context?: string | undefined;
}

export interface ChangedArea {
  start: number;
  length: number;
}

/** The virtual hardware of a VM or snapshot, as stored with a backup and used to recreate the VM. */
export interface HardwareDescription {
  name: string;
  guestId?: string | undefined;
  guestFullName?: string | undefined;
  numCpu?: number | undefined;
  numCoresPerSocket?: number | undefined;
  memoryMiB?: number | undefined;
  firmware?: string | undefined;
  controllers: Controller[];
  disks: Disk[];
  nics: Nic[];
}
