/**
 * Integration tests against the lab vCenter (@vaultline/vsphere-lab: vcsim
 * with Vaultline's overlay: frozen snapshots, CBT, export leases, HotAdd loop
 * devices, SAN-style VMFS datastores). One lab per file.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { readStreamOptimized } from '@vaultline/vmdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClientSafetyError,
  createSpecFromHardware,
  InvalidArgument,
  FileNotFound,
  flatExtentPath,
  HttpError,
  InvalidLogin,
  InvalidPowerState,
  leaseDeviceOf,
  ManagedObjectNotFound,
  parseDatastorePath,
  probeThumbprint,
  ThumbprintMismatchError,
  VSphereClient,
  type DatastoreFile,
  type Disk,
} from '../src/index.ts';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

let lab: Lab;
let client: VSphereClient;
const sent: { method: string; body: string }[] = [];

beforeAll(async () => {
  lab = await startLab({ cbtMaxAreas: 2, san: isRoot });
  client = await VSphereClient.connect({
    url: lab.url,
    username: lab.username,
    password: lab.password,
    thumbprintSha256: lab.thumbprintSha256,
    keepAliveMs: 0,
    onRequest: (method, body) => sent.push({ method, body }),
  });
});
afterAll(async () => {
  await client?.close();
  await lab?.stop();
});

const fileOf = (fileName: string): DatastoreFile => {
  const p = parseDatastorePath(fileName);
  return { datacenter: lab.datacenter, datastore: p.datastore, path: p.path };
};
const flatOf = (d: { fileName: string }): DatastoreFile => fileOf(flatExtentPath(d.fileName));

/** Rebuilds a disk image from areas read over /folder and returns its SHA-256. */
async function shaFromAreas(file: DatastoreFile, capacity: number, areas: { start: number; length: number }[]): Promise<string> {
  const img = Buffer.alloc(capacity);
  for await (const { offset, data } of client.files.readExtents(file, areas, { concurrency: 4, chunkBytes: 256 * 1024 })) data.copy(img, offset);
  return createHash('sha256').update(img).digest('hex');
}

describe('lab: session', () => {
  it('connects with the pinned thumbprint, and also with the lab CA', async () => {
    expect(client.about.apiType).toBe('VirtualCenter');
    expect(client.session?.userName).toBe(lab.username);
    expect((await client.currentSession())?.key).toBe(client.session?.key);
    const viaCa = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, caPem: lab.certPem, keepAliveMs: 0 });
    expect((await viaCa.inventory.datacenters()).map((d) => d.name)).toEqual([lab.datacenter]);
    await viaCa.close();
  });

  it('probeThumbprint reports the thumbprints the lab certificate really has', async () => {
    const t = await probeThumbprint(lab.url);
    expect(t.sha256).toBe(lab.thumbprintSha256);
    expect(t.sha1).toBe(lab.thumbprintSha1);
  });

  it('after logout() the client logs in again on its next call', async () => {
    const c = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
    await c.logout();
    expect(c.session).toBeUndefined();
    expect((await c.inventory.datacenters()).map((d) => d.name)).toEqual([lab.datacenter]);
    expect(c.relogins).toBe(1);
    await c.close();
  });

  it('wrong password: InvalidLogin', async () => {
    const err = await VSphereClient.connect({ url: lab.url, username: lab.username, password: 'Not-The-Pw-9', thumbprintSha256: lab.thumbprintSha256 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidLogin);
    expect((err as Error).message).toMatch(/wrong user name or password/);
    expect((err as Error).message).not.toContain('Not-The-Pw-9');
  });

  it('thumbprint mismatch names the expected and the presented thumbprint', async () => {
    const pinned = lab.thumbprintSha256.replace(/^../, lab.thumbprintSha256.startsWith('00') ? '11' : '00');
    const err = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: pinned }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ThumbprintMismatchError);
    expect((err as Error).message).toContain(pinned);
    expect((err as Error).message).toContain(lab.thumbprintSha256);
  });

  it('after the server ends the session, the next call logs in again transparently', async () => {
    const c = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
    const before = c.session?.key;
    // end the session on the server but keep the (now stale) cookie
    await c.soap.call('Logout', `<_this type="SessionManager">${c.serviceContent.sessionManager.value}</_this>` as never, { noReauth: true });
    expect(await c.keepAlive()).toMatch(/^\d{4}-/);
    expect(c.relogins).toBe(1);
    expect((await c.currentSession())?.key).not.toBe(before);
    await c.logout();
    expect(c.soap.sessionCookie()).toBeUndefined();
    await c.close();
  });
});

describe('lab: inventory', () => {
  it('lists datacenter, cluster, hosts, datastores (with mounts and VMFS extents) and VMs with their disks', async () => {
    await lab.createVm({
      name: 'inv-01',
      disks: [
        { capacityBytes: 8 * MiB, controller: 'pvscsi' },
        { capacityBytes: 4 * MiB, controller: 'lsilogic', thin: false },
        { capacityBytes: 2 * MiB, controller: 'sata' },
        { capacityBytes: 1 * MiB, controller: 'ide' },
      ],
      cbt: false,
      powerOn: true,
    });
    const labVm = await lab.getVm('inv-01');
    const inv = await client.inventory.all({ pageSize: 2 });
    expect(inv.datacenters.map((d) => d.name)).toEqual([lab.datacenter]);
    expect(inv.clusters).toHaveLength(1);
    expect(inv.hosts.length).toBeGreaterThanOrEqual(2);
    expect(inv.hosts.every((h) => h.cluster === inv.clusters[0]!.moref && h.connectionState === 'connected')).toBe(true);
    expect(inv.datastores.map((d) => d.name).sort()).toEqual(lab.datastores.map((d) => d.name).sort());
    for (const ds of inv.datastores) {
      expect(ds.capacityBytes).toBeGreaterThan(0);
      expect(Number.isSafeInteger(ds.freeBytes)).toBe(true); // the lab's SAN datastores report odd free space
      expect(ds.hosts.map((h) => h.host).sort()).toEqual(inv.hosts.map((h) => h.moref).sort());
      const labDs = lab.datastores.find((d) => d.name === ds.name)!;
      if (labDs.naa) {
        expect(ds.type).toBe('VMFS');
        expect(ds.vmfs?.extents.map((e) => e.diskName)).toEqual([labDs.naa]);
      }
    }
    expect(inv.networks.some((n) => n.name === 'VM Network')).toBe(true);

    const vm = inv.vms.find((v) => v.name === 'inv-01')!;
    expect(vm).toMatchObject({
      moref: labVm.moref,
      datacenter: lab.datacenter,
      biosUuid: labVm.biosUuid,
      instanceUuid: labVm.instanceUuid,
      powerState: 'poweredOn',
      changeTrackingEnabled: false,
      hasSnapshots: false,
      template: false,
    });
    expect(vm.numCpu).toBeGreaterThan(0);
    expect(vm.memoryMiB).toBeGreaterThan(0);
    expect(vm.toolsStatus).toBeDefined();
    expect(vm.guestId).toBe('debian10_64Guest');
    const byKey = new Map(vm.disks.map((d) => [d.key, d]));
    for (const ld of labVm.disks) {
      const d = byKey.get(ld.key)!;
      expect(d.fileName).toBe(ld.fileName);
      expect(d.capacityBytes).toBe(ld.capacityBytes);
      expect(d.uuid).toBe(ld.uuid);
    }
    expect(vm.disks.map((d) => d.controller).sort()).toEqual(['ide', 'lsilogic', 'pvscsi', 'sata']);
    const lsi = vm.disks.find((d) => d.controller === 'lsilogic')!;
    expect(lsi.thin).toBe(false);
    expect(vm.disks.find((d) => d.controller === 'pvscsi')).toMatchObject({ thin: true, unitNumber: 0, busNumber: 0, diskMode: 'persistent' });
    expect((await client.inventory.vm(labVm.moref)).disks).toEqual(vm.disks);
    expect(await client.inventory.findVmByUuid(labVm.instanceUuid)).toBe(labVm.moref);
  });

  it('unknown moref: ManagedObjectNotFound', async () => {
    const err = await client.inventory.vm('vm-999999').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagedObjectNotFound);
    expect((err as Error).message).toMatch(/vm-999999/);
    await expect(client.snapshots.disks('snapshot-999999')).rejects.toBeInstanceOf(ManagedObjectNotFound);
    await expect(client.snapshots.create('vm-999999', { runId: 'x' })).rejects.toBeInstanceOf(ManagedObjectNotFound);
    await expect(client.hotadd.attach('vm-999999', '[datastore1] a/a.vmdk')).rejects.toBeInstanceOf(ManagedObjectNotFound);
  });

  it('a task error becomes a typed fault (PowerOn on a running VM: InvalidPowerState)', async () => {
    const vm = await lab.createVm({ name: 'power-01', disks: [{ capacityBytes: 1 * MiB }], powerOn: true });
    const err = await client.vms.powerOn(vm.moref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidPowerState);
    expect((err as Error).message).toMatch(new RegExp(`PowerOnVM_Task on ${vm.moref} failed: the VM is in the wrong power state`));
    await client.vms.powerOff(vm.moref);
    expect((await client.inventory.vm(vm.moref)).powerState).toBe('poweredOff');
  });
});

describe('lab: snapshots and CBT', () => {
  it('creates a tagged snapshot, reads its frozen disk backings with changeId, lists and finds it, removes it', async () => {
    const vm = await lab.createVm({ name: 'snap-01', disks: [{ capacityBytes: 8 * MiB }, { capacityBytes: 4 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite('snap-01', 0, [{ offset: 0, length: 64 * 1024, pattern: 'text' }]);
    const progress: number[] = [];
    const snap = await client.snapshots.create(vm.moref, { runId: 'run-42', quiesce: true, onProgress: (p) => progress.push(p) });
    expect(progress.at(-1)).toBe(100);

    const disks = await client.snapshots.disks(snap);
    expect(disks.map((d) => d.fileName)).toEqual(vm.disks.map((d) => d.fileName));
    for (const d of disks) {
      expect(d.changeId).toMatch(/^52( [0-9a-f]{2}){7}-[0-9a-f]{2}( [0-9a-f]{2}){7}\/\d+$/);
      expect(d.parents).toEqual([]);
    }
    const now = await client.inventory.vm(vm.moref);
    expect(now.hasSnapshots).toBe(true);
    expect(now.currentSnapshot).toBe(snap);
    expect(now.disks[0]!.fileName).toBe('[datastore1] snap-01/snap-01-000001.vmdk');
    expect(now.disks[0]!.parents).toEqual(['[datastore1] snap-01/snap-01.vmdk']);

    const tree = await client.snapshots.tree(vm.moref);
    expect(tree.current).toBe(snap);
    expect(tree.roots).toEqual([expect.objectContaining({ moref: snap, name: 'vaultline-run-42', quiesced: true, children: [] })]);
    expect(await client.snapshots.findByTag({ runId: 'run-42' })).toEqual([
      expect.objectContaining({ vm: vm.moref, vmName: 'snap-01', snapshot: snap, runId: 'run-42' }),
    ]);

    await client.snapshots.remove(snap);
    await expect(client.snapshots.remove(snap)).rejects.toBeInstanceOf(ManagedObjectNotFound); // stale moref
    const after = await client.inventory.vm(vm.moref);
    expect(after.hasSnapshots).toBe(false);
    expect(after.consolidationNeeded).toBe(false);
    expect(after.disks[0]!.fileName).toBe('[datastore1] snap-01/snap-01.vmdk');
    expect(await client.snapshots.findByTag({ runId: 'run-42' })).toEqual([]);
  });

  it('enables CBT (reconfigure + stun snapshot), then a full and an incremental read through QueryChangedDiskAreas paging and /folder Range GETs match the disk', async () => {
    const cap = 16 * MiB;
    const vm = await lab.createVm({ name: 'cbt-01', disks: [{ capacityBytes: cap }], cbt: false, powerOn: true });
    expect(vm.cbt).toBe(false);
    expect(await client.cbt.isEnabled(vm.moref)).toBe(false);
    expect(await client.cbt.enable(vm.moref)).toBe(true);
    expect(await client.cbt.isEnabled(vm.moref)).toBe(true);
    expect((await client.inventory.vm(vm.moref)).hasSnapshots).toBe(false); // the stun snapshot is gone
    expect(await client.cbt.enable(vm.moref)).toBe(false); // idempotent

    await lab.guestWrite('cbt-01', 0, [
      { offset: 0, length: 100_000, pattern: 'text', seed: 1 },
      { offset: 3 * MiB, length: 70_000, pattern: 'random', seed: 2 },
      { offset: 9 * MiB, length: 5000, pattern: 'random', seed: 3 },
      { offset: 15 * MiB, length: 1 * MiB, pattern: 'random', seed: 4 },
    ]);
    const s1 = await client.snapshots.create(vm.moref, { runId: 'full-1' });
    const [d1] = await client.snapshots.disks(s1);
    const full = await client.cbt.queryChangedDiskAreas(vm.moref, s1, d1!.key, '*', cap);
    expect(full.calls).toBeGreaterThan(1); // cbtMaxAreas=2 forces paging
    expect(full.areas.length).toBe(4);
    expect(await shaFromAreas(flatOf(d1!), cap, full.areas)).toBe(await lab.diskSha256('cbt-01', 0, { snapshot: s1 }));

    // incremental: only what was written between s1 and s2; later writes are not included
    await lab.guestWrite('cbt-01', 0, [
      { offset: 5 * MiB, length: 4096, pattern: 'random', seed: 5 },
      { offset: 12 * MiB, length: 200_000, pattern: 'text', seed: 6 },
    ]);
    const s2 = await client.snapshots.create(vm.moref, { runId: 'incr-1' });
    await lab.guestWrite('cbt-01', 0, [{ offset: 1 * MiB, length: 4096, pattern: 'random', seed: 7 }]);
    await client.snapshots.remove(s1);
    const [d2] = await client.snapshots.disks(s2);
    expect(d2!.changeId).not.toBe(d1!.changeId);
    const incr = await client.cbt.queryChangedDiskAreas(vm.moref, s2, d2!.key, d1!.changeId!, cap);
    expect(incr.areas).toEqual([
      { start: 5 * MiB, length: 64 * 1024 },
      { start: 12 * MiB, length: 256 * 1024 },
    ]);
    // full image = previous full + changed areas, read from the frozen s2 files
    const img = Buffer.alloc(cap);
    for await (const { offset, data } of client.files.readExtents(flatOf(d1!), full.areas)) data.copy(img, offset);
    // s2's disk is the delta file, a full copy in the lab
    for await (const { offset, data } of client.files.readExtents(flatOf(d2!), incr.areas, { concurrency: 3 })) data.copy(img, offset);
    expect(createHash('sha256').update(img).digest('hex')).toBe(await lab.diskSha256('cbt-01', 0, { snapshot: s2 }));
    await client.snapshots.remove(s2);
  });

  it('a rejected changeId is a typed InvalidArgument; with fallbackToFull the allocated areas are returned instead', async () => {
    const cap = 4 * MiB;
    const vm = await lab.createVm({ name: 'cbt-03', disks: [{ capacityBytes: cap }], cbt: true, powerOn: true });
    await lab.guestWrite('cbt-03', 0, [{ offset: 2 * MiB, length: 10, pattern: 'text' }]);
    const s = await client.snapshots.create(vm.moref, { runId: 'fb' });
    const [d] = await client.snapshots.disks(s);
    const err = await client.cbt.queryChangedDiskAreas(vm.moref, s, d!.key, 'bogus/1', cap).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as InvalidArgument).invalidProperty).toBe('changeId');
    const r = await client.cbt.queryChangedDiskAreas(vm.moref, s, d!.key, 'bogus/1', cap, { fallbackToFull: true });
    expect(r.fellBackToFull).toBe(true);
    expect(r.areas).toEqual([{ start: 2 * MiB, length: 64 * 1024 }]);
    await client.snapshots.remove(s);
  });

  it('refuses to enable CBT on a VM that has snapshots', async () => {
    const vm = await lab.createVm({ name: 'cbt-02', disks: [{ capacityBytes: 1 * MiB }], cbt: false });
    const s = await client.snapshots.create(vm.moref, { runId: 'user-snap' });
    await expect(client.cbt.enable(vm.moref)).rejects.toThrow(ClientSafetyError);
    await client.snapshots.remove(s);
  });
});

describe('lab: HotAdd', () => {
  it("attaches a snapshot's disk to the proxy VM (SCSI, independent_nonpersistent, no file operation) and detaches it keeping the file", async () => {
    const vm = await lab.createVm({ name: 'hot-01', disks: [{ capacityBytes: 4 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite('hot-01', 0, [{ offset: 0, length: 8192, pattern: 'text' }]);
    const snap = await client.snapshots.create(vm.moref, { runId: 'hot' });
    const [sd] = await client.snapshots.disks(snap);
    const proxy = lab.proxyVm.moref;
    const before = (await client.inventory.vm(proxy)).disks;

    const mark = sent.length;
    const att = await client.hotadd.attach(proxy, sd!.fileName);
    expect(att).toMatchObject({ fileName: sd!.fileName, diskMode: 'independent_nonpersistent', controller: 'pvscsi', capacityBytes: 4 * MiB });
    expect(att.unitNumber).not.toBe(7);
    expect(before.some((d) => d.controllerKey === att.controllerKey && d.unitNumber === att.unitNumber)).toBe(false);
    if (isRoot && att.uuid) {
      const link = path.join(lab.byIdDir, `wwn-0x${att.uuid.replace(/-/g, '').toLowerCase()}`);
      expect(fs.existsSync(link)).toBe(true);
    }

    await client.hotadd.detach(proxy, att.key, { expectFileName: sd!.fileName });
    expect((await client.inventory.vm(proxy)).disks.map((d) => d.key)).toEqual(before.map((d) => d.key));
    const local = path.join(lab.datastores[0]!.path, parseDatastorePath(flatExtentPath(sd!.fileName)).path);
    expect(fs.existsSync(local)).toBe(true);
    expect((await client.inventory.vm(vm.moref)).disks).toHaveLength(1);

    const reconfigs = sent.slice(mark).filter((r) => r.method === 'ReconfigVM_Task');
    expect(reconfigs).toHaveLength(2);
    expect(reconfigs[0]!.body).not.toContain('fileOperation');
    expect(reconfigs[1]!.body).toContain('<operation>remove</operation>');
    expect(reconfigs[1]!.body).not.toContain('fileOperation');
    await client.snapshots.remove(snap);
  });

  it('attaches all disks of a VM in one reconfigure and detaches them together', async () => {
    const vm = await lab.createVm({ name: 'hot-02', disks: [{ capacityBytes: 2 * MiB }, { capacityBytes: 3 * MiB }, { capacityBytes: 1 * MiB, controller: 'lsilogic' }], cbt: true, powerOn: true });
    const snap = await client.snapshots.create(vm.moref, { runId: 'hot2' });
    const files = (await client.snapshots.disks(snap)).map((d) => d.fileName);
    const proxy = lab.proxyVm.moref;
    const mark = sent.length;
    const attached = await client.hotadd.attachMany(proxy, files);
    expect(attached.map((d) => d.fileName)).toEqual(files);
    expect(new Set(attached.map((d) => `${d.controllerKey}:${d.unitNumber}`)).size).toBe(3);
    expect(attached.every((d) => d.controller === 'pvscsi' && d.unitNumber !== 7)).toBe(true);
    await client.hotadd.detachMany(proxy, attached.map((d) => ({ deviceKey: d.key, expectFileName: d.fileName })));
    expect(sent.slice(mark).filter((r) => r.method === 'ReconfigVM_Task')).toHaveLength(2);
    expect((await client.hotadd.foreignDisks(proxy, lab.proxyVm.disks.map((d) => d.fileName)))).toEqual([]);
    await client.snapshots.remove(snap);
  });

  it('attaching a missing file is a FileNotFound task error; detaching an unknown device is refused', async () => {
    const err = await client.hotadd.attach(lab.proxyVm.moref, '[datastore1] nope/nope.vmdk').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileNotFound);
    await expect(client.hotadd.detach(lab.proxyVm.moref, 987654)).rejects.toThrow(/not attached/);
  });

  it('no request sent during this whole test file asked for fileOperation=destroy', () => {
    expect(sent.length).toBeGreaterThan(10);
    expect(sent.filter((r) => /fileOperation>destroy/.test(r.body))).toEqual([]);
  });
});

describe('lab: datastore files and export leases', () => {
  it('PUT uploads a file; Range GETs return exact bytes; reads beyond the end are a typed HTTP error', async () => {
    const data = Buffer.alloc(3 * MiB + 124);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    const f: DatastoreFile = { datacenter: lab.datacenter, datastore: 'datastore1', path: 'uploads/blob one.bin' };
    fs.mkdirSync(path.join(lab.datastores[0]!.path, 'uploads'), { recursive: true });
    await client.files.put(f, data);
    expect(await client.files.size(f)).toBe(data.length);
    expect((await client.files.readRange(f, 1_000_001, 77)).equals(data.subarray(1_000_001, 1_000_078))).toBe(true);
    // Straight into a caller's buffer (larger than asked): only the asked bytes are written, the rest untouched.
    const into = Buffer.alloc(3 * MiB, 0xee);
    const view = await client.files.readRangeInto(f, 123_457, 2 * MiB, into);
    expect(view.buffer).toBe(into.buffer);
    expect(view.equals(data.subarray(123_457, 123_457 + 2 * MiB))).toBe(true);
    expect(into.subarray(2 * MiB).every((b) => b === 0xee)).toBe(true);
    await expect(client.files.readRangeInto(f, 0, 2 * MiB, Buffer.alloc(MiB))).rejects.toThrow(/a buffer of/);
    // A short answer (the range runs past the end of the file) is an error, never bytes left unwritten.
    await expect(client.files.readRangeInto(f, data.length - 100, 200, into)).rejects.toThrow(/asked for 200 bytes at \d+, got 100/);
    const past = await client.files.readRangeInto(f, data.length + 10, 10, into).catch((e: unknown) => e);
    expect((past as HttpError).status).toBe(416);
    const got = Buffer.alloc(data.length);
    for await (const { offset, data: d } of client.files.readExtents(f, [{ start: 0, length: data.length }], { chunkBytes: 256 * 1024, concurrency: 6 })) d.copy(got, offset);
    expect(got.equals(data)).toBe(true);
    expect((await client.files.get(f)).equals(data)).toBe(true);
    const err = await client.files.readRange(f, data.length + 10, 10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).status).toBe(416);
    const e404 = await client.files.readRange({ ...f, path: 'uploads/missing.bin' }, 0, 10).catch((e: unknown) => e);
    expect((e404 as HttpError).status).toBe(404);
    expect((e404 as Error).message).toMatch(/file not found/);
  });

  it('ExportVm on a running VM is InvalidPowerState; ExportSnapshot gives a ready lease whose URLs stream the frozen disk as streamOptimized VMDK; progress and complete work', async () => {
    const vm = await lab.createVm({ name: 'exp-01', disks: [{ capacityBytes: 8 * MiB }, { capacityBytes: 4 * MiB, controller: 'lsilogic' }], cbt: true, powerOn: true });
    await expect(client.leases.exportVm(vm.moref)).rejects.toBeInstanceOf(InvalidPowerState);
    await lab.guestWrite('exp-01', 0, [{ offset: 1 * MiB, length: 300_000, pattern: 'random', seed: 11 }]);
    const snap = await client.snapshots.create(vm.moref, { runId: 'exp' });
    const frozen = await lab.diskSha256('exp-01', 0, { snapshot: snap });
    await lab.guestWrite('exp-01', 0, [{ offset: 1 * MiB, length: 4096, pattern: 'zeros' }]);

    const lease = await client.leases.exportSnapshot(snap);
    expect(lease.deviceUrls).toHaveLength(2);
    for (const u of lease.deviceUrls) {
      expect(u.url).toContain(new URL(lab.url).host);
      expect(u.url).not.toContain('*');
      expect(u.disk).toBe(true);
    }
    let pct = 0;
    lease.startKeepAlive(() => pct, 50);
    // The disks are keyed by where they are attached, as vSphere keys them.
    expect(leaseDeviceOf(lease.deviceUrls, { controller: 'pvscsi', busNumber: 0, unitNumber: 0 })).toBe(lease.deviceUrls[0]);
    expect(leaseDeviceOf(lease.deviceUrls, { controller: 'lsilogic', busNumber: 1, unitNumber: 0 })).toBe(lease.deviceUrls[1]);
    expect(leaseDeviceOf(lease.deviceUrls, { controller: 'lsilogic', busNumber: 0, unitNumber: 0 })).toBeUndefined();
    const img = Buffer.alloc(8 * MiB);
    const disk = readStreamOptimized(await lease.stream(lease.deviceUrls[0]!), { maxCapacity: 8 * MiB });
    expect((await disk.header()).capacity).toBe(8 * MiB);
    for await (const { offset, data } of disk) {
      data.copy(img, offset);
      pct = Math.round(((offset + data.length) / (8 * MiB)) * 100);
    }
    await new Promise((r) => setTimeout(r, 120));
    expect(createHash('sha256').update(img).digest('hex')).toBe(frozen);
    expect(sent.some((r) => r.method === 'HttpNfcLeaseProgress')).toBe(true);
    await lease.progress(100);
    await lease.complete();
    // a completed lease is gone: its URLs no longer serve data
    await expect(lease.stream(lease.deviceUrls[0]!)).rejects.toBeInstanceOf(HttpError);
    await client.snapshots.remove(snap);
  });

  it('direct-to-host Range reads with a generic service ticket (vmware_cgi_ticket)', async () => {
    const vm = await lab.createVm({ name: 'ticket-01', disks: [{ capacityBytes: 2 * MiB }] });
    await lab.guestWrite('ticket-01', 0, [{ offset: 4096, length: 4096, pattern: 'random', seed: 5 }]);
    const rel = parseDatastorePath(flatExtentPath(vm.disks[0]!.fileName));
    const hostUrl = `${new URL(lab.url).origin}/folder/${rel.path}?dsName=${rel.datastore}`;
    const direct = await client.files.readRangeDirect(hostUrl, 4096, 4096);
    expect(direct.equals(await client.files.readRange(flatOf(vm.disks[0]!), 4096, 4096))).toBe(true);
    expect(sent.filter((r) => r.method === 'AcquireGenericServiceTicket').at(-1)!.body).toContain('<method>httpGet</method>');
  });

  it("lists a VM's files from layoutEx and downloads its .vmx over /folder", async () => {
    const vm = await lab.createVm({ name: 'files-01', disks: [{ capacityBytes: 1 * MiB }] });
    const files = await client.vms.layoutFiles(vm.moref);
    expect(files.some((f) => f.type === 'config' && f.name.endsWith('.vmx'))).toBe(true);
    expect(files.some((f) => f.type === 'diskDescriptor' && f.name === vm.disks[0]!.fileName)).toBe(true);
    // the simulator's layoutEx config entry lacks the folder; config.files.vmPathName is exact
    const vmPath = (await client.inventory.vm(vm.moref)).vmPathName!;
    expect(vmPath).toBe('[datastore1] files-01/files-01.vmx');
    const local = path.join(lab.datastores[0]!.path, 'files-01', 'files-01.vmx');
    expect((await client.files.get(fileOf(vmPath))).equals(fs.readFileSync(local))).toBe(true);
  });

  it('a lease can be aborted', async () => {
    const vm = await lab.createVm({ name: 'exp-02', disks: [{ capacityBytes: 1 * MiB }] });
    const lease = await client.leases.exportVm(vm.moref);
    const first = (await (await lease.stream(lease.deviceUrls[0]!))[Symbol.asyncIterator]().next()).value as Buffer;
    expect(first.subarray(0, 4).toString('latin1')).toBe('KDMV');
    await lease.abort();
    await expect(lease.stream(lease.deviceUrls[0]!)).rejects.toBeInstanceOf(HttpError);
  });
});

describe('lab: VM creation for restores', () => {
  it("recreates a VM from a snapshot's hardware description (controllers, disk sizes, units, provisioning)", async () => {
    const src = await lab.createVm({
      name: 'hw-src',
      cpus: 2,
      memoryMiB: 2048,
      guestId: 'centos7_64Guest',
      disks: [
        { capacityBytes: 6 * MiB, controller: 'pvscsi' },
        { capacityBytes: 3 * MiB, controller: 'lsilogic', thin: false },
        { capacityBytes: 2 * MiB, controller: 'sata' },
      ],
      powerOn: true,
    });
    const snap = await client.snapshots.create(src.moref, { runId: 'hw' });
    const hw = await client.snapshots.hardware(snap);
    expect(hw).toMatchObject({ name: 'hw-src', guestId: 'centos7_64Guest', numCpu: 2, memoryMiB: 2048 });
    await client.snapshots.remove(snap);
    const place = await client.vms.placement(src.moref);
    const spec = createSpecFromHardware(hw, {
      name: 'hw-restored',
      restoreId: 'rs-hw',
      folder: place.folder!,
      resourcePool: place.resourcePool!,
      host: place.host,
      datastore: 'datastore2',
    });
    const moref = await client.vms.create(spec);
    const got = await client.inventory.vm(moref);
    const shape = (v: { disks: Disk[] }) => v.disks.map((d) => [d.controller, d.unitNumber, d.capacityBytes, d.thin, d.diskMode]).sort();
    expect(shape(got)).toEqual(shape({ disks: hw.disks }));
    expect(got).toMatchObject({ guestId: 'centos7_64Guest', numCpu: 2, memoryMiB: 2048 });
    await client.vms.destroyRestored(moref, 'rs-hw');
  });

  it('creates a VM from a hardware description with new disks and a NIC, powers it on and off, and destroys only a restored VM', async () => {
    const inv = await client.inventory.all();
    const dc = inv.datacenters[0]!;
    const cluster = inv.clusters[0]!;
    const net = inv.networks.find((n) => n.name === 'VM Network')!;
    const moref = await client.vms.create({
      name: 'restored-01',
      restoreId: 'restore-7',
      folder: dc.vmFolder,
      resourcePool: cluster.resourcePool!,
      host: cluster.hosts[0],
      datastore: 'datastore2',
      guestId: 'rhel9_64Guest',
      cpus: 2,
      memoryMiB: 1024,
      controllers: [{ kind: 'pvscsi' }, { kind: 'lsilogic' }],
      disks: [
        { controller: 0, capacityBytes: 8 * MiB },
        { controller: 1, capacityBytes: 2 * MiB, thin: false },
      ],
      nics: [{ type: 'vmxnet3', networkName: net.name, network: net.moref }],
    });
    const vm = await client.inventory.vm(moref);
    expect(vm).toMatchObject({ name: 'restored-01', guestId: 'rhel9_64Guest', numCpu: 2, memoryMiB: 1024, powerState: 'poweredOff' });
    expect(vm.disks.map((d) => [d.controller, d.capacityBytes, d.thin])).toEqual([
      ['pvscsi', 8 * MiB, true],
      ['lsilogic', 2 * MiB, false],
    ]);
    expect(vm.disks.every((d) => d.fileName.startsWith('[datastore2] restored-01/'))).toBe(true);
    expect(vm.nics.map((n) => n.type)).toEqual(['VirtualVmxnet3']);
    expect(await client.vms.restoreIdOf(moref)).toBe('restore-7');

    // the new disk is writable through /folder PUT-free paths: its flat file exists on the datastore
    const flat = path.join(lab.datastores[1]!.path, parseDatastorePath(flatExtentPath(vm.disks[0]!.fileName)).path);
    expect(fs.existsSync(flat)).toBe(true);

    await client.vms.powerOn(moref);
    expect((await client.inventory.vm(moref)).powerState).toBe('poweredOn');

    const source = await lab.createVm({ name: 'source-keep', disks: [{ capacityBytes: 1 * MiB }] });
    await expect(client.vms.destroyRestored(source.moref, 'restore-7')).rejects.toThrow(/not created by a Vaultline restore/);
    await expect(client.vms.destroyRestored(moref, 'restore-8')).rejects.toThrow(/belongs to restore restore-7/);
    await client.vms.destroyRestored(moref, 'restore-7');
    await expect(client.inventory.vm(moref)).rejects.toBeInstanceOf(ManagedObjectNotFound);
    expect((await client.inventory.vm(source.moref)).name).toBe('source-keep');
  });

  it('renames a VM with Rename_Task; a name taken in the same folder is refused and nothing changes', async () => {
    const a = await lab.createVm({ name: 'rename-a', disks: [{ capacityBytes: 1 * MiB }] });
    await lab.createVm({ name: 'rename-b', disks: [{ capacityBytes: 1 * MiB }] });
    const mark = sent.length;
    await client.vms.rename(a.moref, 'rename-a-replaced-20260101-0000');
    expect(sent.slice(mark).map((r) => r.method)).toContain('Rename_Task');
    expect((await client.inventory.vm(a.moref)).name).toBe('rename-a-replaced-20260101-0000');
    expect((await client.inventory.vms()).some((v) => v.name === 'rename-a')).toBe(false);
    await expect(client.vms.rename(a.moref, 'rename-b')).rejects.toThrow(/InvalidArgument|name/);
    expect((await client.inventory.vm(a.moref)).name).toBe('rename-a-replaced-20260101-0000');
    await expect(client.vms.rename(a.moref, '')).rejects.toThrow(TypeError);
  });

  it('lists VM folders (with their path) and resource pools (with the hosts they can run on) as placement targets', async () => {
    const inv = await client.inventory.all();
    const dc = inv.datacenters[0]!;
    const { folders, resourcePools } = await client.inventory.placementTargets();
    expect(folders).toContainEqual({ moref: dc.vmFolder, name: 'vm', datacenter: dc.path, path: 'vm' });
    expect(folders.every((f) => f.moref !== dc.hostFolder && f.moref !== dc.datastoreFolder)).toBe(true);
    const cluster = inv.clusters[0]!;
    const pool = resourcePools.find((p) => p.moref === cluster.resourcePool)!;
    expect(pool).toMatchObject({ owner: cluster.moref, datacenter: dc.path });
    expect([...pool.hosts].sort()).toEqual([...cluster.hosts].sort());
  });
});
