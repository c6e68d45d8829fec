import type { PlacementTargets, RestorePointDetail } from '@vaultline/contracts';
import type { RestoreBody } from '../../api/restores.ts';
import type { WriteTransport } from '../../components/run/transport.ts';

export type RestoreWhat = 'new' | 'replace' | 'disk' | 'drill' | 'kvm' | 'download';

export interface RestoreState {
  pointId: string;
  what: RestoreWhat;
  vcenterId: string;
  /** New VM's name; the VM to replace; the drill's throwaway name. */
  name: string;
  /** Replace only: the operator types the VM's exact name. */
  confirm: string;
  /** '' = the source VM's (host, folder, pool as morefs; datastore by name). */
  host: string;
  folder: string;
  resourcePool: string;
  datastore: string;
  /** Source network name -> target network moref; unmapped NICs keep their network. */
  networkMap: Record<string, string>;
  transport: WriteTransport;
  failoverToNetwork: boolean;
  powerOn: boolean;
  /** One disk into an existing VM. */
  diskKey: string;
  targetVm: string;
  targetVmName: string;
  /** Onto KVM/Proxmox: the folder (under the Transporter's KVM export folder), the image format, each source network's libvirt network or bridge. */
  kvmFolder: string;
  kvmFormat: 'qcow2' | 'raw';
  kvmNetworks: Record<string, string>;
  /** Proxmox (optional): VMID ('' = no Proxmox configuration), storage and bridge. */
  proxmoxVmid: string;
  proxmoxStorage: string;
  proxmoxBridge: string;
}

export const STEPS = ['Restore point', 'What', 'Details', 'Review'] as const;
export const DOWNLOAD_STEPS = ['Restore point', 'What', 'Download'] as const;
export const stepsFor = (what: RestoreWhat): readonly string[] => (what === 'download' ? DOWNLOAD_STEPS : STEPS);

export const WHAT: { value: RestoreWhat; label: string; help: string; needsHardware: boolean }[] = [
  {
    value: 'new',
    label: 'The whole VM, as a new VM',
    help: 'Recreated from the hardware recorded in the restore point (CPU, memory, controllers, disks, NICs); every disk is written and read back, and the restore succeeds only when each one’s SHA-256 equals the restore point’s.',
    needsHardware: true,
  },
  {
    value: 'replace',
    label: 'Replace the existing VM',
    help: 'Restored under a temporary name and verified first; only then is the original powered off and renamed <name>-replaced-<date> — it is kept, never deleted — and the restored VM takes its name.',
    needsHardware: true,
  },
  { value: 'disk', label: 'One disk, into an existing VM', help: 'Added to that VM as a new disk (free SCSI unit), written over the network and verified. The VM’s own disks are never touched.', needsHardware: false },
  {
    value: 'kvm',
    label: 'Onto KVM / Proxmox',
    help: 'The disks as thin qcow2 or raw images, with a libvirt domain, a Proxmox qm configuration and its import script, and NOTES on what was adapted (virtio for Linux; SATA first boot for Windows, whose virtio drivers are not injected), written into a folder on the Transporter.',
    needsHardware: true,
  },
  { value: 'drill', label: 'A restore drill', help: 'Restores to a throwaway VM, verifies every disk and deletes the VM again: proof that this restore point restores, recorded as a run.', needsHardware: true },
  { value: 'download', label: 'Download', help: 'A disk as a raw image or a VMDK, or the whole VM as an OVA, streamed from the repository.', needsHardware: false },
];

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 13);

export function initialState(point: RestorePointDetail | undefined, fallbackVcenter: string): RestoreState {
  return {
    pointId: point?.id ?? '',
    what: point?.hardware === null ? 'disk' : 'new',
    vcenterId: point?.vcenterId ?? fallbackVcenter,
    name: point ? `${point.vmName}-restored` : '',
    confirm: '',
    host: '',
    folder: '',
    resourcePool: '',
    datastore: '',
    networkMap: {},
    transport: 'automatic',
    failoverToNetwork: true,
    powerOn: false,
    diskKey: point?.disks[0]?.key ?? '',
    targetVm: '',
    targetVmName: '',
    kvmFolder: point ? kvmFolderFor(point.vmName) : '',
    kvmFormat: 'qcow2',
    kvmNetworks: {},
    proxmoxVmid: '',
    proxmoxStorage: 'local-lvm',
    proxmoxBridge: 'vmbr0',
  };
}

/** A folder name from the VM's name (what the Director accepts: letters, digits, dot, dash, underscore). */
export const kvmFolderFor = (vmName: string) => `${vmName.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 60) || 'vm'}-kvm`;
const FOLDER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

/** A libvirt target as typed: "br0" style names of bridges are told apart by the operator's choice of prefix "bridge:". */
export function kvmNetworkOf(text: string): { network: string } | { bridge: string } {
  const t = text.trim();
  return t.startsWith('bridge:') ? { bridge: t.slice('bridge:'.length).trim() } : { network: t };
}

/** The name a choice of "what" starts with (the operator may change it). */
export function defaultName(what: RestoreWhat, vmName: string, now = new Date()): string {
  if (what === 'replace') return vmName;
  if (what === 'drill') return `${vmName.slice(0, 80 - 21)}-drill-${stamp(now)}`;
  return `${vmName}-restored`;
}

/** What the Director is asked for. */
export function requestOf(s: RestoreState): RestoreBody {
  const placement = {
    ...(s.host ? { host: s.host } : {}),
    ...(s.folder ? { folder: s.folder } : {}),
    ...(s.resourcePool ? { resourcePool: s.resourcePool } : {}),
    ...(s.datastore ? { datastore: s.datastore } : {}),
    ...(Object.keys(s.networkMap).length ? { networkMap: s.networkMap } : {}),
  };
  const base = { restorePointId: s.pointId, vcenterId: s.vcenterId, name: s.name.trim() };
  switch (s.what) {
    case 'disk':
      return { ...base, name: s.targetVmName || s.targetVm, disk: { key: s.diskKey, targetVm: s.targetVm }, ...(s.datastore ? { datastore: s.datastore } : {}) };
    case 'drill':
      return { ...base, drill: true, transport: s.transport, failoverToNetwork: s.failoverToNetwork, ...(s.datastore ? { datastore: s.datastore } : {}) };
    case 'kvm': {
      const networks = Object.fromEntries(Object.entries(s.kvmNetworks).filter(([, v]) => v.trim()).map(([k, v]) => [k, kvmNetworkOf(v)]));
      const vmid = Number(s.proxmoxVmid);
      return {
        restorePointId: s.pointId,
        name: s.name.trim(),
        kvm: {
          folder: s.kvmFolder.trim(),
          format: s.kvmFormat,
          networks,
          defaultNetwork: { network: 'default' },
          ...(s.proxmoxVmid.trim() ? { proxmox: { vmid, storage: s.proxmoxStorage.trim(), storageType: 'block' as const, bridges: {}, defaultBridge: s.proxmoxBridge.trim() || 'vmbr0' } } : {}),
        },
      };
    }
    case 'replace':
      return { ...base, ...placement, transport: s.transport, failoverToNetwork: s.failoverToNetwork, powerOn: s.powerOn, replace: { confirm: s.confirm } };
    default:
      return { ...base, ...placement, transport: s.transport, failoverToNetwork: s.failoverToNetwork, powerOn: s.powerOn };
  }
}

/** Bytes the disks need on the target datastore (the Transporter refuses a datastore with less free). */
export const neededBytes = (point: RestorePointDetail, s: Pick<RestoreState, 'what' | 'diskKey'>) =>
  s.what === 'disk' ? (point.disks.find((d) => d.key === s.diskKey)?.capacityBytes ?? 0) : point.disks.reduce((n, d) => n + d.capacityBytes, 0);

/** Datastores a restore would write to: the chosen one, or the source disks' own. */
export function targetDatastores(point: RestorePointDetail, s: Pick<RestoreState, 'datastore' | 'what' | 'diskKey'>, placement: PlacementTargets | undefined) {
  const names = s.datastore ? [s.datastore] : [...new Set(point.disks.slice(0, 1).map((d) => d.datastore).filter((x): x is string => Boolean(x)))];
  return names.map((n) => ({ name: n, found: placement?.datastores.find((d) => d.name === n) }));
}

/** What is wrong with a step, before the Director is asked (it checks everything again). */
export function stepProblem(step: string, s: RestoreState, point: RestorePointDetail | undefined): string | null {
  if (step === 'Restore point') return s.pointId ? null : 'Choose a restore point.';
  if (step === 'What') {
    const w = WHAT.find((x) => x.value === s.what)!;
    if (w.needsHardware && point?.hardware === null) return 'This restore point holds no hardware description: restore or download its disks instead.';
    return null;
  }
  if (step === 'Details') {
    if (s.what === 'kvm') {
      if (!s.name.trim()) return 'Give the restored VM a name.';
      if (!FOLDER.test(s.kvmFolder.trim())) return 'The folder is a name of letters, digits, dot, dash and underscore (not a path).';
      if (s.proxmoxVmid.trim() && !(Number.isInteger(Number(s.proxmoxVmid)) && Number(s.proxmoxVmid) >= 100)) return 'A Proxmox VMID is a whole number from 100.';
      if (s.proxmoxVmid.trim() && !s.proxmoxStorage.trim()) return 'Name the Proxmox storage the disks are imported to.';
      return null;
    }
    if (!s.vcenterId) return 'Choose the vCenter to restore to.';
    if (s.what === 'disk') {
      if (!s.diskKey) return 'Choose the disk to restore.';
      if (!s.targetVm) return 'Choose the VM that gets the disk.';
      return null;
    }
    if (!s.name.trim()) return s.what === 'replace' ? 'Name the VM to replace.' : 'Give the restored VM a name.';
    if (s.what === 'replace' && s.confirm !== s.name.trim()) return `Type the VM’s exact name (${s.name.trim()}) to confirm that it is replaced.`;
  }
  return null;
}
