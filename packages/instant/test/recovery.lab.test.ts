/**
 * Instant recovery against the lab vCenter: a restore point's VM runs on an ESXi host from an NFS datastore,
 * its writes go to the overlay (never the base), then it is migrated with Storage vMotion to a local datastore
 * (disks = base + writes) or discarded, and a killed process's leftovers are swept.
 *
 * The NFS transport itself is a stand-in here (`LabExports`, named so): it writes the export's files (the base
 * extents read from the repository, read-only) into the overlay folder, which the lab mounts as the NAS datastore,
 * so this test needs neither root nor ports 111/2049. The real path (the appliance's NFS server, mounted by the lab's
 * own NFSv3 client) runs in e2e/tests/9-zzx-instant-recovery.spec.ts and bench/instant-vsphere.ts; the NFS server
 * against libnfs in @vaultline/nfs.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDiskReader, openRestorePointWriter, Repository, shutdownWorkerPools, type DiskReader, type Manifest } from '@vaultline/repository';
import { patternBytes, startLab, type Lab } from '@vaultline/vsphere-lab';
import { VSphereClient, type HardwareDescription } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstantRecovery, JOURNAL_FILE, readJournal, sweepInstantRecoveries } from '../src/index.ts';
import { LabExports } from '../src/testing.ts';

const MiB = 1024 * 1024;
const CAPACITY = 64 * MiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let lab: Lab;
let client: VSphereClient;
let exportsHost: LabExports;
let root = '';
let repo: Repository;
let manifest: Manifest;
let hw: HardwareDescription;
let image: Buffer;
const readers: DiskReader[] = [];
let inv: { vmFolder: string; resourcePool: string; host: string; local: string; localName: string };

beforeAll(async () => {
  lab = await startLab({});
  client = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
  exportsHost = new LabExports(lab);
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-instant-'));
  // The hardware a backup of a lab VM records: one 64 MiB disk, a NIC.
  const src = await lab.createVm({ name: 'ir-source', disks: [{ capacityBytes: CAPACITY }], nics: ['VM Network'], cpus: 2, memoryMiB: 2048 });
  const snap = await client.snapshots.create(src.moref, { runId: 'instant-test' });
  hw = await client.snapshots.hardware(snap);
  await client.snapshots.remove(snap);
  // The restore point: data in a few areas, holes elsewhere.
  image = Buffer.alloc(CAPACITY);
  for (const [o, l] of [[0, MiB], [10 * MiB, 3 * MiB], [40 * MiB + 4096, 8192], [CAPACITY - MiB, MiB]] as const) randomBytes(l).copy(image, o);
  await Repository.init(path.join(root, 'repo'));
  repo = await Repository.open(path.join(root, 'repo'));
  const w = await openRestorePointWriter(repo, { vmId: 'vm-ir', vm: { name: 'ir-source', hardware: hw } });
  const d = await w.openDisk({ key: String(hw.disks[0]!.key), capacity: CAPACITY, mode: 'full' });
  for (let o = 0; o < CAPACITY; o += 4 * MiB) await d.write(o, image.subarray(o, o + 4 * MiB));
  manifest = await w.commit();
  const all = await client.inventory.all();
  const cluster = all.clusters[0]!;
  const local = all.datastores.find((x) => x.name === lab.datastores[0]!.name)!;
  inv = { vmFolder: all.datacenters[0]!.vmFolder, resourcePool: cluster.resourcePool!, host: cluster.hosts[0]!, local: local.moref, localName: local.name };
}, 180_000);

afterAll(async () => {
  await client?.close();
  await lab?.stop();
  for (const r of readers) r.close();
  await repo?.close();
  await shutdownWorkerPools();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

async function start(id: string, name: string): Promise<InstantRecovery> {
  const reader = await openDiskReader(repo, { vmId: 'vm-ir', id: manifest.id }, manifest.disks[0]!.key);
  readers.push(reader);
  return InstantRecovery.start({
    workDir: path.join(root, 'recoveries', id),
    id,
    restorePoint: { vmId: 'vm-ir', id: manifest.id },
    hardware: (manifest.vm as { hardware: HardwareDescription }).hardware,
    disks: [{ key: Number(manifest.disks[0]!.key), capacity: reader.capacity, read: (o, l) => reader.read(o, l) }],
    target: { host: inv.host, folder: inv.vmFolder, resourcePool: inv.resourcePool, name },
    vsphere: client,
    exports: exportsHost,
    allowedClients: ['127.0.0.1'],
  });
}

describe('instant recovery to vSphere (lab; NFS transport stood in, see above)', () => {
  let r: InstantRecovery;
  const writes = [
    { offset: 2 * MiB, length: MiB, pattern: 'random' as const, seed: 7 },
    { offset: 11 * MiB, length: 512 * 1024, pattern: 'text' as const, seed: 3 },
  ];

  it('runs the VM from the restore point: exported, mounted, registered, snapshotted, powered on; it reads the backed-up disk', async () => {
    r = await start('ir-one', 'app (recovered)');
    const j = r.state;
    expect(j.state).toBe('running');
    expect([j.datastore, j.vm, j.snapshot].every(Boolean)).toBe(true);
    const vm = await lab.getVm('app (recovered)');
    expect(vm.powerState).toBe('poweredOn');
    expect(await client.vms.instantRecoveryIdOf(j.vm!)).toBe('ir-one');
    expect(await lab.diskSha256('app (recovered)', 0)).toBe(sha(image));
  });

  it('the guest\'s writes land in the overlay\'s delta files; the base extent stays the restore point', async () => {
    await lab.guestWrite('app (recovered)', 0, writes);
    const expected = Buffer.from(image);
    for (const w of writes) patternBytes(w.pattern, w.length, w.seed, w.offset).copy(expected, w.offset);
    expect(await lab.diskSha256('app (recovered)', 0)).toBe(sha(expected));
    const base = path.join(r.state.overlayDir, 'app_recovered_', 'app_recovered_-flat.vmdk');
    expect(sha(fs.readFileSync(base))).toBe(sha(image));
    const vm = await lab.getVm('app (recovered)');
    expect(vm.disks[0]!.parents.length).toBe(1);
    expect(vm.disks[0]!.flatPath.startsWith(r.state.overlayDir)).toBe(true);
  });

  it('migrates the running VM to a local datastore: disks = base + writes, snapshot merged, NFS datastore, export and overlay gone', async () => {
    const overlay = r.state.overlayDir;
    const ds = r.state.datastore!;
    await r.migrate(inv.local);
    expect(r.state.state).toBe('migrated');
    const vm = await lab.getVm('app (recovered)');
    expect(vm.powerState).toBe('poweredOn');
    expect(vm.disks[0]!.parents).toEqual([]);
    expect(vm.disks[0]!.fileName.startsWith(`[${inv.localName}] `)).toBe(true);
    const expected = Buffer.from(image);
    for (const w of writes) patternBytes(w.pattern, w.length, w.seed, w.offset).copy(expected, w.offset);
    expect(await lab.diskSha256('app (recovered)', 0)).toBe(sha(expected));
    expect((await client.inventory.all()).datastores.some((d) => d.moref === ds)).toBe(false);
    expect(exportsHost.served.size).toBe(0);
    expect(fs.existsSync(overlay)).toBe(false);
    expect((await readJournal(path.join(root, 'recoveries', 'ir-one')))!.state).toBe('migrated');
  });

  it('discard: the VM is powered off and unregistered, the datastore unmounted, export and overlay removed', async () => {
    const d = await start('ir-two', 'app (discarded)');
    const { vm, datastore, overlayDir } = d.state;
    await d.discard();
    expect(d.state.state).toBe('discarded');
    const all = await client.inventory.all();
    expect(all.vms.some((v) => v.moref === vm)).toBe(false);
    expect(all.datastores.some((x) => x.moref === datastore)).toBe(false);
    expect(fs.existsSync(overlayDir)).toBe(false);
    await expect(d.migrate(inv.local)).rejects.toThrow(/cannot migrate an instant recovery that is discarded/);
  });

  it('sweep: a recovery killed mid-discard is finished; a running one is handed back to be served again, untouched', async () => {
    const a = await start('ir-three', 'app (killed)');
    const b = await start('ir-four', 'app (still running)');
    // As if the process died during a's discard: the journal says so, nothing was undone yet.
    const ja = { ...a.state, state: 'discarding' as const };
    fs.writeFileSync(path.join(root, 'recoveries', 'ir-three', JOURNAL_FILE), JSON.stringify(ja));
    const swept = await sweepInstantRecoveries(path.join(root, 'recoveries'), client, exportsHost);
    expect(swept.cleaned).toEqual(['ir-three']);
    expect(swept.toResume.map((x) => x.journal.id)).toEqual(['ir-four']);
    const all = await client.inventory.all();
    expect(all.vms.some((v) => v.moref === ja.vm)).toBe(false);
    expect(all.vms.some((v) => v.moref === b.state.vm)).toBe(true);
    expect((await lab.getVm('app (still running)')).powerState).toBe('poweredOn');
    await b.discard();
  });

  it('will not touch a VM that is not the recovery\'s: a journal naming another VM changes nothing', async () => {
    const src = await lab.getVm('ir-source');
    const j = { ...r.state, id: 'ir-forged', state: 'running' as const, vm: src.moref, datastore: undefined, snapshot: undefined };
    const forged = InstantRecovery.resume(path.join(root, 'forged'), j, client, exportsHost);
    await expect(forged.migrate(inv.local)).rejects.toThrow(/is not \(or no longer\) the VM of instant recovery ir-forged; nothing was changed/);
    fs.mkdirSync(path.join(root, 'forged'), { recursive: true });
    await forged.discard();
    expect((await client.inventory.all()).vms.some((v) => v.moref === src.moref)).toBe(true);
  });

  it('a failed start leaves nothing', async () => {
    // The target folder does not exist: registration fails after the export and the mount.
    const id = 'ir-five';
    const reader = await openDiskReader(repo, { vmId: 'vm-ir', id: manifest.id }, manifest.disks[0]!.key);
    readers.push(reader);
    const before = (await client.inventory.all()).datastores.length;
    await expect(
      InstantRecovery.start({
        workDir: path.join(root, 'recoveries', id),
        id,
        restorePoint: { vmId: 'vm-ir', id: manifest.id },
        hardware: hw,
        disks: [{ key: hw.disks[0]!.key, capacity: reader.capacity, read: (o, l) => reader.read(o, l) }],
        target: { host: inv.host, folder: 'group-v-nope', resourcePool: inv.resourcePool, name: 'app (bad folder)' },
        vsphere: client,
        exports: exportsHost,
        allowedClients: ['127.0.0.1'],
      }),
    ).rejects.toThrow();
    expect((await client.inventory.all()).datastores.length).toBe(before);
    expect(exportsHost.served.size).toBe(0);
    expect((await readJournal(path.join(root, 'recoveries', id)))!.state).toBe('discarded');
  });
});
