/**
 * The recorded virtual hardware of a restore point, read for a restore to KVM/Proxmox, and the plan made
 * from it: which bus the disks go on, which NIC model, which firmware, in which order.
 *
 * A backup records `manifest.vm = { name, moref, biosUuid, hardware }` where `hardware` is the
 * HardwareDescription of @vaultline/vsphere (older or hand-made points may hold the description itself).
 * Nothing here imports @vaultline/vsphere: the manifest is data from disk, so every field is checked
 * and a missing one is named in the error.
 *
 * Guest adaptation is decided here and said plainly in `notes`: nothing is ever changed inside the guest.
 */
import type { Manifest } from '@vaultline/repository';

export class KvmRestoreError extends Error {
  override name = 'KvmRestoreError';
}

export type GuestFamily = 'linux' | 'windows' | 'unknown';
export type Firmware = 'bios' | 'efi';
/** virtio-scsi: Linux guests boot from it with the driver in their initramfs; SATA (AHCI): every OS has a driver. */
export type DiskBus = 'virtio-scsi' | 'sata';
/** e1000e: Windows 8/2012 and later have its driver inbox; e1000: Windows 7/2008 R2 and older do. */
export type NicModel = 'virtio' | 'e1000e' | 'e1000';

export interface RecordedDisk {
  /** vSphere device key (the restore point stores the disk under `String(key)`). */
  key: number;
  label?: string | undefined;
  /** vSphere controller kind (pvscsi, lsilogic, sata, nvme, ide, …). */
  controller: string;
  busNumber: number;
  unitNumber: number;
  capacityBytes: number;
}

export interface RecordedNic {
  label?: string | undefined;
  macAddress?: string | undefined;
  networkName?: string | undefined;
}

/** What a restore to KVM reads of the recorded hardware, validated. */
export interface RecordedHardware {
  name: string;
  /** SMBIOS UUID of the source VM, when recorded and well-formed (kept so licences bound to it survive). */
  biosUuid?: string | undefined;
  guestId?: string | undefined;
  guestFullName?: string | undefined;
  numCpu: number;
  numCoresPerSocket: number;
  memoryMiB: number;
  firmware: Firmware;
  disks: RecordedDisk[];
  nics: RecordedNic[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

function nonNegativeInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

function optString(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** The firmware a backup recorded ('bios' or 'efi'), or undefined for anything else. */
export function recordedFirmware(v: unknown): Firmware | undefined {
  return v === 'efi' || v === 'bios' ? v : undefined;
}

/**
 * Reads the hardware from a manifest's `vm` field (or from a HardwareDescription directly). Every
 * problem is collected and reported at once, naming the field, so a bad point is diagnosed in one go.
 */
export function readRecordedHardware(vm: unknown, where = 'the restore point'): RecordedHardware {
  if (!isObject(vm)) throw new KvmRestoreError(`${where} holds no VM description (manifest.vm is ${vm === null ? 'null' : typeof vm}); restore its disks instead`);
  const hw = isObject(vm.hardware) ? vm.hardware : Array.isArray(vm.disks) ? vm : null;
  if (!hw) throw new KvmRestoreError(`${where} holds no hardware description (manifest.vm.hardware is missing); restore its disks instead`);
  const problems: string[] = [];
  const name = optString(hw.name) ?? optString(vm.name);
  if (!name) problems.push('name is missing');
  const numCpu = positiveInt(hw.numCpu);
  if (numCpu === undefined) problems.push(`numCpu is ${JSON.stringify(hw.numCpu)}, not a positive integer`);
  const memoryMiB = positiveInt(hw.memoryMiB);
  if (memoryMiB === undefined) problems.push(`memoryMiB is ${JSON.stringify(hw.memoryMiB)}, not a positive integer`);
  // vSphere leaves numCoresPerSocket out for one core per socket; a value that does not divide numCpu is not a topology.
  let cores = hw.numCoresPerSocket === undefined || hw.numCoresPerSocket === null ? 1 : positiveInt(hw.numCoresPerSocket);
  if (cores === undefined) problems.push(`numCoresPerSocket is ${JSON.stringify(hw.numCoresPerSocket)}, not a positive integer`);
  else if (numCpu !== undefined && numCpu % cores !== 0) problems.push(`numCoresPerSocket ${cores} does not divide numCpu ${numCpu}`);
  cores ??= 1;
  const firmware = recordedFirmware(hw.firmware) ?? 'bios';
  if (hw.firmware !== undefined && hw.firmware !== null && recordedFirmware(hw.firmware) === undefined) problems.push(`firmware is ${JSON.stringify(hw.firmware)}, neither "bios" nor "efi"`);

  const controllers = new Map<number, string>();
  if (Array.isArray(hw.controllers)) {
    for (const c of hw.controllers) if (isObject(c) && typeof c.key === 'number' && typeof c.kind === 'string') controllers.set(c.key, c.kind);
  }
  const disks: RecordedDisk[] = [];
  if (!Array.isArray(hw.disks) || hw.disks.length === 0) problems.push('disks is missing or empty');
  else {
    hw.disks.forEach((d: unknown, i: number) => {
      if (!isObject(d)) return void problems.push(`disks[${i}] is not an object`);
      const key = nonNegativeInt(d.key);
      const busNumber = nonNegativeInt(d.busNumber);
      const unitNumber = nonNegativeInt(d.unitNumber);
      const capacityBytes = positiveInt(d.capacityBytes);
      const controller = optString(d.controller) ?? (typeof d.controllerKey === 'number' ? controllers.get(d.controllerKey) : undefined);
      const missing = [
        key === undefined && 'key',
        busNumber === undefined && 'busNumber',
        unitNumber === undefined && 'unitNumber',
        capacityBytes === undefined && 'capacityBytes',
        controller === undefined && 'controller',
      ].filter(Boolean);
      if (missing.length) return void problems.push(`disks[${i}]${optString(d.label) ? ` (${String(d.label)})` : ''} lacks ${missing.join(', ')}`);
      disks.push({ key: key!, label: optString(d.label), controller: controller!, busNumber: busNumber!, unitNumber: unitNumber!, capacityBytes: capacityBytes! });
    });
  }
  const nics: RecordedNic[] = [];
  if (hw.nics !== undefined && !Array.isArray(hw.nics)) problems.push('nics is not a list');
  for (const n of Array.isArray(hw.nics) ? hw.nics : []) {
    if (!isObject(n)) continue;
    nics.push({ label: optString(n.label), macAddress: optString(n.macAddress), networkName: optString(n.networkName) });
  }
  if (problems.length) throw new KvmRestoreError(`the recorded hardware of ${where} cannot be used: ${problems.join('; ')}`);
  const biosUuid = optString(vm.biosUuid);
  return {
    name: name!,
    ...(biosUuid && UUID.test(biosUuid) ? { biosUuid: biosUuid.toLowerCase() } : {}),
    guestId: optString(hw.guestId),
    guestFullName: optString(hw.guestFullName),
    numCpu: numCpu!,
    numCoresPerSocket: cores,
    memoryMiB: memoryMiB!,
    firmware,
    disks,
    nics,
  };
}

/**
 * The guest family from vSphere's guestId (e.g. `ubuntu64Guest`, `rhel9_64Guest`, `otherLinux64Guest`,
 * `windows2019srv_64Guest`, `winNetStandardGuest`), falling back on guestFullName.
 */
export function guestFamily(guestId: string | undefined, guestFullName?: string): GuestFamily {
  const id = (guestId ?? '').toLowerCase();
  if (/^win/.test(id)) return 'windows';
  if (/linux|^debian|^ubuntu|^rhel|^centos|^fedora|^sles|^suse|^opensuse|^oracle|^asianux|^mandr|^turbolinux|^redhat|^coreos|^vmwarephoton|^almalinux|^rockylinux|^amazonlinux|^other\d*xlinux/.test(id)) return 'linux';
  const full = (guestFullName ?? '').toLowerCase();
  if (/windows/.test(full)) return 'windows';
  if (/linux|debian|ubuntu|red hat|centos|suse|fedora/.test(full)) return 'linux';
  return 'unknown';
}

/**
 * Controller kinds in the order the boot disk is looked for: SCSI (scsi0:0 is where vSphere puts the system
 * disk of nearly every VM), then SATA, NVMe, IDE. A VM that boots from another disk in a mixed setup is not
 * detected; the NOTES name the disk chosen so the admin can check.
 */
const CONTROLLER_ORDER = ['pvscsi', 'lsilogic', 'lsisas', 'buslogic', 'scsi', 'sata', 'nvme', 'ide', 'other'];

function controllerRank(kind: string): number {
  const i = CONTROLLER_ORDER.indexOf(kind);
  return i < 0 ? CONTROLLER_ORDER.length : i;
}

/** Disks in vSphere order: controller kind, then bus, then unit. The first is the one the restored VM boots from. */
export function diskOrder(disks: RecordedDisk[]): RecordedDisk[] {
  return [...disks].sort((a, b) => controllerRank(a.controller) - controllerRank(b.controller) || a.busNumber - b.busNumber || a.unitNumber - b.unitNumber || a.key - b.key);
}

export interface PlannedDisk extends RecordedDisk {
  /** The key the restore point stores this disk under. */
  diskKey: string;
  /** Position on the new bus: scsi0/sata0 is the boot disk. */
  index: number;
}

export interface KvmPlan {
  hardware: RecordedHardware;
  family: GuestFamily;
  bus: DiskBus;
  nicModel: NicModel;
  /** Disks in boot order, only those the restore point holds. */
  disks: PlannedDisk[];
  /** Plain sentences for NOTES: what was adapted, what was not and what the admin has to do. */
  notes: string[];
}

/** SATA (AHCI) has six ports per controller on q35/libvirt and in Proxmox (sata0–sata5). */
export const MAX_SATA_DISKS = 6;
/** Proxmox numbers scsi0–scsi30. */
export const MAX_SCSI_DISKS = 31;

/**
 * Decides the bus, NIC model and disk order from the recorded hardware and the point's disks. Disks the
 * point does not hold (left out of the backup) are skipped with a note.
 */
export function planKvmRestore(manifest: Pick<Manifest, 'id' | 'vm' | 'disks'>, opts: { bus?: DiskBus | undefined } = {}): KvmPlan {
  const hardware = readRecordedHardware(manifest.vm, `restore point ${manifest.id}`);
  const family = guestFamily(hardware.guestId, hardware.guestFullName);
  const notes: string[] = [];
  const stored = new Set(manifest.disks.map((d) => d.key));
  const ordered = diskOrder(hardware.disks);
  const kept = ordered.filter((d) => {
    if (stored.has(String(d.key))) return true;
    notes.push(`Disk ${d.label ?? d.key} is not in this restore point (it was left out of the backup) and is not restored.`);
    return false;
  });
  if (kept.length === 0) throw new KvmRestoreError(`restore point ${manifest.id} holds none of the recorded disks (${hardware.disks.map((d) => d.key).join(', ')})`);
  const boot = kept[0]!;
  notes.push(`Boot disk: ${boot.label ?? `disk ${boot.key}`} (${boot.controller} ${boot.busNumber}:${boot.unitNumber} on VMware); it is the first disk here.`);

  let bus: DiskBus;
  let nicModel: NicModel;
  const who = `${hardware.guestFullName ?? hardware.guestId ?? 'an unknown guest OS'}`;
  if (family === 'linux') {
    bus = 'virtio-scsi';
    nicModel = 'virtio';
    notes.push(
      `Linux guest (${who}): disks on virtio-scsi, NICs virtio. Linux boots from them with the drivers its initramfs normally carries; ` +
        'nothing was changed inside the guest. If it stops in an emergency shell, its initramfs lacks virtio_scsi: boot it once on SATA and rebuild the initramfs.',
    );
    notes.push('Network interface names may change on KVM (e.g. ens192 becomes ens3 or enp1s0): a static configuration bound to the old name has to be adjusted in the guest.');
  } else if (family === 'windows') {
    bus = 'sata';
    const old = /^(win(xp|net|2000|vista|longhorn)|windows7|windows2008|windowshyperv)/i.test(hardware.guestId ?? '');
    nicModel = old ? 'e1000' : 'e1000e';
    notes.push(
      `Windows guest (${who}): SATA first boot. Disks are on SATA (AHCI) and NICs are ${nicModel}, for which Windows has drivers of its own. ` +
        'No virtio driver was injected and nothing was changed inside the guest. To switch to virtio-scsi and virtio-net, install the virtio-win drivers ' +
        'in the running guest first (and attach a small virtio-scsi disk once so Windows loads the driver at boot), then change the bus; switching before that leaves Windows unable to boot (INACCESSIBLE_BOOT_DEVICE).',
    );
    notes.push('Windows sees new hardware: its activation may need renewing, and NIC settings bound to the old adapter (static IP) must be set again on the new one.');
    if (/^win(xp|net|2000)/i.test(hardware.guestId ?? '')) notes.push('Windows XP/2003/2000 have no AHCI driver of their own: this first boot on SATA will most likely fail (STOP 0x7B); an IDE boot is not offered here.');
  } else {
    bus = 'sata';
    nicModel = 'e1000e';
    notes.push(`Unknown guest OS (${who}): disks on SATA and NICs e1000e, the most widely supported choice; nothing was changed inside the guest. Whether it boots is not known.`);
  }
  if (opts.bus && opts.bus !== bus) {
    notes.push(`The disk bus was set to ${opts.bus} on request instead of ${bus}.`);
    bus = opts.bus;
  }
  const max = bus === 'sata' ? MAX_SATA_DISKS : MAX_SCSI_DISKS;
  if (kept.length > max) throw new KvmRestoreError(`${kept.length} disks do not fit on ${bus} (at most ${max}); restore the extra disks separately`);
  if (hardware.firmware === 'efi') {
    notes.push('Firmware: UEFI (OVMF), as on VMware. The UEFI boot entries (NVRAM) are not carried over: the firmware falls back to the default loader \\EFI\\BOOT\\BOOTX64.EFI on the boot disk; if the guest has none, add a boot entry from the OVMF boot manager.');
    notes.push('Secure Boot is not enabled on the restored VM (no keys are enrolled).');
  } else notes.push('Firmware: BIOS (SeaBIOS), as on VMware.');
  if (hardware.nics.length === 0) notes.push('The VM had no network interface.');
  return {
    hardware,
    family,
    bus,
    nicModel,
    disks: kept.map((d, index) => ({ ...d, diskKey: String(d.key), index })),
    notes,
  };
}

/**
 * Where each recorded vSphere network goes: a libvirt network or a host bridge (libvirt), and a Proxmox
 * bridge (vmbrN). A network missing from the map falls to `default` when one is given, else it is an error.
 */
export interface NetworkMap {
  map: Record<string, { network: string } | { bridge: string }>;
  default?: { network: string } | { bridge: string } | undefined;
}

export type NetworkTarget = { network: string } | { bridge: string };

/** The target of each NIC, in order; all unmapped networks are named in one error. */
export function mapNetworks(nics: RecordedNic[], networks: NetworkMap): NetworkTarget[] {
  const unmapped = new Set<string>();
  const out = nics.map((n, i) => {
    const name = n.networkName ?? '';
    const hit = Object.prototype.hasOwnProperty.call(networks.map, name) ? networks.map[name] : undefined;
    const t = hit ?? networks.default;
    if (!t) unmapped.add(n.networkName ?? `(NIC ${i + 1} without a network)`);
    return t;
  });
  if (unmapped.size) {
    throw new KvmRestoreError(`no target for the VMware network${unmapped.size > 1 ? 's' : ''} ${[...unmapped].map((s) => JSON.stringify(s)).join(', ')}: map ${unmapped.size > 1 ? 'them' : 'it'} to a libvirt network or bridge, or give a default`);
  }
  return out as NetworkTarget[];
}

/** A well-formed MAC address (a recorded one is kept, so DHCP reservations and licences still match). */
export function isMac(mac: string | undefined): mac is string {
  return mac !== undefined && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac);
}
