/**
 * What the backup cycle needs from the outside world, as narrow interfaces.
 * The Transporter wires them to @vaultline/vsphere, @vaultline/transports,
 * @vaultline/repository and Postgres; the cycle itself knows none of them.
 */
import type { Transport } from '@vaultline/contracts';

export interface VmDisk {
  key: number;
  label: string;
  capacityBytes: number;
  /** "[datastore] folder/disk.vmdk" */
  fileName: string;
  datastore: string;
  controller: 'pvscsi' | 'lsilogic' | 'lsisas' | 'buslogic' | 'ide' | 'sata' | 'nvme' | 'unknown';
  /** Where it is attached: the controller's bus number and the disk's unit on it (when vSphere says). */
  busNumber?: number;
  unitNumber?: number;
  uuid?: string;
  changeId?: string;
  thin?: boolean;
  diskMode?: string;
}

export interface VmInfo {
  moref: string;
  name: string;
  instanceUuid?: string;
  biosUuid?: string;
  powerState: string;
  changeTrackingEnabled: boolean;
  host?: string;
  disks: VmDisk[];
}

export interface DatastoreInfo {
  name: string;
  type: string;
  /** NAA ids of the VMFS extents (empty for NFS/vSAN). */
  naaIds: string[];
  /** The VMFS extents: each LUN's NAA id and the partition on it vSphere reports (HostScsiDiskPartition; 0 = not reported). */
  extents: { naa: string; partition: number }[];
  /** Host morefs that mount it. */
  hosts: string[];
}

export interface Area {
  start: number;
  length: number;
}

export interface VSpherePort {
  getVm(moref: string): Promise<VmInfo>;
  datastore(name: string): Promise<DatastoreInfo>;
  enableCbt(vmMoref: string): Promise<void>;
  /** Takes a snapshot tagged with the run item id; returns its moref; throws QuiesceError when quiescing failed. */
  createSnapshot(vmMoref: string, runVmId: string, quiesce: boolean, onProgress?: (percent: number) => void): Promise<string>;
  snapshotDisks(snapshotMoref: string): Promise<VmDisk[]>;
  /** The VM's hardware as the snapshot captured it (kept in the restore point to recreate the VM). */
  snapshotHardware(snapshotMoref: string): Promise<unknown>;
  /** Removes the snapshot (its changes are merged into the disks); `onProgress` gets the vCenter task's percent. */
  removeSnapshot(snapshotMoref: string, onProgress?: (percent: number) => void): Promise<void>;
  /** Every changed area of the disk since changeId ("*" = allocated), following the paging loop to capacity. */
  changedAreas(vmMoref: string, snapshotMoref: string, deviceKey: number, changeId: string, capacity: number): Promise<Area[]>;
  /** HotAdd: attach the disk file read-only to the proxy VM; returns the new device key and disk uuid. */
  attachDisk(proxyVmMoref: string, fileName: string): Promise<{ deviceKey: number; uuid: string }>;
  /**
   * Detach without any file operation (never destroys the file), only if the device still holds
   * `expectFileName`: keys are reused, so a key alone may name another disk by now.
   */
  detachDisk(proxyVmMoref: string, deviceKey: number, expectFileName: string): Promise<void>;
  findVmByBiosUuid(biosUuid: string): Promise<VmInfo | null>;
  /** Vaultline's snapshots on any VM (all, or one run item's), for the orphan sweep. */
  findTaggedSnapshots(runVmId?: string): Promise<{ vmMoref: string; vmName: string; snapshot: string; runVmId: string }[]>;
  /** Disks attached to a VM, with their backing files. */
  vmDisks(vmMoref: string): Promise<VmDisk[]>;
  /**
   * Undoes an unfinished restore from its journal row: destroys the half-restored VM (only one carrying that
   * restore's marker, by moref or found by name) and rolls an interrupted replace back.
   */
  undoRestore(target: Record<string, unknown>): Promise<{ removed: boolean; completed: boolean; done: string[] }>;
  /** Consolidates a VM's disks after a failed snapshot removal. */
  consolidate(vmMoref: string): Promise<void>;
  /**
   * Network transport: a reader of the snapshot's disk over the vCenter's HTTPS (or HTTP) interface: the
   * files its descriptor names through the datastore browser, or, where there are none (vSAN, vVols), the
   * snapshot's export lease.
   */
  openNetworkReader(disk: VmDisk, snapshotMoref: string, transport: 'nbdssl' | 'nbd', vmHost?: string): Promise<SourceReader>;
}

export interface SourceReader {
  readonly capacity: number;
  /** How the copy should read ahead of the repository writer (request size, requests in flight); a default otherwise. */
  readonly readAhead?: { segmentBytes: number; depth: number };
  /** How the disk is read, for the run log ("flat extent x-flat.vmdk", "snapshot chain of 2 seSparse links over its base"). */
  readonly describe?: string;
  /** Which way the bytes come, for the run log ("directly from ESXi host h1 …", "through vCenter (…)"). */
  readonly via?: string;
  /** What changed while reading (e.g. a fallback from the host to vCenter), logged after the copy. */
  readonly notes?: readonly string[];
  /** Buffers this reader reads fastest into (e.g. page-aligned for O_DIRECT); any Buffer otherwise. */
  allocate?(bytes: number): Buffer;
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export interface LocalDevices {
  /** Whether this Transporter can open block devices (root, /dev access). */
  canUseBlockDevices(): Promise<boolean>;
  /** The local device of a LUN, or null when it is not visible here. */
  findLun(naa: string): Promise<string | null>;
  /**
   * Before the snapshot: can the LUN's datastore be read here? Reads the partition table, finds the
   * filesystem where vSphere says it is, checks its driver is installed, then mounts it read-only, lists it
   * and unmounts it. `record` is given the cleanup descriptor before the mount, to journal it. Returns what
   * it found ("partition 1 of LUN naa.… (GPT at 1 MiB), VMFS6, mounted read-only and unmounted"); throws with
   * the reason otherwise (`leftMounted` set when even undoing the mount failed).
   */
  probeSan(naa: string, device: string, partition: number, record?: (cleanup: unknown) => Promise<void>): Promise<string>;
  /**
   * Opens the VMDK's flat extent through the LUN, read-only: through the VMFS partition `partition` (as vSphere
   * reports it; 0 = not known: the table's one VMFS partition, or the whole device when it has no table).
   * `record` is given the cleanup descriptor once there is something to undo, before the mount, to journal it.
   * `volume` says which part of the LUN was read, for the run log.
   */
  openSan(
    naa: string,
    device: string,
    partition: number,
    fileName: string,
    capacity: number,
    record?: (cleanup: unknown) => Promise<void>,
  ): Promise<SourceReader & { cleanup: unknown; volume: string }>;
  /** Waits for a hot-added disk to appear and opens it read-only. */
  openHotAdded(diskUuid: string, capacity: number): Promise<SourceReader & { device: string }>;
  waitGone(diskUuid: string): Promise<void>;
  /** Undoes a LUN mount (and partition loop device) recorded by openSan (after a crash); JournalTrustError when the row names a mount point or device that is not ours. */
  undoSan(cleanup: unknown): Promise<void>;
}

export interface TransportChoice {
  transport: Transport;
  reasons: string[];
}
