/** The lab's public types: what a lab is asked to start and what it hands back. */
import type { SoapClient } from './soap.ts';

export interface LabOptions {
  dir?: string;
  port?: number /* 0 = free port */;
  demo?: boolean;
  cbtMaxAreas?: number;
  cbtBlockSize?: number;
  san?: boolean;
  hotadd?: boolean;
  /**
   * More datastores after datastore1/2, each a tmpfs of that size (root only):
   * the inventory reports its real capacity and free space, e.g. to try a
   * restore onto a datastore that is too small.
   */
  extraDatastores?: { name: string; sizeBytes: number }[];
  /**
   * Object datastores after those: vSAN-like (`type: 'vsan'`) or vVols-like (`'vvol'`). A disk there is an
   * object: its descriptor names `vsan://…` or `vvol://…`, `/folder` has no `-flat.vmdk` for it (GET and HEAD
   * answer 404, PUT is refused) and no LUN backs it; HotAdd, CBT and export leases work as on any datastore.
   */
  objectDatastores?: { name: string; type: 'vsan' | 'vvol' }[];
  /**
   * Be a standalone ESXi host (API type HostAgent, datacenter `ha-datacenter`, one host, no cluster and no
   * vCenter instance UUID) instead of a vCenter, as an ESXi registered directly is.
   */
  esx?: boolean;
  /**
   * Hosts a client can reach directly (root: binds port 443): each host gets a loopback address of its own
   * as its name, with an HTTPS /folder there that takes vCenter's generic service tickets (one per request,
   * for that URL only) and presents a certificate of its own, whose SHA-1 thumbprint the tickets name.
   */
  directHosts?: boolean;
  /** Serve plain HTTP instead of HTTPS (to try what a client does with an HTTP-only vCenter, e.g. NBD without SSL). */
  http?: boolean;
  username?: string;
  password?: string;
}
export interface LabDiskSpec {
  capacityBytes: number;
  thin?: boolean;
  controller?: 'pvscsi' | 'lsilogic' | 'ide' | 'sata';
  datastore?: string;
}
export interface LabVmSpec {
  name: string;
  disks: LabDiskSpec[];
  cbt?: boolean;
  powerOn?: boolean;
  cpus?: number;
  memoryMiB?: number;
  guestId?: string;
  /** One vmxnet3 NIC per entry, on the network of that name (e.g. "VM Network", "DC0_DVPG0"). */
  nics?: string[];
}
export interface LabDisk {
  key: number;
  label: string;
  controller: string;
  fileName: string /* "[ds] vm/vm.vmdk" */;
  flatPath: string /* current local file */;
  capacityBytes: number;
  uuid: string;
  /** backing.changeId ("" when CBT is off or no snapshot was taken yet) */
  changeId: string;
  /** parent chain of the current backing, newest first */
  parents: string[];
}
export interface LabVm {
  name: string;
  moref: string;
  biosUuid: string;
  instanceUuid: string;
  disks: LabDisk[];
  powerState: string;
  cbt: boolean;
}
export interface WriteOp {
  offset: number;
  length: number;
  pattern: 'zeros' | 'text' | 'random';
  seed?: number;
}
export interface LabDatastore {
  name: string;
  path: string;
  naa?: string;
  lunDevice?: string;
}
export interface Lab {
  url: string /* https://127.0.0.1:PORT/sdk */;
  username: string;
  password: string;
  thumbprintSha256: string /* "AB:CD:..." colon hex of the cert's DER */;
  thumbprintSha1: string;
  certPem: string;
  datacenter: string;
  dir: string;
  byIdDir: string;
  datastores: LabDatastore[];
  proxyVm: LabVm;
  /** pid of the server process */
  pid: number;
  createVm(spec: LabVmSpec): Promise<LabVm>;
  getVm(name: string): Promise<LabVm>; // current backings
  guestWrite(vmName: string, diskIndex: number, writes: WriteOp[]): Promise<void>; // writes real bytes + records change log
  diskSha256(vmName: string, diskIndex: number, opts?: { snapshot?: string /* moref */ }): Promise<string>;
  /** From now on, quiesced snapshots of this VM fail with ApplicationQuiesceFault (or succeed again). */
  failQuiesce(vmName: string, fail: boolean): Promise<void>;
  /** With `directHosts`: the host at `address` answers `answers` more /folder requests, then 503 (-1: all again). */
  directHostAnswers(address: string, answers: number): Promise<void>;
  /** A datastore's own host list loses (or regains) a host that still lists the datastore, as a lagging vCenter shows it. */
  listDatastoreHost(datastore: string, hostMoref: string, listed: boolean): Promise<void>;
  /** Attaches (or detaches) the vSphere tag category/tag to a VM through vCenter's vAPI, creating both when missing; the tag's id. Not on a standalone ESXi lab. */
  tagVm(category: string, tag: string, vmName: string, attach?: boolean): Promise<string>;
  /** Stops (or restarts) vCenter's vAPI endpoint (tags) while SOAP keeps answering. */
  vapiDown(down: boolean): Promise<void>;
  /**
   * Publishes the local folder `dir` as the NFS export `remoteHost:remotePath` (CreateNasDatastore with that
   * remote host and path mounts it; `dir` null withdraws the export). With remoteHost 127.0.0.1/localhost an
   * absolute remotePath that is a folder is exported as itself without this call.
   */
  nasExport(remoteHost: string, remotePath: string, dir: string | null): Promise<void>;
  /** A logged-in SOAP session (the lab's private helper client). */
  soap(): Promise<SoapClient>;
  stop(): Promise<void>;
}
