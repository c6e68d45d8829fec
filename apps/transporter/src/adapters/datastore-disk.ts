/**
 * A VM disk read over the network (NBD/NBDSSL) as its descriptor says it is laid out, not as a file name
 * suggests.
 *
 * The descriptor is fetched first (`/folder`, one small GET):
 *  - a flat disk (createType vmfs / monolithicFlat, one FLAT or VMFS extent) is read from the extent the
 *    descriptor names, with the network reader's large parallel Range requests;
 *  - a snapshot link (vmfsSparse on VMFS5, seSparse on VMFS6 and for large disks) is read as the composed
 *    chain: the delta links' grain tables and grains, and what no link holds from the base, each by Range
 *    requests (the VMDK package composes; this supplies the files);
 *  - anything else (vSAN and vVols objects have no file to fetch) is refused, naming the layout.
 *
 * Paths in a chain are datastore paths ("[ds1] vm/vm-000001.vmdk"); a parentFileNameHint that is absolute
 * (`/vmfs/volumes/<datastore name or UUID>/…`, as ESXi writes it when the parent sits elsewhere) is mapped
 * to the datastore it names. Direct SAN uses the same `openDiskByDescriptor` on the LUN's mounted files
 * (devices.ts confines those to the mount).
 */
import { posix } from 'node:path';
import { openVmdkChain, type FileOpener, type RandomAccessFile, type VmdkDescriptor } from '@vaultline/vmdk';
import { HttpError, parseDatastorePath, type DatastoreFile, type VSphereClient } from '@vaultline/vsphere';
import type { SourceReader } from '@vaultline/core';

/** The datastores a chain may span: name → its datacenter and the UUID in its URL (ds:///vmfs/volumes/<uuid>/). */
export type DatastoreDirectory = Map<string, { datacenter: string; uuid?: string | undefined }>;

export class DatastoreDiskError extends Error {
  override name = 'DatastoreDiskError';
}

/** Maps a datastore path, or an ESXi /vmfs/volumes path, to the file to fetch. */
export function datastoreFileOf(p: string, datastores: DatastoreDirectory): DatastoreFile {
  const vmfs = /^\/vmfs\/volumes\/([^/]+)\/(.+)$/.exec(p);
  if (vmfs) {
    const [, volume, rest] = vmfs as unknown as [string, string, string];
    for (const [name, d] of datastores) {
      if (name === volume || d.uuid === volume) return { datacenter: d.datacenter, datastore: name, path: rest };
    }
    throw new DatastoreDiskError(`${p}: no datastore of this vCenter is named or has the UUID ${volume}`);
  }
  const { datastore, path } = parseDatastorePath(p);
  const d = datastores.get(datastore);
  if (!d) throw new DatastoreDiskError(`datastore ${datastore} (of ${p}) is not in the inventory`);
  return { datacenter: d.datacenter, datastore, path };
}

/**
 * Where Range reads of datastore files go: straight to the ESXi host that runs the VM (a vCenter service ticket
 * per request, its certificate pinned by the ticket's thumbprint) when it answered a probe, else through
 * vCenter's /folder. A host that stops answering hands every later read to vCenter, noted for the run log.
 */
export class RangeSource {
  readonly notes: string[] = [];
  /** Which way the bytes come, for the run log. */
  readonly via: string;
  private host: string | null;

  constructor(
    private readonly client: VSphereClient,
    path: { direct: string } | { why: string },
  ) {
    this.host = 'direct' in path ? path.direct : null;
    this.via = 'direct' in path ? `directly from ESXi host ${path.direct} (a vCenter service ticket per request)` : `through vCenter (${path.why})`;
  }

  async readInto(file: DatastoreFile, start: number, length: number, into: Buffer): Promise<void> {
    const host = this.host;
    if (host) {
      try {
        await this.client.files.readRangeDirect(this.client.files.hostUrl(host, file), start, length, {}, into);
        return;
      } catch (err) {
        if (this.host) this.notes.push(`reading directly from ESXi host ${host} failed at byte ${start} of ${file.path} (${(err as Error).message}); the rest went through vCenter`);
        this.host = null;
      }
    }
    // Straight into place: a short answer is an error there (ProtocolError), never silently zero.
    await this.client.files.readRangeInto(file, start, length, into);
  }
}

/** Files of the vCenter's datastores for the VMDK readers: size by HEAD (through vCenter), reads through `source`. */
export function datastoreFiles(client: VSphereClient, datastores: DatastoreDirectory, source = new RangeSource(client, { why: 'reads of metadata' })): FileOpener {
  return {
    async open(p: string): Promise<RandomAccessFile> {
      const file = datastoreFileOf(p, datastores);
      const size = await client.files.size(file).catch((err: unknown) => {
        // The VMDK readers know a missing file by ENOENT (a chain then names the missing parent).
        if (err instanceof HttpError && err.status === 404) throw Object.assign(new DatastoreDiskError(`${p}: file not found on the datastore`), { code: 'ENOENT' });
        throw err;
      });
      if (size === undefined) throw new DatastoreDiskError(`the server does not say how large ${p} is`);
      return {
        size,
        async read(position, length, into, intoOffset) {
          const n = Math.min(length, size - position);
          if (n <= 0) return 0;
          await source.readInto(file, position, n, into.subarray(intoOffset));
          return n;
        },
        async close() {},
      };
    },
  };
}

/** What the network reader needs to read one flat extent fast. */
export type FlatReaderFactory = (file: DatastoreFile) => SourceReader;

const FLAT_TYPES = new Set(['vmfs', 'monolithicFlat', 'vmfsPreallocated', 'vmfsEagerZeroedThick', 'vmfsThin']);

/** The flat extent a descriptor names, when the disk is one flat extent from its first byte; else null. */
function singleFlatExtent(d: VmdkDescriptor): string | null {
  if (!FLAT_TYPES.has(d.createType) || d.extents.length !== 1) return null;
  const e = d.extents[0]!;
  if ((e.type !== 'FLAT' && e.type !== 'VMFS') || e.fileName === undefined || (e.offset ?? 0) !== 0) return null;
  return e.fileName;
}

/**
 * Opens the disk whose descriptor is at `descriptorPath` (as `files` names files) for reading `capacity`
 * bytes: a single flat extent through `flatReader` (given the extent's path, joined as the VMDK readers join
 * it), a vmfsSparse/seSparse chain composed by the VMDK package. `how` names the way in for errors ("over
 * the network"). `describe` tells the caller how it is read, for the run log.
 */
export async function openDiskByDescriptor(
  descriptorPath: string,
  capacity: number,
  files: FileOpener,
  flatReader: (extentPath: string) => SourceReader | Promise<SourceReader>,
  opts: { how: string; readAhead: { segmentBytes: number; depth: number }; via?: string; notes?: readonly string[] },
): Promise<SourceReader & { describe: string }> {
  // A flat extent or raw file named directly (vSphere names descriptors; tests and tools may not) is read as it is.
  if (!/\.vmdk$/i.test(descriptorPath) || /-flat\.vmdk$/i.test(descriptorPath)) {
    return Object.assign(await flatReader(descriptorPath), { describe: `file ${posix.basename(descriptorPath)}` });
  }
  const image = await openVmdkChain(descriptorPath, { files }).catch((err: unknown) => {
    throw new DatastoreDiskError(`${descriptorPath} cannot be read ${opts.how}: ${(err as Error).message}`);
  });
  if (image.capacity !== capacity) {
    await image.close();
    throw new DatastoreDiskError(`${descriptorPath} describes ${image.capacity} bytes, the VM's disk has ${capacity}`);
  }
  const flat = image.links.length === 0 && image.descriptor ? singleFlatExtent(image.descriptor) : null;
  if (flat !== null) {
    await image.close();
    const reader = await flatReader(posix.isAbsolute(flat) ? flat : posix.join(posix.dirname(descriptorPath), flat));
    return Object.assign(reader, { describe: `flat extent ${flat}${reader.via ? ` ${reader.via}` : ''}` });
  }
  if (image.links.length === 0) {
    const kind = image.descriptor?.createType ?? image.format;
    await image.close();
    throw new DatastoreDiskError(`${descriptorPath} is a ${kind} disk, which is not read ${opts.how} (flat disks and vmfsSparse/seSparse snapshot links are)`);
  }
  const links = image.links;
  return {
    capacity,
    describe: `snapshot chain of ${links.length} ${links[0]!.format} link${links.length > 1 ? 's' : ''} over its base${opts.via ? ` ${opts.via}` : ''}`,
    ...(opts.notes ? { notes: opts.notes } : {}),
    readAhead: opts.readAhead,
    read: (offset, length, into) => image.read(offset, length, into && into.length >= length ? into : undefined),
    close: () => image.close(),
  };
}

/** Opens `fileName` (the snapshot's disk, "[ds] vm/vm.vmdk" or a delta link) over the datastores, its bytes through `source`. */
export async function openDatastoreDisk(
  client: VSphereClient,
  fileName: string,
  capacity: number,
  datastores: DatastoreDirectory,
  flatReader: FlatReaderFactory,
  streams: number,
  source: RangeSource,
): Promise<SourceReader & { describe: string }> {
  return openDiskByDescriptor(fileName, capacity, datastoreFiles(client, datastores, source), (extent) => flatReader(datastoreFileOf(extent, datastores)), {
    how: 'over the network',
    // Each chain read asks for grain tables, then grains, link by link: several reads keep the streams busy.
    readAhead: { segmentBytes: 4 * 1024 * 1024, depth: Math.max(1, streams) },
    via: source.via,
    notes: source.notes,
  });
}
