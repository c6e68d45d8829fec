/**
 * A .vmx from the hardware a backup recorded, for instant recovery: ESXi registers the VM from it
 * (RegisterVM_Task) on the appliance's NFS datastore, its disks being the restore point's. Only what a VM needs
 * to boot as it was: CPUs, memory, firmware, controllers with their bus numbers, disks at their controller and
 * unit (so the guest finds its boot disk where it was), NICs of the same kinds. NICs get new MAC addresses and
 * start disconnected unless asked: the source VM may still be on the network. A marker key names the recovery,
 * so the appliance only ever removes VMs it registered.
 */
import type { ControllerKind, HardwareDescription } from './types.ts';

/** The .vmx key (seen in config.extraConfig) naming the instant recovery a VM belongs to. */
export const INSTANT_RECOVERY_MARKER_KEY = 'vaultline.instantRecovery';

export interface VmxOptions {
  /** The VM's name (displayName; also the .nvram's). */
  name: string;
  /** The instant recovery's id (the marker). */
  recoveryId: string;
  /** Each recorded disk's descriptor, by disk key, relative to the .vmx's folder. */
  diskFiles: ReadonlyMap<number, string>;
  /** Connect the NICs at power-on (default false). */
  connectNics?: boolean | undefined;
  /** Network names to use instead of the recorded ones, by recorded name. */
  networkMap?: Readonly<Record<string, string>> | undefined;
  /** virtualHW.version (default 13: ESXi 6.5 and later run it). */
  hardwareVersion?: number | undefined;
}

const SCSI_DEV: Partial<Record<ControllerKind, string>> = { pvscsi: 'pvscsi', lsilogic: 'lsilogic', lsisas: 'lsisas1068', buslogic: 'buslogic' };
const PREFIX: Partial<Record<ControllerKind, string>> = { pvscsi: 'scsi', lsilogic: 'scsi', lsisas: 'scsi', buslogic: 'scsi', sata: 'sata', nvme: 'nvme', ide: 'ide' };
const NIC_DEV: Record<string, string> = { VirtualVmxnet3: 'vmxnet3', VirtualE1000e: 'e1000e', VirtualE1000: 'e1000', VirtualVmxnet2: 'vmxnet2' };

/**
 * The .vmx guestOS for a vSphere guestId: "debian10_64Guest" → "debian10-64", "otherLinux64Guest" →
 * "otherlinux-64", "windows9Server64Guest" → "windows9server-64". ESXi re-reads the guest from the .vmx as is; an
 * id it does not know runs as "other".
 */
export function vmxGuestOs(guestId: string | undefined): string {
  if (!guestId) return 'other';
  const base = guestId.replace(/Guest$/, '').toLowerCase();
  return base.replace(/_?64$/, '-64') || 'other';
}

function quote(v: string | number | boolean): string {
  const s = typeof v === 'boolean' ? (v ? 'TRUE' : 'FALSE') : String(v);
  if (/["\n\r\0|]/.test(s)) throw new TypeError(`a .vmx value cannot hold quotes, "|", NUL or line breaks: ${JSON.stringify(s)}`);
  return `"${s}"`;
}

/** The .vmx text. Throws on a disk on a controller it cannot place, naming the disk. */
export function vmxFromHardware(hw: HardwareDescription, o: VmxOptions): string {
  const lines: [string, string | number | boolean][] = [
    ['.encoding', 'UTF-8'],
    ['config.version', 8],
    ['virtualHW.version', o.hardwareVersion ?? 13],
    ['displayName', o.name],
    ['guestOS', vmxGuestOs(hw.guestId)],
    ['memSize', hw.memoryMiB ?? 1024],
    ['numvcpus', hw.numCpu ?? 1],
    ['nvram', `${o.name}.nvram`],
    [INSTANT_RECOVERY_MARKER_KEY, o.recoveryId],
  ];
  if (hw.numCoresPerSocket && hw.numCoresPerSocket > 1) lines.push(['cpuid.coresPerSocket', hw.numCoresPerSocket]);
  if (hw.firmware === 'efi') lines.push(['firmware', 'efi']);
  const ctlByKey = new Map(hw.controllers.map((c) => [c.key, c]));
  for (const c of hw.controllers) {
    const prefix = PREFIX[c.kind];
    if (!prefix || c.kind === 'ide') continue; // the IDE controllers are built in
    lines.push([`${prefix}${c.busNumber}.present`, true]);
    const dev = SCSI_DEV[c.kind];
    if (dev) lines.push([`${prefix}${c.busNumber}.virtualDev`, dev]);
  }
  for (const d of hw.disks) {
    const file = o.diskFiles.get(d.key);
    if (file === undefined) continue;
    const ctl = ctlByKey.get(d.controllerKey);
    const kind = ctl?.kind ?? d.controller;
    const prefix = PREFIX[kind];
    if (!prefix) throw new TypeError(`disk ${d.label ?? d.key} is on a ${kind} controller, which a .vmx cannot name`);
    const slot = `${prefix}${ctl?.busNumber ?? d.busNumber}:${d.unitNumber}`;
    lines.push([`${slot}.present`, true], [`${slot}.fileName`, file]);
    if (prefix === 'scsi') lines.push([`${slot}.deviceType`, 'scsi-hardDisk']);
    if (d.diskMode.startsWith('independent')) lines.push([`${slot}.mode`, d.diskMode.replace('_', '-')]);
  }
  hw.nics.forEach((n, i) => {
    const dev = NIC_DEV[n.type];
    if (!dev) return;
    const network = (n.networkName && o.networkMap?.[n.networkName]) ?? n.networkName ?? 'VM Network';
    lines.push(
      [`ethernet${i}.present`, true],
      [`ethernet${i}.virtualDev`, dev],
      [`ethernet${i}.networkName`, network],
      [`ethernet${i}.addressType`, 'generated'],
      [`ethernet${i}.startConnected`, o.connectNics === true],
    );
  });
  return lines.map(([k, v]) => `${k} = ${quote(v)}`).join('\n') + '\n';
}
