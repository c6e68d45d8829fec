/**
 * Independent checks of an OVA, shared by this package's tests and the
 * Director's (exported as `@vaultline/vmdk/testing`): a strict tar reader of
 * our own (checksums, ustar magic, pax sizes, end blocks), GNU tar's listing,
 * and the OVF read back by Python's ElementTree and mapped to hardware with
 * tables written apart from the writer's. Also qemu-img, the independent VMDK reader.
 */
import { spawnSync } from 'node:child_process';

export { ensureQemuImg, qemuImg, qemuToRaw } from './helpers.ts';

export interface TarItem {
  name: string;
  size: number;
  /** Offset of the data in the archive. */
  offset: number;
  mode: number;
}

const field = (b: Buffer, off: number, len: number): string => b.toString('ascii', off, off + len).replace(/\0.*$/s, '');
const octal = (b: Buffer, off: number, len: number): number => parseInt(field(b, off, len).trim() || '0', 8);

/** Regular files of a ustar archive, in order. Throws on anything malformed (bad checksum, missing end, trailing garbage). */
export function readTar(tar: Buffer): TarItem[] {
  const out: TarItem[] = [];
  let pos = 0;
  let paxSize: number | undefined;
  for (;;) {
    if (pos + 512 > tar.length) throw new Error(`tar ends at ${tar.length} without the two zero end blocks`);
    const h = tar.subarray(pos, pos + 512);
    if (h.every((x) => x === 0)) {
      if (pos + 1024 > tar.length || !tar.subarray(pos + 512, pos + 1024).every((x) => x === 0)) throw new Error(`only one zero block at ${pos}`);
      if (!tar.subarray(pos + 1024).every((x) => x === 0)) throw new Error(`data after the end of the archive at ${pos + 1024}`);
      return out;
    }
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== octal(h, 148, 8)) throw new Error(`bad header checksum at ${pos}`);
    if (h.toString('ascii', 257, 263) !== 'ustar\0' || h.toString('ascii', 263, 265) !== '00') throw new Error(`not a POSIX ustar header at ${pos}`);
    const type = String.fromCharCode(h[156]!);
    const size = octal(h, 124, 12);
    const data = pos + 512;
    if (type === 'x') {
      const text = tar.toString('utf8', data, data + size);
      const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(text);
      paxSize = m ? Number(m[1]) : undefined;
    } else if (type === '0' || type === '\0') {
      const prefix = field(h, 345, 155);
      const name = (prefix ? `${prefix}/` : '') + field(h, 0, 100);
      const real = paxSize ?? size;
      out.push({ name, size: real, offset: data, mode: octal(h, 100, 8) });
      paxSize = undefined;
      pos = data + Math.ceil(real / 512) * 512;
      continue;
    } else {
      throw new Error(`unexpected tar entry type ${JSON.stringify(type)} at ${pos}`);
    }
    pos = data + Math.ceil(size / 512) * 512;
  }
}

/** `tar tvf`: names and sizes as GNU tar reads them. */
export function systemTarList(path: string): { name: string; size: number }[] {
  const r = spawnSync('tar', ['--numeric-owner', '-tvf', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar tvf ${path} failed: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const m = /^\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.+)$/.exec(line);
      if (!m) throw new Error(`cannot read tar listing line ${JSON.stringify(line)}`);
      return { name: m[2]!, size: Number(m[1]) };
    });
}

export interface OvfSummary {
  root: string;
  first: string;
  references: { id: string; href: string; size: string | null; chunkSize: string | null }[];
  disks: { diskId: string; fileRef: string; capacity: string; capacityAllocationUnits: string | null; format: string; populatedSize: string | null }[];
  networks: string[];
  system: { id: string; name: string; osId: string; osType: string | null; virtualSystemType: string };
  /** rasd fields by local name; VMware extensions as "vmw:<name>". */
  items: Record<string, string>[];
  config: { key: string; value: string }[];
  /** vmw:ExtraConfig entries (VM configuration keys such as disk.EnableUUID). */
  extraConfig: { key: string; value: string }[];
  product: { Product: string | null; Vendor: string | null; Version: string | null } | null;
}

const SUMMARY_PY = String.raw`
import json, sys, xml.etree.ElementTree as ET
O = 'http://schemas.dmtf.org/ovf/envelope/1'
R = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData'
S = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData'
V = 'http://www.vmware.com/schema/ovf'
NS = {'ovf': O, 'rasd': R, 'vssd': S, 'vmw': V}
root = ET.fromstring(sys.stdin.buffer.read())
a = lambda el, n, ns=O: el.get('{%s}%s' % (ns, n))
vs = root.find('ovf:VirtualSystem', NS)
osec = vs.find('ovf:OperatingSystemSection', NS)
hw = vs.find('ovf:VirtualHardwareSection', NS)
def item(it):
    d = {}
    for c in it:
        ns, tag = c.tag[1:].split('}')
        d[tag if ns == R else ('vmw:' + tag if ns == V else c.tag)] = (c.text or '').strip()
    return d
print(json.dumps({
    'root': root.tag,
    'first': list(root)[0].tag,
    'references': [{'id': a(f, 'id'), 'href': a(f, 'href'), 'size': a(f, 'size'), 'chunkSize': a(f, 'chunkSize')} for f in root.findall('ovf:References/ovf:File', NS)],
    'disks': [{k: a(d, k) for k in ('diskId', 'fileRef', 'capacity', 'capacityAllocationUnits', 'format', 'populatedSize')} for d in root.findall('ovf:DiskSection/ovf:Disk', NS)],
    'networks': [a(n, 'name') for n in root.findall('ovf:NetworkSection/ovf:Network', NS)],
    'system': {'id': a(vs, 'id'), 'name': vs.find('ovf:Name', NS).text, 'osId': a(osec, 'id'), 'osType': a(osec, 'osType', V),
               'virtualSystemType': hw.find('ovf:System/vssd:VirtualSystemType', NS).text},
    'items': [item(i) for i in hw.findall('ovf:Item', NS)],
    'config': [{'key': c.get('{%s}key' % V), 'value': c.get('{%s}value' % V)} for c in hw.findall('vmw:Config', NS)],
    'extraConfig': [{'key': c.get('{%s}key' % V), 'value': c.get('{%s}value' % V)} for c in hw.findall('vmw:ExtraConfig', NS)],
    'product': (lambda p: None if p is None else {k: (p.findtext('ovf:' + k, namespaces=NS)) for k in ('Product', 'Vendor', 'Version')})(vs.find('ovf:ProductSection', NS)),
}))
`;

/** The descriptor as Python's ElementTree reads it (a second, independent XML parser). */
export function summariseOvf(xml: Buffer | string): OvfSummary {
  const r = spawnSync('python3', ['-c', SUMMARY_PY], { input: xml, encoding: 'utf8' });
  if (r.error) throw new Error(`these checks need python3 (${r.error.message})`);
  if (r.status !== 0) throw new Error(`the OVF descriptor does not parse: ${r.stderr}`);
  return JSON.parse(r.stdout) as OvfSummary;
}

/** Hardware in a form both sides can be reduced to. */
export interface ComparableHardware {
  name: string;
  numCpu: number;
  numCoresPerSocket: number | null;
  memoryMiB: number;
  guestId: string;
  firmware: string | null;
  controllers: { kind: string; busNumber: number }[];
  disks: { controller: string; unitNumber: number; capacityBytes: number }[];
  nics: { type: string; networkName: string }[];
}

// From the OVF side: ResourceType/ResourceSubType as ovftool and govmomi read them.
const OVF_CONTROLLERS: Record<string, string> = {
  '5/': 'ide',
  '6/virtualscsi': 'pvscsi',
  '6/lsilogic': 'lsilogic',
  '6/lsilogicsas': 'lsisas',
  '6/buslogic': 'buslogic',
  '20/vmware.sata.ahci': 'sata',
  '20/vmware.nvme.controller': 'nvme',
};
const OVF_NICS: Record<string, string> = { vmxnet3: 'VirtualVmxnet3', e1000: 'VirtualE1000', e1000e: 'VirtualE1000e', pcnet32: 'VirtualPCNet32', vmxnet2: 'VirtualVmxnet2', vmxnet: 'VirtualVmxnet' };

export function hardwareFromOvf(s: OvfSummary): ComparableHardware {
  const byId = new Map(s.items.map((i) => [i['InstanceID'], i]));
  const ctlName = (i: Record<string, string>): string => {
    const kind = OVF_CONTROLLERS[`${i['ResourceType']}/${(i['ResourceSubType'] ?? '').toLowerCase()}`];
    if (!kind) throw new Error(`unknown controller item ${JSON.stringify(i)}`);
    return `${kind}${i['Address']}`;
  };
  const capacityOf = (hostResource: string): number => {
    const d = s.disks.find((x) => `ovf:/disk/${x.diskId}` === hostResource);
    if (!d) throw new Error(`no Disk for ${hostResource}`);
    if ((d.capacityAllocationUnits ?? 'byte') !== 'byte') throw new Error(`unexpected units ${d.capacityAllocationUnits}`);
    return Number(d.capacity);
  };
  const one = (type: string) => {
    const found = s.items.filter((i) => i['ResourceType'] === type);
    if (found.length !== 1) throw new Error(`expected one item of ResourceType ${type}, found ${found.length}`);
    return found[0]!;
  };
  const cpu = one('3');
  return {
    name: s.system.name,
    numCpu: Number(cpu['VirtualQuantity']),
    numCoresPerSocket: cpu['vmw:CoresPerSocket'] ? Number(cpu['vmw:CoresPerSocket']) : null,
    memoryMiB: Number(one('4')['VirtualQuantity']),
    guestId: s.system.osType ?? '',
    firmware: s.config.find((c) => c.key === 'firmware')?.value ?? null,
    controllers: s.items.filter((i) => ['5', '6', '20'].includes(i['ResourceType']!)).map((i) => ({ kind: ctlName(i).replace(/\d+$/, ''), busNumber: Number(i['Address']) })),
    disks: s.items
      .filter((i) => i['ResourceType'] === '17')
      .map((i) => ({ controller: ctlName(byId.get(i['Parent'])!), unitNumber: Number(i['AddressOnParent']), capacityBytes: capacityOf(i['HostResource']!) })),
    nics: s.items.filter((i) => i['ResourceType'] === '10').map((i) => ({ type: OVF_NICS[(i['ResourceSubType'] ?? '').toLowerCase()] ?? `?${i['ResourceSubType']}`, networkName: i['Connection']! })),
  };
}

/** The same reduction of a recorded hardware description (HardwareDescription's shape). */
export function comparableHardware(hw: {
  name: string;
  numCpu?: number | undefined;
  numCoresPerSocket?: number | undefined;
  memoryMiB?: number | undefined;
  guestId?: string | undefined;
  firmware?: string | undefined;
  controllers: { key: number; kind: string; busNumber: number }[];
  disks: { controllerKey: number; unitNumber: number; capacityBytes: number }[];
  nics: { type: string; networkName?: string | undefined }[];
}): ComparableHardware {
  const ctl = (key: number) => {
    const c = hw.controllers.find((x) => x.key === key)!;
    return `${c.kind}${c.busNumber}`;
  };
  return {
    name: hw.name,
    numCpu: hw.numCpu ?? 1,
    numCoresPerSocket: hw.numCoresPerSocket ?? null,
    memoryMiB: hw.memoryMiB ?? 1024,
    guestId: hw.guestId ?? 'otherGuest64',
    firmware: hw.firmware === 'efi' || hw.firmware === 'bios' ? hw.firmware : null,
    controllers: hw.controllers.filter((c) => c.kind !== 'other').map((c) => ({ kind: c.kind, busNumber: c.busNumber })),
    disks: hw.disks.map((d) => ({ controller: ctl(d.controllerKey), unitNumber: d.unitNumber, capacityBytes: d.capacityBytes })),
    nics: hw.nics.map((n) => ({ type: n.type, networkName: n.networkName ?? 'VM Network' })),
  };
}

/** Parses a .mf: file name -> SHA-256, checking the line format. */
export function readManifest(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^SHA256\(([^)]+)\)= ([0-9a-f]{64})$/.exec(line);
    if (!m) throw new Error(`bad manifest line ${JSON.stringify(line)}`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}
