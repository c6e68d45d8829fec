/**
 * Instant recovery to vSphere benchmark (a script that prints figures, never a test). Root: the NFS server takes
 * the ports ESXi uses (111, 2049) and the lab vCenter mounts it with FUSE.
 *
 *   npm run bench -- instant-vsphere [--sizes-gib 1,100] [--rounds 3]
 *
 * Time from "recover" (InstantRecovery.start) to the VM powered on, for restore points of one disk of each size
 * (64 MiB of random data spread over it, the rest never written), served by the appliance's NFS server and mounted
 * by the lab vCenter's own NFSv3 client: the export, the NFS mount, the registration from the written .vmx, the
 * snapshot that keeps the guest's writes off the backup, the power-on. Measured in the same run against the floor
 * any recovery pays in vSphere: registering, snapshotting and powering on the same VM whose files already sit on the
 * lab's local datastore. Then the discard. Prints a table and writes bench/instant-vsphere.json.
 *
 * Not yet a fair figure: the lab keeps a complete private image of every snapshot link (zz_vaultline_delta.go) and
 * makes it by copying the disk's data extents; over NFS it sees no holes, so the snapshot that starts every recovery
 * copies the whole disk through the export (a first run took minutes for 100 GiB), where ESXi creates an empty
 * sparse delta. Until the lab keeps those images off NAS datastores without reading the base, what this prints
 * grows with disk size because of the lab, not the product.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InstantRecovery, nfsExportHost, recoveryTree } from '@vaultline/instant';
import { NfsServer } from '@vaultline/nfs';
import { openDiskReader, openRestorePointWriter, Repository, shutdownWorkerPools, type DiskReader } from '@vaultline/repository';
import { VSphereClient, type HardwareDescription } from '@vaultline/vsphere';
import { startLab } from '@vaultline/vsphere-lab';
import { arg, median } from './common.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const SIZES_GIB = arg('sizes-gib', '1,100').split(',').map(Number);
const ROUNDS = Number(arg('rounds', '3'));
/** The NFS server's own loopback address (the lab's tests use 127.0.0.2x, the browser tests 127.0.0.61). */
const NFS_ADDRESS = '127.0.0.71';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const s2 = (ms: number) => Math.round(ms / 10) / 100;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the NFS server listens on ports 111 and 2049, and the lab vCenter mounts it with FUSE');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-bench-ir-'));
  const lab = await startLab({});
  const client = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
  const server = new NfsServer({ host: NFS_ADDRESS, port: 2049, portmapPort: 111, exports: [] });
  await server.listen();
  const exportsHost = nfsExportHost(server, NFS_ADDRESS);
  const readers: DiskReader[] = [];
  const rows: { sizeGiB: number; recoverMs: number[]; floorMs: number[]; discardMs: number[] }[] = [];
  try {
    await Repository.init(path.join(dir, 'repo'));
    const repo = await Repository.open(path.join(dir, 'repo'));
    const all = await client.inventory.all();
    const cluster = all.clusters[0]!;
    const place = { host: cluster.hosts[0]!, folder: all.datacenters[0]!.vmFolder, resourcePool: cluster.resourcePool! };
    const local = lab.datastores[0]!;

    for (const gib of SIZES_GIB) {
      const capacity = gib * GiB;
      // The hardware a backup of such a VM records.
      const src = await lab.createVm({ name: `bench-ir-src-${gib}`, disks: [{ capacityBytes: capacity }], nics: ['VM Network'], cpus: 2, memoryMiB: 2048 });
      const snap = await client.snapshots.create(src.moref, { runId: 'bench-instant' });
      const hardware: HardwareDescription = await client.snapshots.hardware(snap);
      await client.snapshots.remove(snap);
      // Its restore point: 16 areas of 4 MiB of random data over the disk.
      const vmId = `bench-ir-${gib}`;
      const w = await openRestorePointWriter(repo, { vmId, vm: { name: src.name, hardware } });
      const disk = await w.openDisk({ key: String(hardware.disks[0]!.key), capacity, mode: 'full' });
      for (let i = 0; i < 16; i++) await disk.write(Math.floor(((capacity / MiB - 4) * i) / 16) * MiB, randomBytes(4 * MiB));
      const manifest = await w.commit();
      const row = { sizeGiB: gib, recoverMs: [] as number[], floorMs: [] as number[], discardMs: [] as number[] };
      rows.push(row);

      for (let round = 0; round < ROUNDS; round++) {
        const reader = await openDiskReader(repo, { vmId, id: manifest.id }, manifest.disks[0]!.key);
        readers.push(reader);
        const id = `bench-${gib}-${round}`;
        const t0 = performance.now();
        const r = await InstantRecovery.start({
          workDir: path.join(dir, 'recoveries', id),
          id,
          restorePoint: { vmId, id: manifest.id },
          hardware,
          disks: [{ key: hardware.disks[0]!.key, capacity, read: (o, l) => reader.read(o, l) }],
          target: { ...place, name: `bench-ir-${gib}-${round}` },
          vsphere: client,
          exports: exportsHost,
          allowedClients: ['127.0.0.1'],
        });
        row.recoverMs.push(performance.now() - t0);
        const vm = await lab.getVm(`bench-ir-${gib}-${round}`);
        if (vm.powerState !== 'poweredOn') throw new Error(`the recovered VM is ${vm.powerState}`);
        const t1 = performance.now();
        await r.discard();
        row.discardMs.push(performance.now() - t1);

        // The floor: the same files already on the local datastore (sparse flat extents), registered, snapshotted, powered on.
        const name = `bench-floor-${gib}-${round}`;
        const tree = recoveryTree(hardware, [{ key: hardware.disks[0]!.key, capacity, read: () => Promise.resolve(Buffer.alloc(0)) }], { name, recoveryId: id });
        for (const f of tree.overlayFiles) {
          fs.mkdirSync(path.join(local.path, path.dirname(f.path)), { recursive: true });
          fs.writeFileSync(path.join(local.path, f.path), f.content);
        }
        for (const f of tree.baseFiles) {
          const fd = fs.openSync(path.join(local.path, f.path), 'w');
          fs.ftruncateSync(fd, f.size);
          fs.closeSync(fd);
        }
        const t2 = performance.now();
        const floorVm = await client.vms.register({ vmxPath: `[${local.name}] ${tree.vmx}`, ...place, name });
        await client.snapshots.create(floorVm, { runId: id, name: 'bench' });
        await client.vms.powerOn(floorVm);
        row.floorMs.push(performance.now() - t2);
        await client.vms.powerOff(floorVm);
        await client.vms.unregister(floorVm);
        fs.rmSync(path.join(local.path, tree.dir), { recursive: true, force: true });
      }
      process.stdout.write(`${gib} GiB: recover → running ${s2(median(row.recoverMs))} s (floor ${s2(median(row.floorMs))} s), discard ${s2(median(row.discardMs))} s\n`);
    }
    await repo.close();
  } finally {
    for (const r of readers) r.close();
    await client.close();
    await server.close();
    await lab.stop();
    await shutdownWorkerPools();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const table = rows.map((r) => ({
    disk: `${r.sizeGiB} GiB (64 MiB of data)`,
    recoverToRunningS: s2(median(r.recoverMs)),
    floorS: s2(median(r.floorMs)),
    overS: s2(median(r.recoverMs) - median(r.floorMs)),
    discardS: s2(median(r.discardMs)),
  }));
  console.table(table);
  const out = { when: new Date().toISOString(), machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown'}`, rounds: ROUNDS, goalS: 15, rows: table, raw: rows };
  fs.writeFileSync(path.join(here, 'instant-vsphere.json'), `${JSON.stringify(out, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench instant-vsphere: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
