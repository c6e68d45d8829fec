/**
 * Building descriptors for disks we write: the monolithicFlat / vmfs descriptor
 * that sits next to a raw `-flat.vmdk` on restore, and the embedded descriptor
 * of the streamOptimized files we produce. Identity fields are fresh per disk:
 * CID (8 hex digits), ddb.longContentID (32 hex digits, ends with the CID as
 * VMware writes it), ddb.uuid (16 bytes in VMware's "60 00 C2 ..." notation).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { NO_PARENT_CID, ddbAdapterType, ddbUuid, formatDescriptor, geometryFor } from './descriptor.ts';
import type { AdapterType, DescriptorExtent, VmdkDescriptor } from './descriptor.ts';
import { VmdkRangeError } from './errors.ts';

export interface DescriptorOptions {
  adapterType?: AdapterType;
  /** UUID string (any dash layout) or 32 hex digits; random when absent. */
  uuid?: string;
  /** 8 hex digits; random when absent. */
  cid?: string;
  /** ddb.longContentID, 32 hex digits; random (ending with the CID) when absent. */
  longContentId?: string;
  virtualHWVersion?: string | number;
  thinProvisioned?: boolean;
  changeTrackPath?: string;
}

export function buildDescriptor(createType: string, extents: DescriptorExtent[], opts: DescriptorOptions = {}): VmdkDescriptor {
  const sectors = extents.reduce((s, e) => s + e.sectors, 0);
  const adapter = opts.adapterType ?? 'lsilogic';
  const cid = (opts.cid ?? randomBytes(4).toString('hex')).toLowerCase();
  if (!/^[0-9a-f]{8}$/.test(cid) || cid === NO_PARENT_CID) throw new VmdkRangeError(`CID must be 8 hex digits other than ffffffff: ${cid}`);
  const longContentId = (opts.longContentId ?? randomBytes(12).toString('hex') + cid).toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(longContentId)) throw new VmdkRangeError(`longContentId must be 32 hex digits: ${longContentId}`);
  const geo = geometryFor(sectors, adapter);
  const ddb = new Map<string, string>([
    ['ddb.adapterType', ddbAdapterType(adapter)],
    ['ddb.geometry.cylinders', String(geo.cylinders)],
    ['ddb.geometry.heads', String(geo.heads)],
    ['ddb.geometry.sectors', String(geo.sectors)],
    ['ddb.longContentID', longContentId],
  ]);
  if (opts.thinProvisioned !== undefined) ddb.set('ddb.thinProvisioned', opts.thinProvisioned ? '1' : '0');
  ddb.set('ddb.uuid', ddbUuid(opts.uuid ?? randomUUID()));
  ddb.set('ddb.virtualHWVersion', String(opts.virtualHWVersion ?? 4));
  const d: VmdkDescriptor = {
    version: 1,
    cid,
    parentCid: NO_PARENT_CID,
    createType,
    header: new Map([['encoding', 'UTF-8']]),
    extents,
    ddb,
  };
  if (opts.changeTrackPath !== undefined) d.changeTrackPath = opts.changeTrackPath;
  return d;
}

function sectorsOf(capacity: number): number {
  if (!Number.isSafeInteger(capacity) || capacity <= 0 || capacity % 512 !== 0) {
    throw new VmdkRangeError(`capacity must be a positive multiple of 512 bytes, got ${capacity}`);
  }
  return capacity / 512;
}

/**
 * Descriptor text for a raw extent `flatFileName` of `capacity` bytes: createType
 * "monolithicFlat" with a FLAT extent (default), or "vmfs" with a VMFS extent as ESXi writes it.
 */
export function descriptorForFlat(
  capacity: number,
  flatFileName: string,
  opts: DescriptorOptions & { createType?: 'monolithicFlat' | 'vmfs' } = {},
): string {
  const createType = opts.createType ?? 'monolithicFlat';
  const extent: DescriptorExtent = { access: 'RW', sectors: sectorsOf(capacity), type: createType === 'vmfs' ? 'VMFS' : 'FLAT', fileName: flatFileName };
  if (createType === 'monolithicFlat') extent.offset = 0;
  return formatDescriptor(buildDescriptor(createType, [extent], opts));
}
