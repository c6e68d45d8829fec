/**
 * VMDK descriptor files: parse and write.
 *
 * A descriptor is UTF-8 text (a separate small file, or embedded in a hosted
 * sparse extent at `descriptorOffset`), in three sections:
 *
 *   # Disk DescriptorFile
 *   version=1                      header: key=value; CID/parentCID are 8 hex digits,
 *   encoding="UTF-8"               parentCID=ffffffff means "no parent"; createType names
 *   CID=0172e8a4                   the layout (vmfs, monolithicFlat, monolithicSparse,
 *   parentCID=ffffffff             streamOptimized, twoGbMaxExtentSparse, vmfsSparse, ...);
 *   createType="vmfs"              deltas add parentFileNameHint.
 *
 *   # Extent description
 *   RW 4096 VMFS "disk-flat.vmdk"  access (RW|RDONLY|NOACCESS), size in 512-byte sectors,
 *   RW 8 FLAT "x.img" 2048         type (FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, VMFSRDM,
 *   RW 100 ZERO                    VMFSRAW, SESPARSE), file relative to the descriptor,
 *                                  optional start offset (sectors) for FLAT extents.
 *   # Change Tracking File
 *   changeTrackPath="disk-ctk.vmdk"
 *
 *   # The Disk Data Base
 *   #DDB
 *   ddb.adapterType = "lsilogic"   ddb.* entries (adapterType, geometry.{cylinders,heads,sectors},
 *   ddb.uuid = "60 00 C2 ..."      uuid, longContentID, virtualHWVersion, thinProvisioned, ...).
 *
 * Lines starting with `#` are comments; blank lines are ignored; `\r\n` is accepted.
 * The parsed form keeps every key (header, ddb) in file order, so
 * `parseDescriptor(formatDescriptor(d))` equals `d` and formatting a parsed real
 * descriptor loses nothing but comments and spacing.
 */
import { VmdkDescriptorError } from './errors.ts';

export type ExtentAccess = 'RW' | 'RDONLY' | 'NOACCESS';
export const EXTENT_TYPES = ['FLAT', 'SPARSE', 'ZERO', 'VMFS', 'VMFSSPARSE', 'VMFSRDM', 'VMFSRAW', 'SESPARSE'] as const;
export type ExtentType = (typeof EXTENT_TYPES)[number];

export interface DescriptorExtent {
  access: ExtentAccess;
  /** Size in 512-byte sectors. */
  sectors: number;
  type: ExtentType;
  /** File name relative to the descriptor; absent for ZERO extents. */
  fileName?: string;
  /** Start offset in sectors inside the file (FLAT/VMFS extents), when given. */
  offset?: number;
}

export interface VmdkDescriptor {
  version: number;
  /** Content id, 8 lower-case hex digits. */
  cid: string;
  /** Parent content id; `ffffffff` for a base disk. */
  parentCid: string;
  createType: string;
  /** Every other header key (encoding, isNativeSnapshot, parentFileNameHint, ...) in file order. */
  header: Map<string, string>;
  extents: DescriptorExtent[];
  changeTrackPath?: string;
  /** `ddb.*` entries, keys including the `ddb.` prefix, in file order. */
  ddb: Map<string, string>;
}

export const NO_PARENT_CID = 'ffffffff';
export const SECTOR = 512;

const KEY_RE = /^([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/;
const EXTENT_RE = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$/;
const HEX8_RE = /^[0-9a-fA-F]{1,8}$/;

function unquote(raw: string, line: number): string {
  const v = raw.trim();
  if (v.startsWith('"')) {
    if (v.length < 2 || !v.endsWith('"')) throw new VmdkDescriptorError(`unterminated quoted value: ${v}`, { line });
    return v.slice(1, -1);
  }
  return v;
}

/**
 * The text of a descriptor file: up to its first NUL. qemu pads the file with NULs to a whole sector, and
 * when qemu-img rewrites a descriptor in place with a shorter text it leaves the old text's tail after the
 * new NUL (seen in CI: `…\0\n\0…`), so what follows the first NUL is not part of the descriptor.
 */
export function descriptorText(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return bytes.subarray(0, nul >= 0 ? nul : bytes.length).toString('utf8').replace(/^\uFEFF/, '');
}

/** Parse descriptor text. Throws `VmdkDescriptorError` (code DESCRIPTOR) with a line number on malformed input. */
export function parseDescriptor(text: string, options?: { path?: string }): VmdkDescriptor {
  const path = options?.path;
  // Embedded descriptors are NUL-padded to whole sectors.
  const nul = text.indexOf('\0');
  const body = nul >= 0 ? text.slice(0, nul) : text;
  const header = new Map<string, string>();
  const ddb = new Map<string, string>();
  const extents: DescriptorExtent[] = [];
  let changeTrackPath: string | undefined;
  let sawAnything = false;

  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    sawAnything = true;
    const ext = EXTENT_RE.exec(line);
    if (ext) {
      const [, access, sectors, rawType, fileName, offset] = ext;
      const type = (rawType ?? '').toUpperCase();
      if (!(EXTENT_TYPES as readonly string[]).includes(type)) {
        throw new VmdkDescriptorError(`unknown extent type ${rawType}`, { line: lineNo, path });
      }
      const n = Number(sectors);
      if (!Number.isSafeInteger(n)) throw new VmdkDescriptorError(`extent size out of range: ${sectors}`, { line: lineNo, path });
      const extent: DescriptorExtent = { access: access as ExtentAccess, sectors: n, type: type as ExtentType };
      if (fileName !== undefined) extent.fileName = fileName;
      if (offset !== undefined) {
        const o = Number(offset);
        if (!Number.isSafeInteger(o)) throw new VmdkDescriptorError(`extent offset out of range: ${offset}`, { line: lineNo, path });
        extent.offset = o;
      }
      if (type !== 'ZERO' && extent.fileName === undefined) {
        throw new VmdkDescriptorError(`extent of type ${type} needs a file name`, { line: lineNo, path });
      }
      extents.push(extent);
      continue;
    }
    if (/^(RW|RDONLY|NOACCESS)\b/.test(line)) {
      throw new VmdkDescriptorError(`malformed extent line: ${line}`, { line: lineNo, path });
    }
    const kv = KEY_RE.exec(line);
    if (!kv) throw new VmdkDescriptorError(`expected key=value, extent or comment, got: ${line}`, { line: lineNo, path });
    const key = kv[1] ?? '';
    const value = unquote(kv[2] ?? '', lineNo);
    if (key.startsWith('ddb.')) {
      if (ddb.has(key)) throw new VmdkDescriptorError(`duplicate key ${key}`, { line: lineNo, path });
      ddb.set(key, value);
    } else if (key === 'changeTrackPath') {
      if (changeTrackPath !== undefined) throw new VmdkDescriptorError(`duplicate key ${key}`, { line: lineNo, path });
      changeTrackPath = value;
    } else {
      if (header.has(key)) throw new VmdkDescriptorError(`duplicate key ${key}`, { line: lineNo, path });
      header.set(key, value);
    }
  }
  if (!sawAnything) throw new VmdkDescriptorError('empty descriptor', { path });

  const take = (key: string): string | undefined => {
    const v = header.get(key);
    header.delete(key);
    return v;
  };
  const versionText = take('version');
  if (versionText === undefined) throw new VmdkDescriptorError('missing version', { path });
  const version = Number(versionText);
  if (!Number.isInteger(version) || version < 1) throw new VmdkDescriptorError(`bad version: ${versionText}`, { path });
  const cid = take('CID') ?? NO_PARENT_CID;
  const parentCid = take('parentCID') ?? NO_PARENT_CID;
  for (const [k, v] of [['CID', cid], ['parentCID', parentCid]] as const) {
    if (!HEX8_RE.test(v)) throw new VmdkDescriptorError(`${k} must be up to 8 hex digits, got ${v}`, { path });
  }
  const createType = take('createType');
  if (createType === undefined || createType === '') throw new VmdkDescriptorError('missing createType', { path });
  if (extents.length === 0) throw new VmdkDescriptorError('no extents', { path });

  const d: VmdkDescriptor = {
    version,
    cid: cid.toLowerCase().padStart(8, '0'),
    parentCid: parentCid.toLowerCase().padStart(8, '0'),
    createType,
    header,
    extents,
    ddb,
  };
  if (changeTrackPath !== undefined) d.changeTrackPath = changeTrackPath;
  return d;
}

function quote(value: string): string {
  if (value.includes('"') || value.includes('\n')) throw new VmdkDescriptorError(`value cannot be written to a descriptor: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/** Write a descriptor in the layout VMware uses. */
export function formatDescriptor(d: VmdkDescriptor): string {
  const out: string[] = ['# Disk DescriptorFile', `version=${d.version}`];
  const headerEntries = [...d.header];
  const encoding = headerEntries.find(([k]) => k === 'encoding');
  if (encoding) out.push(`encoding=${quote(encoding[1])}`);
  out.push(`CID=${d.cid}`, `parentCID=${d.parentCid}`);
  for (const [k, v] of headerEntries) if (k !== 'encoding' && k !== 'parentFileNameHint') out.push(`${k}=${quote(v)}`);
  out.push(`createType=${quote(d.createType)}`);
  const hint = d.header.get('parentFileNameHint');
  if (hint !== undefined) out.push(`parentFileNameHint=${quote(hint)}`);
  out.push('', '# Extent description');
  for (const e of d.extents) {
    if (!Number.isSafeInteger(e.sectors) || e.sectors < 0) throw new VmdkDescriptorError(`bad extent size ${e.sectors}`);
    let line = `${e.access} ${e.sectors} ${e.type}`;
    if (e.fileName !== undefined) {
      line += ` ${quote(e.fileName)}`;
      if (e.offset !== undefined) line += ` ${e.offset}`;
    } else if (e.type !== 'ZERO') {
      throw new VmdkDescriptorError(`extent of type ${e.type} needs a file name`);
    }
    out.push(line);
  }
  if (d.changeTrackPath !== undefined) out.push('', '# Change Tracking File', `changeTrackPath=${quote(d.changeTrackPath)}`);
  out.push('', '# The Disk Data Base', '#DDB', '');
  for (const [k, v] of d.ddb) {
    if (!k.startsWith('ddb.')) throw new VmdkDescriptorError(`ddb key must start with "ddb.": ${k}`);
    out.push(`${k} = ${quote(v)}`);
  }
  return out.join('\n') + '\n';
}

/** Disk size in sectors described by the extents. */
export function descriptorSectors(d: VmdkDescriptor): number {
  return d.extents.reduce((sum, e) => sum + e.sectors, 0);
}

// ---- helpers for creating descriptors ----

/** Adapter kinds we accept; the descriptor only distinguishes IDE from the SCSI flavours. */
export type AdapterType = 'ide' | 'sata' | 'buslogic' | 'lsilogic' | 'lsisas' | 'pvscsi' | 'nvme' | 'legacyESX';

export const ADAPTER_TYPES: readonly AdapterType[] = ['ide', 'sata', 'buslogic', 'lsilogic', 'lsisas', 'pvscsi', 'nvme', 'legacyESX'];

/** A controller kind (e.g. a restore point's disk `controller`) as an adapter type, `lsilogic` when unknown. */
export function adapterTypeFor(controller: string | undefined): AdapterType {
  return ADAPTER_TYPES.find((a) => a === controller) ?? 'lsilogic';
}

/** The value VMware writes to `ddb.adapterType` for a controller kind. */
export function ddbAdapterType(a: AdapterType): 'ide' | 'buslogic' | 'lsilogic' | 'legacyESX' {
  switch (a) {
    case 'ide':
    case 'sata':
      return 'ide';
    case 'buslogic':
      return 'buslogic';
    case 'legacyESX':
      return 'legacyESX';
    default:
      return 'lsilogic';
  }
}

/** CHS geometry the way hosted products and qemu compute it: IDE 16 heads, SCSI 255 heads, 63 sectors/track. */
export function geometryFor(capacitySectors: number, adapter: AdapterType): { cylinders: number; heads: number; sectors: number } {
  const heads = ddbAdapterType(adapter) === 'ide' ? 16 : 255;
  const sectors = 63;
  const cylinders = Math.max(1, Math.min(Math.floor(capacitySectors / (heads * sectors)), 65535));
  return { cylinders, heads, sectors };
}

/** `ddb.uuid` format: 16 hex bytes, space separated, a dash between byte 8 and 9. Accepts a UUID string or 32 hex digits. */
export function ddbUuid(uuid: string): string {
  const hex = uuid.replace(/[^0-9a-fA-F]/g, '').toLowerCase();
  if (hex.length !== 32) throw new VmdkDescriptorError(`not a UUID: ${uuid}`);
  const bytes = hex.match(/../g) ?? [];
  return `${bytes.slice(0, 8).join(' ')}-${bytes.slice(8).join(' ')}`;
}
