/**
 * A Proxmox VE VM for a restore to KVM: the `/etc/pve/qemu-server/<vmid>.conf` text and the commands
 * that import the converted disks, made from the restore plan (hardware.ts).
 *
 * Option names and values follow the qm.conf(5) and qm(1) reference of pve-docs
 * (generated/qm.conf.5-opts.adoc, generated/qm.1-synopsis.adoc): `bios: seabios|ovmf`,
 * `efidisk0: <volume>,efitype=4m,pre-enrolled-keys=0`, `scsihw: virtio-scsi-pci`, `scsi[n]`/`sata[n]`
 * (sata0–sata5), `net[n]: <model>=<mac>,bridge=<bridge>`, `ostype: l26|win10|win11|…|other`,
 * `boot: order=<device>`, `serial0: socket`, `smbios1: uuid=<UUID>`, and
 * `qm disk import <vmid> <source> <storage> [--format raw|qcow2|vmdk] [--target-disk <drive>]`.
 *
 * How it is applied (import-proxmox.sh): the configuration *without* its disks is written first (that
 * creates the VM), then each disk is imported onto its drive with `qm disk import --target-disk`
 * (which refuses a drive already set, hence the two steps), then the EFI vars disk is created with
 * `qm set --efidisk0 <storage>:1,…` as the pve-docs show. Proxmox names the volumes itself: on a fresh
 * VMID they are vm-<vmid>-disk-0, -1, … in that order, which is what `conf` shows.
 */
import type { KvmPlan } from './hardware.ts';
import { isMac, KvmRestoreError } from './hardware.ts';
import type { ImageFormat } from './libvirt.ts';

export interface ProxmoxBridges {
  /** vSphere network name → Proxmox bridge (vmbr0, …). */
  map: Record<string, string>;
  /** For networks not in the map; without it an unmapped network is an error. */
  default?: string | undefined;
}

export interface ProxmoxOptions {
  vmid: number;
  /** Target storage ID (local-lvm, local-zfs, local, …). */
  storage: string;
  /**
   * `block` storages (LVM, LVM-thin, ZFS, Ceph RBD) hold raw volumes named `vm-<vmid>-disk-N`; `file`
   * storages (directory, NFS, CIFS) hold `<vmid>/vm-<vmid>-disk-N.<format>` files. Default block.
   */
  storageType?: 'block' | 'file' | undefined;
  /** VM name (default: the recorded one, made a DNS name as Proxmox requires). */
  name?: string | undefined;
  /** The converted images, one per planned disk in order, as paths on the Proxmox host. */
  images: Array<{ path: string; format: ImageFormat }>;
  bridges: ProxmoxBridges;
}

export interface ProxmoxConfig {
  vmid: number;
  /** `/etc/pve/qemu-server/<vmid>.conf` as it reads once the import is done. */
  conf: string;
  /** The same without disks and EFI disk: what is written before importing. */
  baseConf: string;
  /** One `qm disk import … --target-disk <drive>` per disk, then `qm set --efidisk0` for UEFI. */
  importCommands: string[];
  /** A POSIX sh script that checks the VMID is free, writes baseConf and runs importCommands. */
  script: string;
}

/** POSIX shell single-quoting. */
function shq(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Proxmox names VMs with a DNS name: letters, digits, `-` and `.`, starting and ending with a letter or digit. */
export function proxmoxName(name: string): string {
  const out = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '') // accents go, their letters stay
    .replace(/[^A-Za-z0-9.-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 63)
    .replace(/[-.]+$/, '');
  return out || 'restored-vm';
}

/** The `ostype` of a plan, from the vSphere guestId (pve-docs: win10 = 10/2016/2019, win11 = 11/2022/2025). */
export function proxmoxOsType(plan: KvmPlan): string {
  const id = (plan.hardware.guestId ?? '').toLowerCase();
  if (plan.family === 'linux') return 'l26';
  if (plan.family !== 'windows') return 'other';
  if (/windows11|windows2022|windows2025|windows2019srvnext/.test(id)) return 'win11';
  if (/windows9|windows2019|windows2016|windows10/.test(id)) return 'win10';
  if (/windows8|windows2012|windows8srv/.test(id)) return 'win8';
  if (/windows7|windows2008r2|windows7srv/.test(id)) return 'win7';
  if (/longhorn|winvista/.test(id)) return /longhorn/.test(id) ? 'w2k8' : 'wvista';
  if (/winnet/.test(id)) return 'w2k3';
  if (/winxp/.test(id)) return 'wxp';
  if (/win2000/.test(id)) return 'w2k';
  return 'win10';
}

/** Proxmox's informational `size=` value: the largest unit that divides the capacity exactly. */
export function diskSize(bytes: number): string {
  for (const [unit, f] of [['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) if (bytes % f === 0) return `${bytes / f}${unit}`;
  return `${Math.ceil(bytes / 1024)}K`;
}

// eslint-disable-next-line no-control-regex
const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f]/g, ' ');

/** Comment lines: Proxmox keeps them as the VM's description, URI-unescaped (so a literal `%` is written `%25`). */
function comment(text: string): string {
  return text.split('\n').map((l) => `#${oneLine(l).replace(/%/g, '%25')}`).join('\n');
}

export function proxmoxConfig(plan: KvmPlan, opts: ProxmoxOptions): ProxmoxConfig {
  const { vmid, storage } = opts;
  if (!Number.isInteger(vmid) || vmid < 100 || vmid > 999_999_999) throw new KvmRestoreError(`VMID ${vmid} is outside Proxmox's range 100–999999999`);
  if (!/^[a-z][a-z0-9._-]*$/i.test(storage)) throw new KvmRestoreError(`${JSON.stringify(storage)} is not a Proxmox storage ID`);
  if (opts.images.length !== plan.disks.length) throw new KvmRestoreError(`${opts.images.length} disk images given for ${plan.disks.length} disks`);
  const hw = plan.hardware;
  const file = (opts.storageType ?? 'block') === 'file';
  const drive = plan.bus === 'virtio-scsi' ? 'scsi' : 'sata';

  const unmapped = new Set<string>();
  const bridges = hw.nics.map((n, i) => {
    const b = (n.networkName !== undefined && Object.prototype.hasOwnProperty.call(opts.bridges.map, n.networkName) ? opts.bridges.map[n.networkName] : undefined) ?? opts.bridges.default;
    if (!b) unmapped.add(n.networkName ?? `(NIC ${i + 1} without a network)`);
    else if (!/^[\w.-]+$/.test(b)) throw new KvmRestoreError(`${JSON.stringify(b)} is not a bridge name`);
    return b ?? '';
  });
  if (unmapped.size) throw new KvmRestoreError(`no Proxmox bridge for the VMware network${unmapped.size > 1 ? 's' : ''} ${[...unmapped].map((s) => JSON.stringify(s)).join(', ')}: map ${unmapped.size > 1 ? 'them' : 'it'} to a bridge (vmbr0, …) or give a default`);

  const volume = (n: number, format: ImageFormat) => (file ? `${storage}:${vmid}/vm-${vmid}-disk-${n}.${format}` : `${storage}:vm-${vmid}-disk-${n}`);
  const diskLines = plan.disks.map((d, i) => `${drive}${i}: ${volume(i, file ? opts.images[i]!.format : 'raw')},size=${diskSize(d.capacityBytes)}`);
  const efiLine = hw.firmware === 'efi' ? [`efidisk0: ${volume(plan.disks.length, 'raw')},efitype=4m,pre-enrolled-keys=0,size=4M`] : [];
  const nets = hw.nics.map((n, i) => `net${i}: ${isMac(n.macAddress) ? `${plan.nicModel}=${n.macAddress.toUpperCase()}` : plan.nicModel},bridge=${bridges[i]}`);

  const head = [
    comment(`Restored by Vaultline from the VMware VM ${oneLine(hw.name)}${hw.guestFullName ? ` (${oneLine(hw.guestFullName)})` : ''}.\nSee NOTES.txt next to the disk images for what was and was not adapted.`),
    `bios: ${hw.firmware === 'efi' ? 'ovmf' : 'seabios'}`,
    `boot: order=${drive}0`,
    `cores: ${hw.numCoresPerSocket}`,
  ];
  const tail = [
    'machine: q35',
    `memory: ${hw.memoryMiB}`,
    `name: ${proxmoxName(opts.name ?? hw.name)}`,
    ...nets,
    `ostype: ${proxmoxOsType(plan)}`,
  ];
  const after = [
    ...(plan.bus === 'virtio-scsi' ? ['scsihw: virtio-scsi-pci'] : []),
    'serial0: socket',
    ...(hw.biosUuid ? [`smbios1: uuid=${hw.biosUuid}`] : []),
    `sockets: ${hw.numCpu / hw.numCoresPerSocket}`,
  ];
  // Keys in the order Proxmox writes them (sorted), so a diff against `qm config` stays small.
  const conf = [...head, ...efiLine, ...tail, ...diskLines, ...after, ''].join('\n');
  const baseConf = [...head, ...tail, ...after, ''].join('\n');

  const importCommands = plan.disks.map((_, i) => {
    const img = opts.images[i]!;
    // A block storage holds raw only; a file storage keeps the format it is given.
    return ['qm', 'disk', 'import', String(vmid), img.path, storage, ...(file ? ['--format', img.format] : []), '--target-disk', `${drive}${i}`].map(shq).join(' ');
  });
  if (hw.firmware === 'efi') importCommands.push(['qm', 'set', String(vmid), '--efidisk0', `${storage}:1,${file ? 'format=raw,' : ''}efitype=4m,pre-enrolled-keys=0`].map(shq).join(' '));

  const script = [
    '#!/bin/sh',
    `# Creates Proxmox VM ${vmid} from the converted disks (Vaultline restore to KVM/Proxmox). Run as root on the Proxmox node.`,
    'set -eu',
    `if [ -e /etc/pve/qemu-server/${vmid}.conf ] || ls /etc/pve/nodes/*/qemu-server/${vmid}.conf /etc/pve/nodes/*/lxc/${vmid}.conf >/dev/null 2>&1; then`,
    `  echo "VMID ${vmid} is already in use in this cluster; choose another one" >&2`,
    '  exit 1',
    'fi',
    `cat > /etc/pve/qemu-server/${vmid}.conf <<'VAULTLINE_EOF'`,
    baseConf.trimEnd(),
    'VAULTLINE_EOF',
    ...importCommands,
    `echo "VM ${vmid} created; check it with: qm config ${vmid}"`,
    '',
  ].join('\n');
  return { vmid, conf, baseConf, importCommands, script };
}
