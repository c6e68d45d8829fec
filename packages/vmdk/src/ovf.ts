/**
 * OVF 1.x descriptor of one virtual machine, written from the hardware a
 * backup recorded (the shape of @vaultline/vsphere's HardwareDescription,
 * restated here so this package stays dependency-free).
 *
 * Element names, ResourceType numbers and sub-types follow what ovftool and
 * vSphere write and read (DSP0243 1.1 envelope, CIM RASD/VSSD 2.x):
 *   CPU 3 (+ vmw:CoresPerSocket), memory 4 (byte * 2^20), IDE controller 5,
 *   SCSI controller 6 with sub-type VirtualSCSI | lsilogic | lsilogicsas | buslogic,
 *   SATA 20 / vmware.sata.ahci, NVMe 20 / vmware.nvme.controller, Ethernet 10
 *   with sub-type VmxNet3 | E1000 | E1000e | PCNet32 | VmxNet2 | VmxNet,
 *   disk 17 with HostResource ovf:/disk/<diskId>, Parent = controller InstanceID,
 *   AddressOnParent = unit; firmware as <vmw:Config vmw:key="firmware">; the oldest
 *   vmx-NN family that runs the VM (see virtualSystemType).
 * rasd elements are written in the schema's (alphabetical) sequence order.
 *
 * Left out on purpose: MAC addresses (a copy deployed next to the source VM
 * must not clash with it; vSphere assigns new ones), controllers of kind
 * "other" (PCI, PS/2, SIO, USB: implicit on every VM), thin/thick provisioning
 * (OVF has no standard attribute; the deployer chooses the disk format).
 */
import { OvfError } from './errors.ts';

export const STREAM_OPTIMIZED_FORMAT = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

export type OvfControllerKind = 'pvscsi' | 'lsilogic' | 'lsisas' | 'buslogic' | 'ide' | 'sata' | 'nvme' | 'other';

export interface OvfController {
  key: number;
  kind: OvfControllerKind;
  busNumber: number;
}

export interface OvfDisk {
  key: number;
  label?: string | undefined;
  controllerKey: number;
  unitNumber: number;
  capacityBytes: number;
}

export interface OvfNic {
  key: number;
  /** vim type, e.g. VirtualVmxnet3 */
  type: string;
  label?: string | undefined;
  networkName?: string | undefined;
}

export interface OvfHardware {
  name: string;
  guestId?: string | undefined;
  guestFullName?: string | undefined;
  numCpu?: number | undefined;
  numCoresPerSocket?: number | undefined;
  memoryMiB?: number | undefined;
  firmware?: string | undefined;
  controllers: OvfController[];
  disks: OvfDisk[];
  nics: OvfNic[];
}

/** A disk's file in the package, in References order (= disk order). */
export interface OvfDiskFile {
  /** Hardware key of the disk this file backs. */
  diskKey: number;
  href: string;
  /** Disk size in bytes (the restore point's, which is what the VMDK holds). */
  capacity: number;
  /** Whole file size, when known before the descriptor is written. */
  size?: number | undefined;
  /** Set when the file is stored in chunks `<href>.000000000`, `<href>.000000001`, … */
  chunkSize?: number | undefined;
  /** Bytes of data the disk really holds, when known. */
  populatedSize?: number | undefined;
}

/** Same defaults as a full-VM restore (createSpecFromHardware) for what a description leaves out. */
export const OVF_DEFAULTS = { numCpu: 1, memoryMiB: 1024, guestId: 'otherGuest64', networkName: 'VM Network' } as const;

const CONTROLLER_KINDS = new Set<OvfControllerKind>(['pvscsi', 'lsilogic', 'lsisas', 'buslogic', 'ide', 'sata', 'nvme', 'other']);

const CONTROLLER_RASD: Record<Exclude<OvfControllerKind, 'other'>, { type: number; subType?: string; label: string }> = {
  pvscsi: { type: 6, subType: 'VirtualSCSI', label: 'SCSI controller' },
  lsilogic: { type: 6, subType: 'lsilogic', label: 'SCSI controller' },
  lsisas: { type: 6, subType: 'lsilogicsas', label: 'SCSI controller' },
  buslogic: { type: 6, subType: 'buslogic', label: 'SCSI controller' },
  ide: { type: 5, label: 'IDE controller' },
  sata: { type: 20, subType: 'vmware.sata.ahci', label: 'SATA controller' },
  nvme: { type: 20, subType: 'vmware.nvme.controller', label: 'NVMe controller' },
};

/** vim NIC type -> OVF ResourceSubType; anything else is exported as VmxNet3 and says so. */
const NIC_SUBTYPES: Record<string, string> = {
  VirtualVmxnet3: 'VmxNet3',
  VirtualE1000: 'E1000',
  VirtualE1000e: 'E1000e',
  VirtualPCNet32: 'PCNet32',
  VirtualVmxnet2: 'VmxNet2',
  VirtualVmxnet: 'VmxNet',
};

// ---------------------------------------------------------------------------
// Validating what a restore point recorded (it is stored as opaque JSON)

/** Device keys are vim ints (negative only in specs not yet applied). */
const KEY_MIN = -(2 ** 31);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function int(o: Record<string, unknown>, k: string, where: string, opts: { optional?: boolean; min?: number } = {}): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw new OvfError(`${where}.${k} is missing`);
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (opts.min ?? 0)) throw new OvfError(`${where}.${k} must be an integer >= ${opts.min ?? 0}, got ${JSON.stringify(v)}`);
  return v;
}

function str(o: Record<string, unknown>, k: string, where: string, optional = true): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new OvfError(`${where}.${k} is missing`);
  }
  if (typeof v !== 'string') throw new OvfError(`${where}.${k} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function list(o: Record<string, unknown>, k: string): Record<string, unknown>[] {
  const v = o[k] ?? [];
  if (!Array.isArray(v) || !v.every(isObj)) throw new OvfError(`hardware.${k} must be a list of objects`);
  return v;
}

/**
 * The hardware description of a restore point (`manifest.vm.hardware`), checked
 * field by field; an OvfError names the first field that is missing or wrong.
 */
export function parseOvfHardware(value: unknown): OvfHardware {
  if (!isObj(value)) throw new OvfError('the restore point holds no hardware description');
  const controllers = list(value, 'controllers').map((c, i): OvfController => {
    const where = `hardware.controllers[${i}]`;
    const kind = str(c, 'kind', where, false) as OvfControllerKind;
    if (!CONTROLLER_KINDS.has(kind)) throw new OvfError(`${where}.kind ${JSON.stringify(kind)} is not a known controller kind`);
    return { key: int(c, 'key', where, { min: KEY_MIN })!, kind, busNumber: int(c, 'busNumber', where)! };
  });
  const disks = list(value, 'disks').map((d, i): OvfDisk => {
    const where = `hardware.disks[${i}]`;
    return {
      key: int(d, 'key', where, { min: KEY_MIN })!,
      label: str(d, 'label', where),
      controllerKey: int(d, 'controllerKey', where, { min: KEY_MIN })!,
      unitNumber: int(d, 'unitNumber', where)!,
      capacityBytes: int(d, 'capacityBytes', where, { min: 1 })!,
    };
  });
  const nics = list(value, 'nics').map((n, i): OvfNic => {
    const where = `hardware.nics[${i}]`;
    return { key: int(n, 'key', where, { min: KEY_MIN })!, type: str(n, 'type', where, false)!, label: str(n, 'label', where), networkName: str(n, 'networkName', where) };
  });
  return {
    name: str(value, 'name', 'hardware', false)!,
    guestId: str(value, 'guestId', 'hardware'),
    guestFullName: str(value, 'guestFullName', 'hardware'),
    numCpu: int(value, 'numCpu', 'hardware', { optional: true, min: 1 }),
    numCoresPerSocket: int(value, 'numCoresPerSocket', 'hardware', { optional: true, min: 1 }),
    memoryMiB: int(value, 'memoryMiB', 'hardware', { optional: true, min: 1 }),
    firmware: str(value, 'firmware', 'hardware'),
    controllers,
    disks,
    nics,
  };
}

/** The controller of every disk, or an OvfError naming a disk OVF cannot place. */
export function diskControllers(hw: OvfHardware): Map<number, OvfController & { kind: Exclude<OvfControllerKind, 'other'> }> {
  const byKey = new Map(hw.controllers.map((c) => [c.key, c]));
  const out = new Map<number, OvfController & { kind: Exclude<OvfControllerKind, 'other'> }>();
  const slots = new Map<string, string>();
  for (const d of hw.disks) {
    const c = byKey.get(d.controllerKey);
    const name = d.label ?? `disk ${d.key}`;
    if (out.has(d.key)) throw new OvfError(`two disks have the key ${d.key}`);
    if (!c) throw new OvfError(`${name} is on controller ${d.controllerKey}, which the hardware description does not list`);
    if (c.kind === 'other') throw new OvfError(`${name} is on a controller OVF cannot describe (key ${c.key})`);
    const slot = `${c.key}:${d.unitNumber}`;
    const other = slots.get(slot);
    if (other) throw new OvfError(`${name} and ${other} are both on unit ${d.unitNumber} of controller ${c.key}`);
    slots.set(slot, name);
    out.set(d.key, c as OvfController & { kind: Exclude<OvfControllerKind, 'other'> });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Writing

const esc = (s: string): string => s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch]!);

/** One rasd Item; fields are emitted in the CIM schema's sequence order (alphabetical). */
function item(fields: Record<string, string | number | undefined>, extra: string[] = []): string {
  const lines = Object.keys(fields)
    .filter((k) => fields[k] !== undefined)
    .sort()
    .map((k) => `        <rasd:${k}>${esc(String(fields[k]))}</rasd:${k}>`);
  return ['      <Item>', ...lines, ...extra.map((e) => `        ${e}`), '      </Item>'].join('\n');
}

/**
 * The oldest virtual hardware family that runs the VM, so the package deploys on
 * as many hosts as possible: vmx-10 (ESXi 5.5: SATA, e1000e, EFI; 64 vCPUs,
 * 1 TiB), vmx-11 beyond that (128 vCPUs, 4080 GiB), vmx-13 for NVMe, vmx-14
 * above 4080 GiB (6128 GiB). Larger VMs still get vmx-14; the deployer then
 * has to raise it (the restore point does not record the VM's own version).
 */
export function virtualSystemType(hw: OvfHardware): string {
  const cpus = hw.numCpu ?? OVF_DEFAULTS.numCpu;
  const mem = hw.memoryMiB ?? OVF_DEFAULTS.memoryMiB;
  let v = 10;
  if (cpus > 64 || mem > 1024 * 1024) v = 11;
  if (hw.controllers.some((c) => c.kind === 'nvme')) v = 13;
  if (mem > 4080 * 1024) v = 14;
  return `vmx-${v}`;
}

/**
 * The descriptor text. `files` are the disks' files in References order; every
 * disk of `hw` must have exactly one (OvfError otherwise).
 */
/** What a package says about itself beyond the hardware (an appliance's descriptor uses these). */
export interface OvfDescriptorOptions {
  /** Text for the AnnotationSection. */
  annotation?: string;
  /** The virtual hardware family, when the caller knows better than virtualSystemType() (e.g. "vmx-13"). */
  virtualSystemType?: string;
  /** VM configuration keys (vmw:ExtraConfig), e.g. { "disk.EnableUUID": "TRUE" }. */
  extraConfig?: Record<string, string>;
  /** A ProductSection: what vSphere shows as the product, vendor and version. */
  product?: { product: string; vendor?: string; version?: string; fullVersion?: string; productUrl?: string };
}

export function ovfDescriptor(hw: OvfHardware, files: OvfDiskFile[], opts: OvfDescriptorOptions = {}): string {
  const placement = diskControllers(hw);
  const fileOf = new Map<number, { file: OvfDiskFile; n: number }>();
  files.forEach((f, i) => {
    if (fileOf.has(f.diskKey)) throw new OvfError(`two files for disk ${f.diskKey}`);
    if (!hw.disks.some((d) => d.key === f.diskKey)) throw new OvfError(`a file is given for disk ${f.diskKey}, which the hardware description does not list`);
    fileOf.set(f.diskKey, { file: f, n: i + 1 });
  });
  for (const d of hw.disks) if (!fileOf.has(d.key)) throw new OvfError(`${d.label ?? `disk ${d.key}`} (key ${d.key}) has no data in the package`);

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"' +
      ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"' +
      ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"' +
      ' xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
  );

  out.push('  <References>');
  files.forEach((f, i) => {
    const attrs = [`ovf:href="${esc(f.href)}"`, `ovf:id="file${i + 1}"`];
    if (f.size !== undefined) attrs.push(`ovf:size="${f.size}"`);
    if (f.chunkSize !== undefined) attrs.push(`ovf:chunkSize="${f.chunkSize}"`);
    out.push(`    <File ${attrs.join(' ')}/>`);
  });
  out.push('  </References>');

  out.push('  <DiskSection>', '    <Info>Virtual disk information</Info>');
  files.forEach((f, i) => {
    const attrs = [`ovf:capacity="${f.capacity}"`, 'ovf:capacityAllocationUnits="byte"', `ovf:diskId="vmdisk${i + 1}"`, `ovf:fileRef="file${i + 1}"`, `ovf:format="${STREAM_OPTIMIZED_FORMAT}"`];
    if (f.populatedSize !== undefined) attrs.push(`ovf:populatedSize="${f.populatedSize}"`);
    out.push(`    <Disk ${attrs.join(' ')}/>`);
  });
  out.push('  </DiskSection>');

  const networks = [...new Set(hw.nics.map((n) => n.networkName ?? OVF_DEFAULTS.networkName))];
  if (networks.length > 0) {
    out.push('  <NetworkSection>', '    <Info>The list of logical networks</Info>');
    for (const n of networks) out.push(`    <Network ovf:name="${esc(n)}">`, `      <Description>The ${esc(n)} network</Description>`, '    </Network>');
    out.push('  </NetworkSection>');
  }

  out.push(`  <VirtualSystem ovf:id="${esc(hw.name)}">`, '    <Info>A virtual machine</Info>', `    <Name>${esc(hw.name)}</Name>`);
  if (opts.annotation) out.push('    <AnnotationSection>', '      <Info>A human-readable annotation</Info>', `      <Annotation>${esc(opts.annotation)}</Annotation>`, '    </AnnotationSection>');
  if (opts.product) {
    const p = opts.product;
    out.push('    <ProductSection>', '      <Info>Information about the installed software</Info>', `      <Product>${esc(p.product)}</Product>`);
    if (p.vendor) out.push(`      <Vendor>${esc(p.vendor)}</Vendor>`);
    if (p.version) out.push(`      <Version>${esc(p.version)}</Version>`);
    if (p.fullVersion) out.push(`      <FullVersion>${esc(p.fullVersion)}</FullVersion>`);
    if (p.productUrl) out.push(`      <ProductUrl>${esc(p.productUrl)}</ProductUrl>`);
    out.push('    </ProductSection>');
  }
  // ovf:id 1 is CIM's "Other"; vSphere takes the exact guest from vmw:osType.
  out.push(`    <OperatingSystemSection ovf:id="1" vmw:osType="${esc(hw.guestId ?? OVF_DEFAULTS.guestId)}">`, '      <Info>The kind of installed guest operating system</Info>');
  if (hw.guestFullName) out.push(`      <Description>${esc(hw.guestFullName)}</Description>`);
  out.push('    </OperatingSystemSection>');

  out.push('    <VirtualHardwareSection>', '      <Info>Virtual hardware requirements</Info>', '      <System>');
  out.push('        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>', '        <vssd:InstanceID>0</vssd:InstanceID>');
  out.push(`        <vssd:VirtualSystemIdentifier>${esc(hw.name)}</vssd:VirtualSystemIdentifier>`, `        <vssd:VirtualSystemType>${esc(opts.virtualSystemType ?? virtualSystemType(hw))}</vssd:VirtualSystemType>`);
  out.push('      </System>');

  let id = 0;
  const cpus = hw.numCpu ?? OVF_DEFAULTS.numCpu;
  out.push(
    item(
      { AllocationUnits: 'hertz * 10^6', Description: 'Number of virtual CPUs', ElementName: `${cpus} virtual CPU(s)`, InstanceID: ++id, ResourceType: 3, VirtualQuantity: cpus },
      hw.numCoresPerSocket !== undefined ? [`<vmw:CoresPerSocket ovf:required="false">${hw.numCoresPerSocket}</vmw:CoresPerSocket>`] : [],
    ),
  );
  const mem = hw.memoryMiB ?? OVF_DEFAULTS.memoryMiB;
  out.push(item({ AllocationUnits: 'byte * 2^20', Description: 'Memory size', ElementName: `${mem}MB of memory`, InstanceID: ++id, ResourceType: 4, VirtualQuantity: mem }));

  const ctlId = new Map<number, number>();
  for (const c of hw.controllers) {
    if (c.kind === 'other') continue;
    const r = CONTROLLER_RASD[c.kind];
    ctlId.set(c.key, ++id);
    out.push(item({ Address: c.busNumber, Description: r.label, ElementName: `${r.label} ${c.busNumber}`, InstanceID: id, ResourceSubType: r.subType, ResourceType: r.type }));
  }
  hw.disks.forEach((d, i) => {
    const c = placement.get(d.key)!;
    const n = fileOf.get(d.key)!.n;
    out.push(item({ AddressOnParent: d.unitNumber, ElementName: d.label ?? `Hard disk ${i + 1}`, HostResource: `ovf:/disk/vmdisk${n}`, InstanceID: ++id, Parent: ctlId.get(c.key), ResourceType: 17 }));
  });
  hw.nics.forEach((nic, i) => {
    const sub = NIC_SUBTYPES[nic.type];
    const net = nic.networkName ?? OVF_DEFAULTS.networkName;
    out.push(
      item({
        AutomaticAllocation: 'true',
        Connection: net,
        Description: sub ? `${sub} ethernet adapter on "${net}"` : `${nic.type} exported as a VmxNet3 ethernet adapter on "${net}"`,
        ElementName: nic.label ?? `Network adapter ${i + 1}`,
        InstanceID: ++id,
        ResourceSubType: sub ?? 'VmxNet3',
        ResourceType: 10,
      }),
    );
  });
  if (hw.firmware === 'efi' || hw.firmware === 'bios') out.push(`      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="${hw.firmware}"/>`);
  for (const [key, value] of Object.entries(opts.extraConfig ?? {})) out.push(`      <vmw:ExtraConfig ovf:required="false" vmw:key="${esc(key)}" vmw:value="${esc(value)}"/>`);
  out.push('    </VirtualHardwareSection>', '  </VirtualSystem>', '</Envelope>', '');
  return out.join('\n');
}
