/**
 * Virtual hardware: reading `config.hardware.device` arrays, and building
 * VirtualMachineConfigSpec / VirtualDeviceConfigSpec XML (in WSDL order).
 *
 * SAFETY: `DeviceChange` is the only way this client expresses a device
 * change, and it has no way to say "destroy". `fileOperation` exists only on
 * the `add` variant and can only be `create` (new disks for restores). The
 * serializer `deviceChangeXml()` derives the file operation from the variant,
 * so even a value smuggled in at runtime (`{operation:'remove',
 * fileOperation:'destroy'}` through a cast) is ignored. A second guard in the
 * SOAP transport refuses any body containing fileOperation=destroy.
 * Detaching a disk therefore can never delete the (production) disk file.
 */
import { child, el, esc, join, num, bool, text, typed, val, type Xml, type XmlNode } from './soap/xml.ts';
import type { Controller, ControllerKind, Disk, DiskBacking, Nic } from './types.ts';

const CONTROLLER_KINDS: Record<string, ControllerKind> = {
  ParaVirtualSCSIController: 'pvscsi',
  VirtualLsiLogicController: 'lsilogic',
  VirtualLsiLogicSASController: 'lsisas',
  VirtualBusLogicController: 'buslogic',
  VirtualIDEController: 'ide',
  VirtualAHCIController: 'sata',
  VirtualSATAController: 'sata',
  VirtualNVMEController: 'nvme',
};

/** The kind of a controller from its vim type name ("VirtualLsiLogicController" → "lsilogic"), or "other". */
export function controllerKindOf(type: string): ControllerKind {
  return CONTROLLER_KINDS[type] ?? 'other';
}

export const CONTROLLER_TYPES: Record<Exclude<ControllerKind, 'other'>, string> = {
  pvscsi: 'ParaVirtualSCSIController',
  lsilogic: 'VirtualLsiLogicController',
  lsisas: 'VirtualLsiLogicSASController',
  buslogic: 'VirtualBusLogicController',
  ide: 'VirtualIDEController',
  sata: 'VirtualAHCIController',
  nvme: 'VirtualNVMEController',
};

export const SCSI_KINDS: ReadonlySet<ControllerKind> = new Set(['pvscsi', 'lsilogic', 'lsisas', 'buslogic']);

const NIC_TYPES = new Set([
  'VirtualVmxnet3',
  'VirtualVmxnet3Vrdma',
  'VirtualVmxnet2',
  'VirtualVmxnet',
  'VirtualE1000',
  'VirtualE1000e',
  'VirtualPCNet32',
  'VirtualSriovEthernetCard',
]);

export function parseBacking(b: XmlNode): DiskBacking {
  const parentEl = child(b, 'parent');
  const ds = child(b, 'datastore');
  return {
    type: b.xsiType ?? 'VirtualDiskFlatVer2BackingInfo',
    fileName: text(b, 'fileName') ?? '',
    datastore: ds?.text,
    diskMode: text(b, 'diskMode'),
    thinProvisioned: bool(b, 'thinProvisioned'),
    eagerlyScrub: bool(b, 'eagerlyScrub'),
    uuid: text(b, 'uuid'),
    changeId: text(b, 'changeId') || undefined,
    deltaDiskFormat: text(b, 'deltaDiskFormat'),
    sharing: text(b, 'sharing'),
    compatibilityMode: text(b, 'compatibilityMode'),
    lunUuid: text(b, 'lunUuid'),
    parent: parentEl ? parseBacking(parentEl) : undefined,
  };
}

export interface ParsedDevices {
  controllers: Controller[];
  disks: Disk[];
  nics: Nic[];
  /** every device: key -> {type, controllerKey, unitNumber} */
  all: { key: number; type: string; controllerKey?: number | undefined; unitNumber?: number | undefined }[];
}

/** Parses an `ArrayOfVirtualDevice` value (VM or snapshot `config.hardware.device`). */
export function parseDevices(arr: XmlNode | undefined): ParsedDevices {
  const controllers: Controller[] = [];
  const disks: Disk[] = [];
  const nics: Nic[] = [];
  const all: ParsedDevices['all'] = [];
  const devs = arr ? arr.children : [];
  for (const d of devs) {
    const type = d.xsiType ?? d.name;
    const key = num(d, 'key') ?? 0;
    all.push({ key, type, controllerKey: num(d, 'controllerKey'), unitNumber: num(d, 'unitNumber') });
    const kind = CONTROLLER_KINDS[type];
    if (kind) {
      controllers.push({
        key,
        kind,
        type,
        busNumber: num(d, 'busNumber') ?? 0,
        scsiCtlrUnitNumber: num(d, 'scsiCtlrUnitNumber') ?? (SCSI_KINDS.has(kind) ? 7 : undefined),
        sharedBus: text(d, 'sharedBus'),
      });
    } else if (type.endsWith('Controller') && child(d, 'busNumber')) {
      controllers.push({ key, kind: 'other', type, busNumber: num(d, 'busNumber') ?? 0 });
    }
  }
  const byKey = new Map(controllers.map((c) => [c.key, c]));
  for (const d of devs) {
    const type = d.xsiType ?? d.name;
    if (type === 'VirtualDisk') {
      const bEl = child(d, 'backing');
      const backing = bEl ? parseBacking(bEl) : { type: 'unknown', fileName: '' };
      const ctl = byKey.get(num(d, 'controllerKey') ?? -1);
      const parents: string[] = [];
      for (let p = backing.parent; p; p = p.parent) parents.push(p.fileName);
      const bytes = num(d, 'capacityInBytes') ?? (num(d, 'capacityInKB') ?? 0) * 1024;
      disks.push({
        key: num(d, 'key') ?? 0,
        label: text(child(d, 'deviceInfo'), 'label'),
        controllerKey: num(d, 'controllerKey') ?? 0,
        controller: ctl?.kind ?? 'other',
        busNumber: ctl?.busNumber ?? 0,
        unitNumber: num(d, 'unitNumber') ?? 0,
        capacityBytes: bytes,
        fileName: backing.fileName,
        parents,
        thin: backing.thinProvisioned ?? false,
        eagerlyScrub: backing.eagerlyScrub ?? false,
        diskMode: backing.diskMode ?? 'persistent',
        uuid: backing.uuid,
        changeId: backing.changeId,
        sharing: backing.sharing,
        backing,
      });
    } else if (NIC_TYPES.has(type)) {
      const b = child(d, 'backing');
      nics.push({
        key: num(d, 'key') ?? 0,
        type,
        label: text(child(d, 'deviceInfo'), 'label'),
        macAddress: text(d, 'macAddress'),
        network: child(b, 'network')?.text,
        networkName: text(b, 'deviceName'),
      });
    }
  }
  return { controllers, disks, nics, all };
}

// ---------------------------------------------------------------------------
// Building specs

/**
 * One device change. There is deliberately no variant that carries a
 * "destroy" file operation: see the module comment.
 */
export type DeviceChange =
  | { readonly operation: 'add'; readonly fileOperation?: 'create'; readonly device: Xml }
  | { readonly operation: 'edit'; readonly device: Xml }
  | { readonly operation: 'remove'; readonly device: Xml };

/** Serialises a VirtualDeviceConfigSpec. The file operation is derived from the variant only. */
export function deviceChangeXml(c: DeviceChange): Xml {
  const op = c.operation === 'add' ? 'add' : c.operation === 'edit' ? 'edit' : 'remove';
  const fileOp = op === 'add' && (c as { fileOperation?: unknown }).fileOperation === 'create' ? val('fileOperation', 'create') : '';
  return typed('deviceChange', 'VirtualDeviceConfigSpec', join([val('operation', op), fileOp, c.device]));
}

export interface DiskBackingSpec {
  fileName: string;
  datastore?: string | undefined;
  diskMode: string;
  thinProvisioned?: boolean | undefined;
  eagerlyScrub?: boolean | undefined;
}

function backingXml(b: DiskBackingSpec): Xml {
  return typed(
    'backing',
    'VirtualDiskFlatVer2BackingInfo',
    join([
      val('fileName', b.fileName),
      b.datastore ? el('datastore', esc(b.datastore), { type: 'Datastore' }) : '',
      val('diskMode', b.diskMode),
      val('thinProvisioned', b.thinProvisioned),
      val('eagerlyScrub', b.eagerlyScrub),
    ]),
  );
}

export function diskDeviceXml(d: {
  key: number;
  backing: DiskBackingSpec;
  controllerKey: number;
  unitNumber: number;
  capacityBytes: number;
  label?: string | undefined;
}): Xml {
  return typed(
    'device',
    'VirtualDisk',
    join([
      val('key', d.key),
      d.label ? el('deviceInfo', join([val('label', d.label), val('summary', d.label)])) : '',
      backingXml(d.backing),
      val('controllerKey', d.controllerKey),
      val('unitNumber', d.unitNumber),
      val('capacityInKB', Math.floor(d.capacityBytes / 1024)),
      d.capacityBytes ? val('capacityInBytes', d.capacityBytes) : '',
    ]),
  );
}

/** Attach an EXISTING disk file: add, no file operation. */
export function attachDiskChange(d: { key: number; fileName: string; diskMode: string; controllerKey: number; unitNumber: number }): DeviceChange {
  return {
    operation: 'add',
    device: diskDeviceXml({ key: d.key, backing: { fileName: d.fileName, diskMode: d.diskMode }, controllerKey: d.controllerKey, unitNumber: d.unitNumber, capacityBytes: 0 }),
  };
}

/** A NEW disk (restores): add + create. `fileName` may be just "[datastore]". */
export function newDiskChange(d: {
  key: number;
  fileName: string;
  diskMode?: string | undefined;
  thin?: boolean | undefined;
  eagerlyScrub?: boolean | undefined;
  controllerKey: number;
  unitNumber: number;
  capacityBytes: number;
  label?: string | undefined;
}): DeviceChange {
  return {
    operation: 'add',
    fileOperation: 'create',
    device: diskDeviceXml({
      key: d.key,
      backing: { fileName: d.fileName, diskMode: d.diskMode ?? 'persistent', thinProvisioned: d.thin ?? true, eagerlyScrub: d.thin === false ? (d.eagerlyScrub ?? false) : undefined },
      controllerKey: d.controllerKey,
      unitNumber: d.unitNumber,
      capacityBytes: d.capacityBytes,
      label: d.label,
    }),
  };
}

/** Detach a disk and KEEP its files: remove, no file operation (there is no other kind). */
export function detachDiskChange(disk: Pick<Disk, 'key' | 'controllerKey' | 'unitNumber' | 'fileName' | 'diskMode'>): DeviceChange {
  return {
    operation: 'remove',
    device: diskDeviceXml({
      key: disk.key,
      backing: { fileName: disk.fileName, diskMode: disk.diskMode },
      controllerKey: disk.controllerKey,
      unitNumber: disk.unitNumber,
      capacityBytes: 0,
    }),
  };
}

export function controllerChange(c: { key: number; kind: Exclude<ControllerKind, 'other'>; busNumber: number }): DeviceChange {
  const type = CONTROLLER_TYPES[c.kind];
  const scsi = SCSI_KINDS.has(c.kind);
  return {
    operation: 'add',
    device: typed('device', type, join([val('key', c.key), val('busNumber', c.busNumber), scsi ? val('sharedBus', 'noSharing') : ''])),
  };
}

export type NicType = 'vmxnet3' | 'e1000e' | 'e1000';
const NIC_VIM: Record<NicType, string> = { vmxnet3: 'VirtualVmxnet3', e1000e: 'VirtualE1000e', e1000: 'VirtualE1000' };

export function nicChange(n: { key: number; type: NicType; networkName: string; network?: string | undefined; macAddress?: string | undefined; connected?: boolean | undefined }): DeviceChange {
  return {
    operation: 'add',
    device: typed(
      'device',
      NIC_VIM[n.type],
      join([
        val('key', n.key),
        typed(
          'backing',
          'VirtualEthernetCardNetworkBackingInfo',
          join([val('deviceName', n.networkName), n.network ? el('network', esc(n.network), { type: 'Network' }) : '']),
        ),
        el('connectable', join([val('startConnected', n.connected ?? false), val('allowGuestControl', true), val('connected', false)])),
        val('addressType', n.macAddress ? 'manual' : 'generated'),
        val('macAddress', n.macAddress),
      ]),
    ),
  };
}

export interface ConfigSpec {
  name?: string | undefined;
  guestId?: string | undefined;
  annotation?: string | undefined;
  vmPathName?: string | undefined;
  numCPUs?: number | undefined;
  numCoresPerSocket?: number | undefined;
  memoryMB?: number | undefined;
  deviceChange?: DeviceChange[] | undefined;
  extraConfig?: Record<string, string> | undefined;
  changeTrackingEnabled?: boolean | undefined;
  firmware?: 'bios' | 'efi' | undefined;
}

/** A VirtualMachineConfigSpec with the given element name (`spec`, `config` or an import spec's `configSpec`), in WSDL order. */
export function configSpecXml(name: 'spec' | 'config' | 'configSpec', s: ConfigSpec): Xml {
  return el(
    name,
    join([
      val('name', s.name),
      val('guestId', s.guestId),
      val('annotation', s.annotation),
      s.vmPathName !== undefined ? el('files', val('vmPathName', s.vmPathName) as Xml) : '',
      val('numCPUs', s.numCPUs),
      val('numCoresPerSocket', s.numCoresPerSocket),
      val('memoryMB', s.memoryMB),
      ...(s.deviceChange ?? []).map(deviceChangeXml),
      ...Object.entries(s.extraConfig ?? {}).map(([k, v]) =>
        typed('extraConfig', 'OptionValue', join([val('key', k), typed('value', 'xsd:string', esc(v))])),
      ),
      val('changeTrackingEnabled', s.changeTrackingEnabled),
      val('firmware', s.firmware),
    ]),
  );
}

/** Free units on a controller: not used, not the controller's own unit, below the limit. */
export function freeUnits(controller: Controller, used: { controllerKey?: number | undefined; unitNumber?: number | undefined }[], maxUnits = 16): number[] {
  const taken = new Set(used.filter((d) => d.controllerKey === controller.key).map((d) => d.unitNumber));
  const out: number[] = [];
  for (let u = 0; u < maxUnits; u++) {
    if (u === (controller.scsiCtlrUnitNumber ?? 7)) continue;
    if (!taken.has(u)) out.push(u);
  }
  return out;
}

