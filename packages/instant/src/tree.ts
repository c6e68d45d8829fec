/**
 * What an instant recovery's NFS export holds: one folder named after the recovered VM with
 *  - each disk's flat extent (`<vm>[_n]-flat.vmdk`), read-only, read from the restore point;
 *  - each disk's descriptor (`<vm>[_n].vmdk`, createType "vmfs" as ESXi writes them) and the `.vmx` written from
 *    the recorded hardware, in the writable overlay (ESXi rewrites descriptors and the .vmx as it runs the VM).
 * The VM runs on a snapshot taken right after it is registered, so every write lands in delta files ESXi creates
 * beside the .vmx, in the overlay: the base extents are only ever read.
 */
import { descriptorForFlat, type AdapterType } from '@vaultline/vmdk';
import { vmxFromHardware, type HardwareDescription } from '@vaultline/vsphere';

/** A read-only file of the export, read from the restore point. */
export interface BaseFile {
  /** Its path in the export, e.g. "app01/app01-flat.vmdk". */
  path: string;
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

/** A restore point's disk as the export reads it. */
export interface RecoveryDisk {
  /** The disk's device key in the recorded hardware. */
  key: number;
  capacity: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export interface RecoveryTreeOptions {
  /** The recovered VM's name in vSphere. */
  name: string;
  recoveryId: string;
  connectNics?: boolean | undefined;
  networkMap?: Readonly<Record<string, string>> | undefined;
}

export interface RecoveryTree {
  /** The VM's folder in the export. */
  dir: string;
  /** The .vmx's path in the export. */
  vmx: string;
  baseFiles: BaseFile[];
  /** Files to write into the overlay before the export is served. */
  overlayFiles: { path: string; content: string }[];
}

/** A VM name as a file name: what vSphere would escape or refuse becomes "_" (the VM keeps its name). */
export function fileStem(name: string): string {
  const stem = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._-]+/, '').slice(0, 64);
  return stem || 'vm';
}

/** The export's files for a restore point's VM. Every disk of `disks` must be in the recorded hardware. */
export function recoveryTree(hw: HardwareDescription, disks: RecoveryDisk[], o: RecoveryTreeOptions): RecoveryTree {
  if (disks.length === 0) throw new Error('an instant recovery needs at least one disk of the restore point');
  const dir = fileStem(o.name);
  const diskFiles = new Map<number, string>();
  const baseFiles: BaseFile[] = [];
  const overlayFiles: { path: string; content: string }[] = [];
  disks.forEach((d, i) => {
    const recorded = hw.disks.find((x) => x.key === d.key);
    if (!recorded) throw new Error(`disk ${d.key} of the restore point is not in its recorded hardware`);
    if (d.capacity % 512 !== 0) throw new Error(`disk ${recorded.label ?? d.key} is ${d.capacity} bytes, not whole sectors`);
    const stem = i === 0 ? dir : `${dir}_${i}`;
    const flat = `${stem}-flat.vmdk`;
    baseFiles.push({ path: `${dir}/${flat}`, size: d.capacity, read: d.read });
    overlayFiles.push({
      path: `${dir}/${stem}.vmdk`,
      content: descriptorForFlat(d.capacity, flat, {
        createType: 'vmfs',
        adapterType: recorded.controller as AdapterType,
        thinProvisioned: true,
        virtualHWVersion: 13,
        ...(recorded.uuid ? { uuid: recorded.uuid } : {}),
      }),
    });
    diskFiles.set(d.key, `${stem}.vmdk`);
  });
  const vmx = `${dir}/${dir}.vmx`;
  overlayFiles.push({ path: vmx, content: vmxFromHardware(hw, { name: o.name, recoveryId: o.recoveryId, diskFiles, connectNics: o.connectNics, networkMap: o.networkMap }) });
  return { dir, vmx, baseFiles, overlayFiles };
}
