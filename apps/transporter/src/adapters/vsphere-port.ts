/**
 * The backup cycle's VSpherePort over @vaultline/vsphere, one logged-in client
 * per vCenter, cached for the sweep and reused by runs (a restore's session
 * gets a RestorePort, restore-port.ts). Network reads fetch several byte
 * ranges of the disk's flat extent at once.
 */
import { connect } from 'node:net';
import { SECRET_LABELS, type Unsealer } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { ApplicationQuiesceFault, hostsMounting, parseDatastorePath, VSphereClient, type Disk, type VirtualMachine } from '@vaultline/vsphere';
import { parseRestoreTarget, QuiesceError, SAN_NEVER, undoRestore, type DatastoreInfo, type SourceReader, type VmDisk, type VmInfo, type VSpherePort } from '@vaultline/core';
import type { RestoreSession, VCenterRow, VSphereSession } from '../sessions.ts';
import { openDatastoreDisk, RangeSource, type DatastoreDirectory } from './datastore-disk.ts';
import { openLeaseDisk } from './lease-disk.ts';
import { restorePort } from './restore-port.ts';

/** Bytes per Range request: large enough that a round trip costs little next to the transfer. */
const RANGE = 4 * 1024 * 1024;

function toDisk(d: Disk): VmDisk {
  const { datastore } = parseDatastorePath(d.fileName);
  return {
    key: d.key,
    label: d.label ?? `disk ${d.key}`,
    capacityBytes: d.capacityBytes,
    fileName: d.fileName,
    datastore,
    controller: d.controller === 'other' ? 'unknown' : d.controller,
    busNumber: d.busNumber,
    unitNumber: d.unitNumber,
    ...(d.uuid ? { uuid: d.uuid } : {}),
    ...(d.changeId ? { changeId: d.changeId } : {}),
    thin: d.thin,
    diskMode: d.diskMode,
  };
}

export function toVmInfo(vm: VirtualMachine): VmInfo {
  return {
    moref: vm.moref,
    name: vm.name,
    ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}),
    ...(vm.biosUuid ? { biosUuid: vm.biosUuid } : {}),
    powerState: vm.powerState,
    changeTrackingEnabled: vm.changeTrackingEnabled,
    ...(vm.host ? { host: vm.host } : {}),
    disks: vm.disks.map(toDisk),
  };
}

class NetworkReader implements SourceReader {
  /**
   * The copy keeps two requests per stream in flight, each of up to RANGE bytes: the next one is queued on
   * the connection while the current one streams, and CBT's small areas (64 KiB – 1 MiB) still keep every
   * stream busy. Measured in the transport bench, the source then stops being the bottleneck of NBD.
   */
  readonly readAhead: { segmentBytes: number; depth: number };
  readonly via: string;
  readonly notes: readonly string[];

  constructor(
    private readonly file: { datacenter: string; datastore: string; path: string },
    readonly capacity: number,
    private readonly streams: number,
    private readonly source: RangeSource,
  ) {
    this.readAhead = { segmentBytes: RANGE, depth: Math.max(1, streams) * 2 };
    this.via = source.via;
    this.notes = source.notes;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    const parts: { start: number; length: number }[] = [];
    for (let p = 0; p < length; p += RANGE) parts.push({ start: offset + p, length: Math.min(RANGE, length - p) });
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < parts.length; i = next++) {
        const part = parts[i]!;
        await this.source.readInto(this.file, part.start, part.length, out.subarray(part.start - offset));
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.streams, parts.length) }, worker));
    return out;
  }

  async close(): Promise<void> {}
}

/** Whether something answers on port 443 of `host` within 2 s: null when it does, else why not. */
function probeHost(host: string): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host, port: 443, timeout: 2000 });
    const done = (why: string | null) => {
      socket.destroy();
      resolve(why);
    };
    socket.once('connect', () => done(null));
    socket.once('timeout', () => done(`host ${host} did not answer on port 443 within 2 s`));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? `host name ${host} does not resolve here` : `host ${host} cannot be reached: ${err.code ?? err.message}`));
  });
}

export function vspherePort(client: VSphereClient, opts: { nbdStreams: number }): VSpherePort & { datastoresCache(): Promise<Map<string, { datacenter: string; uuid: string | undefined; info: DatastoreInfo }>> } {
  let datastores: Promise<Map<string, { datacenter: string; uuid: string | undefined; info: DatastoreInfo }>> | null = null;
  let hosts: Promise<Map<string, string>> | null = null;
  // One inventory walk per port feeds both the host names and the datastores.
  let inventory: ReturnType<typeof client.inventory.all> | null = null;
  const loadInventory = () => (inventory ??= client.inventory.all());
  const hostProbes = new Map<string, Promise<string | null>>();
  const loadHosts = () => (hosts ??= loadInventory().then((inv) => new Map(inv.hosts.map((h) => [h.moref, h.name]))));
  /** How to read a flat extent of a VM running on `hostMoref`: directly from that host when it answers, else through vCenter. */
  const readPath = async (hostMoref: string | undefined): Promise<{ direct: string } | { why: string }> => {
    if (!client.isVCenter) return { why: 'connected to the ESXi host itself' };
    if (!hostMoref) return { why: 'vCenter does not say which host runs the VM' };
    const name = (await loadHosts()).get(hostMoref);
    if (!name) return { why: `host ${hostMoref} is not in the inventory` };
    let probe = hostProbes.get(name);
    if (!probe) hostProbes.set(name, (probe = probeHost(name)));
    const why = await probe;
    return why === null ? { direct: name } : { why };
  };
  const loadDatastores = () =>
    (datastores ??= loadInventory().then(
      (inv) =>
        new Map(
          inv.datastores.map((d) => [
            d.name,
            {
              datacenter: d.datacenter,
              // ds:///vmfs/volumes/<uuid>/: how ESXi names the datastore in absolute paths of a snapshot chain.
              uuid: d.vmfs?.uuid ?? /\/vmfs\/volumes\/([^/]+)\/?$/.exec(d.url ?? '')?.[1],
              info: {
                name: d.name,
                type: d.type,
                naaIds: (d.vmfs?.extents ?? []).map((e) => e.diskName),
                extents: (d.vmfs?.extents ?? []).map((e) => ({ naa: e.diskName, partition: e.partition })),
                hosts: hostsMounting(inv, d),
              },
            },
          ]),
        ),
    ));

  return {
    datastoresCache: loadDatastores,
    async getVm(moref) {
      return toVmInfo(await client.inventory.vm(moref));
    },
    async datastore(name) {
      const d = (await loadDatastores()).get(name);
      if (!d) throw new Error(`datastore ${name} is not in the inventory`);
      return d.info;
    },
    async enableCbt(vmMoref) {
      await client.cbt.enable(vmMoref);
    },
    async createSnapshot(vmMoref, runVmId, quiesce, onProgress) {
      try {
        return await client.snapshots.create(vmMoref, { runId: runVmId, quiesce, ...(onProgress ? { onProgress } : {}) });
      } catch (err) {
        if (err instanceof ApplicationQuiesceFault) throw new QuiesceError(err.message, { cause: err });
        throw err;
      }
    },
    async snapshotDisks(snapshot) {
      return (await client.snapshots.disks(snapshot)).map(toDisk);
    },
    snapshotHardware: (snapshot) => client.snapshots.hardware(snapshot),
    async removeSnapshot(snapshot, onProgress) {
      await client.snapshots.remove(snapshot, { consolidate: true, ...(onProgress ? { onProgress } : {}) });
    },
    async changedAreas(vmMoref, snapshotMoref, deviceKey, changeId, capacity) {
      return (await client.cbt.queryChangedDiskAreas(vmMoref, snapshotMoref, deviceKey, changeId, capacity)).areas;
    },
    async attachDisk(proxyVmMoref, fileName) {
      const d = await client.hotadd.attach(proxyVmMoref, fileName);
      if (!d.uuid) throw new Error(`the attached disk ${fileName} reports no uuid; cannot find its device`);
      return { deviceKey: d.key, uuid: d.uuid };
    },
    async detachDisk(proxyVmMoref, deviceKey, expectFileName) {
      await client.hotadd.detach(proxyVmMoref, deviceKey, { expectFileName });
    },
    async findVmByBiosUuid(biosUuid) {
      const moref = await client.inventory.findVmByUuid(biosUuid, { instanceUuid: false });
      return moref ? toVmInfo(await client.inventory.vm(moref)) : null;
    },
    async findTaggedSnapshots(runVmId) {
      return (await client.snapshots.findByTag(runVmId ? { runId: runVmId } : {})).map((s) => ({ vmMoref: s.vm, vmName: s.vmName, snapshot: s.snapshot, runVmId: s.runId }));
    },
    async vmDisks(vmMoref) {
      return (await client.inventory.vm(vmMoref)).disks.map(toDisk);
    },
    undoRestore: (target) => undoRestore(restorePort(client), parseRestoreTarget(target)),
    async consolidate(vmMoref) {
      await client.snapshots.consolidate(vmMoref);
    },
    async openNetworkReader(disk, snapshot, _transport, vmHost) {
      const { fileName, capacityBytes: capacity } = disk;
      const datastore = (await loadDatastores()).get(disk.datastore);
      if (datastore && SAN_NEVER.test(datastore.info.type)) {
        // vSAN and vVols keep disks as objects: no file to fetch, so the disk comes from the snapshot's export.
        if (disk.controller === 'unknown' || disk.busNumber === undefined || disk.unitNumber === undefined) {
          throw new Error(`${disk.label} is on ${datastore.info.type} datastore ${disk.datastore}, read through an export lease, but vSphere did not say where it is attached`);
        }
        return openLeaseDisk(client, snapshot, { label: disk.label, capacity, controller: disk.controller, busNumber: disk.busNumber, unitNumber: disk.unitNumber }, `datastore ${disk.datastore} is ${/vsan/i.test(datastore.info.type) ? 'vSAN' : 'a vVol datastore'}, whose disks are objects with no file to fetch`);
      }
      // As the disk's descriptor lays it out: its flat extent, or the snapshot chain it is a link of.
      const directory: DatastoreDirectory = new Map([...(await loadDatastores())].map(([name, d]) => [name, { datacenter: d.datacenter, uuid: d.uuid }]));
      const source = new RangeSource(client, await readPath(vmHost));
      return openDatastoreDisk(client, fileName, capacity, directory, (file) => new NetworkReader(file, capacity, opts.nbdStreams, source), opts.nbdStreams, source);
    },
  };
}

/** 00112233-4455-6677-… → 33221100-5544-7766-… (the mixed-endian form of an SMBIOS UUID). */
export function swapUuidEndianness(uuid: string): string {
  const h = uuid.replace(/-/g, '');
  if (h.length !== 32) return uuid;
  const rev = (s: string) => s.match(/../g)!.reverse().join('');
  const out = rev(h.slice(0, 8)) + rev(h.slice(8, 12)) + rev(h.slice(12, 16)) + h.slice(16);
  return `${out.slice(0, 8)}-${out.slice(8, 12)}-${out.slice(12, 16)}-${out.slice(16, 20)}-${out.slice(20)}`;
}

/** A restore's session with its client too, for callers that look at vCenter themselves (the tests, the bench). */
export interface RestoreClientSession extends RestoreSession {
  client: VSphereClient;
}

export interface ConnectorOptions {
  db: Db;
  /** Opens the vCenter password: with the appliance key, or (remote) this Transporter's own copy. */
  unseal: Unsealer;
  proxyVmUuid: string | undefined;
  nbdStreamsPerHost: number;
  log: Logger;
}

export function createVSphereConnector(opts: ConnectorOptions) {
  const clients = new Map<string, Promise<VSphereClient>>();

  const connect = async (row: VCenterRow) => {
    const password = await opts.unseal(SECRET_LABELS.vcenterPassword, row.id, row.passwordSealed);
    if (password === undefined) throw new Error(`this Transporter has no password for the vCenter ${row.url}: deploy it again (Transporters page) so the Director seals it to its key`);
    return VSphereClient.connect({
      url: row.url,
      username: row.username,
      password,
      ...(row.thumbprintSha256 ? { thumbprintSha256: row.thumbprintSha256 } : {}),
      allowHttp: row.url.startsWith('http:'),
    });
  };

  /**
   * One client per vCenter row as it is now: an edited URL, user, password or thumbprint makes a new
   * one, so a corrected password takes effect at the next job. The old one is forgotten, not closed:
   * a VM still being backed up with it keeps working, and vCenter ends the idle session itself.
   */
  const cached = (row: VCenterRow): Promise<VSphereClient> => {
    const key = JSON.stringify([row.id, row.url, row.username, row.passwordSealed, row.thumbprintSha256 ?? null]);
    let c = clients.get(key);
    if (!c) {
      for (const k of clients.keys()) if ((JSON.parse(k) as string[])[0] === row.id) clients.delete(k);
      c = connect(row);
      c.catch(() => clients.delete(key));
      clients.set(key, c);
    }
    return c;
  };

  const rowOf = async (vcenterId: string): Promise<VCenterRow> => {
    const row = await opts.db.vCenter.findUnique({ where: { id: vcenterId } });
    if (!row) throw new Error(`vCenter ${vcenterId} is no longer registered`);
    return row;
  };

  const proxyOf = async (client: VSphereClient) => {
    if (!opts.proxyVmUuid) return null;
    // Older virtual hardware reports the DMI UUID with its first three fields byte-swapped.
    const moref =
      (await client.inventory.findVmByUuid(opts.proxyVmUuid, { instanceUuid: false })) ??
      (await client.inventory.findVmByUuid(swapUuidEndianness(opts.proxyVmUuid), { instanceUuid: false }));
    if (!moref) return null;
    const vm = await client.inventory.vm(moref);
    const scsi = vm.controllers.filter((c) => ['pvscsi', 'lsilogic', 'lsisas', 'buslogic'].includes(c.kind));
    const used = vm.disks.filter((d) => scsi.some((c) => c.key === d.controllerKey)).length;
    const folder = vm.vmPathName ? vm.vmPathName.replace(/[^/]*$/, '') : `[${vm.datastores[0] ?? ''}] ${vm.name}/`;
    return { moref, name: vm.name, freeScsiUnits: scsi.length * 15 - used, folder, ...(vm.host ? { host: vm.host } : {}) };
  };

  return {
    /** A fresh client for one run (its own session), closed by the run. */
    async session(row: VCenterRow): Promise<VSphereSession> {
      const client = await connect(row);
      const proxy = await proxyOf(client);
      return {
        port: vspherePort(client, { nbdStreams: opts.nbdStreamsPerHost }),
        facts: {
          proxyVm: proxy ? { moref: proxy.moref, name: proxy.name, freeScsiUnits: proxy.freeScsiUnits, ...(proxy.host ? { host: proxy.host } : {}) } : null,
          ...(opts.proxyVmUuid ? { proxyVmUuid: opts.proxyVmUuid } : {}),
          ...(client.isVCenter ? {} : { standaloneHost: client.about.fullName || 'ESXi' }),
          networkTransport: row.url.startsWith('https:') ? 'nbdssl' : 'nbd',
        },
        close: () => client.close(),
      };
    },
    /** A fresh client for one restore (its own session) with this Transporter's proxy VM in that vCenter. */
    async restoreSession(row: VCenterRow): Promise<RestoreClientSession> {
      const client = await connect(row);
      try {
        const proxy = await proxyOf(client);
        return {
          client,
          port: restorePort(client),
          facts: {
            proxyVm: proxy ? { moref: proxy.moref, name: proxy.name, freeScsiUnits: proxy.freeScsiUnits, ...(proxy.host ? { host: proxy.host } : {}) } : null,
            ...(opts.proxyVmUuid ? { proxyVmUuid: opts.proxyVmUuid } : {}),
            ...(client.isVCenter ? {} : { standaloneHost: client.about.fullName || 'ESXi' }),
          },
          close: () => client.close(),
        };
      } catch (err) {
        await client.close().catch(() => undefined);
        throw err;
      }
    },
    async portFor(vcenterId: string): Promise<VSpherePort> {
      return vspherePort(await cached(await rowOf(vcenterId)), { nbdStreams: opts.nbdStreamsPerHost });
    },
    async proxyVm(vcenterId: string): Promise<{ moref: string; folder: string } | null> {
      const p = await proxyOf(await cached(await rowOf(vcenterId)));
      return p ? { moref: p.moref, folder: p.folder } : null;
    },
    async close(): Promise<void> {
      for (const c of clients.values()) await (await c.catch(() => null))?.close().catch(() => undefined);
      clients.clear();
    },
  };
}
