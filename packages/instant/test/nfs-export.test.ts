/**
 * The export an instant recovery serves, through the appliance's NFS server and a real NFS client (libnfs's
 * nfs-ls, nfs-cat, nfs-cp): the VM's folder lists the .vmx and descriptors (writable) and the flat extents
 * (read-only), the extents read the restore point bit for bit, a file written into the folder lands in the
 * overlay, and the base cannot be overwritten.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { NfsServer } from '@vaultline/nfs';
import { openDiskReader, openRestorePointWriter, Repository, shutdownWorkerPools, type DiskReader } from '@vaultline/repository';
import type { HardwareDescription } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nfsExportHost, recoveryTree } from '../src/index.ts';

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const CAPACITY = 48 * MiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const disk = (key: number, unitNumber: number) => ({
  key,
  label: `Hard disk ${unitNumber + 1}`,
  controllerKey: 1000,
  controller: 'pvscsi' as const,
  busNumber: 0,
  unitNumber,
  capacityBytes: CAPACITY,
  fileName: `[ds1] app/app_${unitNumber}.vmdk`,
  parents: [],
  thin: true,
  eagerlyScrub: false,
  diskMode: 'persistent',
  backing: { type: 'VirtualDiskFlatVer2BackingInfo', fileName: `[ds1] app/app_${unitNumber}.vmdk` },
});
const hw: HardwareDescription = {
  name: 'app',
  guestId: 'debian10_64Guest',
  numCpu: 2,
  memoryMiB: 2048,
  controllers: [{ key: 1000, kind: 'pvscsi', type: 'ParaVirtualSCSIController', busNumber: 0 }],
  disks: [disk(2000, 0), disk(2001, 1)],
  nics: [],
};

let root = '';
let overlay = '';
let repo: Repository;
let server: NfsServer;
let port = 0;
const images: Buffer[] = [];
const readers: DiskReader[] = [];
const url = (p: string) => `nfs://127.0.0.1${p}?version=3&nfsport=${port}&mountport=${port}&auto-traverse-mounts=0`;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-instant-nfs-'));
  overlay = path.join(root, 'overlay');
  await Repository.init(path.join(root, 'repo'));
  repo = await Repository.open(path.join(root, 'repo'));
  const w = await openRestorePointWriter(repo, { vmId: 'vm-app', vm: { name: 'app', hardware: hw } });
  for (const d of hw.disks) {
    const img = Buffer.alloc(CAPACITY);
    randomBytes(2 * MiB).copy(img, d.key === 2000 ? 0 : 30 * MiB);
    randomBytes(4096).copy(img, CAPACITY - 4096);
    images.push(img);
    const dw = await w.openDisk({ key: String(d.key), capacity: CAPACITY, mode: 'full' });
    for (let o = 0; o < CAPACITY; o += 4 * MiB) await dw.write(o, img.subarray(o, o + 4 * MiB));
  }
  const m = await w.commit();
  for (const d of m.disks) readers.push(await openDiskReader(repo, { vmId: 'vm-app', id: m.id }, d.key));
  const tree = recoveryTree(hw, readers.map((r, i) => ({ key: hw.disks[i]!.key, capacity: r.capacity, read: (o: number, l: number) => r.read(o, l) })), { name: 'app (recovered)', recoveryId: 'ir-nfs' });
  for (const f of tree.overlayFiles) {
    fs.mkdirSync(path.join(overlay, path.dirname(f.path)), { recursive: true });
    fs.writeFileSync(path.join(overlay, f.path), f.content);
  }
  server = new NfsServer({ host: '127.0.0.1', port: 0, exports: [] });
  await server.listen();
  port = server.address().port;
  await nfsExportHost(server, '127.0.0.1').add({ name: '/vaultline/ir-nfs', writableDir: overlay, baseFiles: tree.baseFiles, allowedClients: ['127.0.0.1'] });
}, 120_000);

afterAll(async () => {
  await server?.close();
  for (const r of readers) r.close();
  await repo?.close();
  await shutdownWorkerPools();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe('an instant recovery\'s export over NFS (libnfs client)', () => {
  it('lists the VM folder: .vmx and descriptors writable, flat extents read-only at the disks\' size', async () => {
    const { stdout } = await exec('nfs-ls', [url('/vaultline/ir-nfs/app_recovered_')]);
    const rows = new Map(stdout.trim().split('\n').map((l) => [l.trim().split(/\s+/).at(-1)!, l]));
    expect([...rows.keys()].filter((n) => n !== '.' && n !== '..').sort()).toEqual(['app_recovered_-flat.vmdk', 'app_recovered_.vmdk', 'app_recovered_.vmx', 'app_recovered__1-flat.vmdk', 'app_recovered__1.vmdk']);
    expect(rows.get('app_recovered_-flat.vmdk')).toMatch(new RegExp(`^-r--r--r--.*\\s${CAPACITY}\\s`));
    expect(rows.get('app_recovered_.vmx')).toMatch(/^-rw-/);
  });

  it('reads each flat extent as the restore point, bit for bit, and the .vmx as written for the recovery', async () => {
    for (const [i, name] of ['app_recovered_-flat.vmdk', 'app_recovered__1-flat.vmdk'].entries()) {
      const { stdout } = await exec('nfs-cat', [url(`/vaultline/ir-nfs/app_recovered_/${name}`)], { encoding: 'buffer', maxBuffer: 2 * CAPACITY });
      expect(sha(stdout)).toBe(sha(images[i]!));
    }
    const { stdout: vmx } = await exec('nfs-cat', [url('/vaultline/ir-nfs/app_recovered_/app_recovered_.vmx')]);
    expect(vmx).toContain('vaultline.instantRecovery = "ir-nfs"');
    expect(vmx).toContain('scsi0:1.fileName = "app_recovered__1.vmdk"');
  });

  it('a file written into the VM folder (as ESXi writes its deltas) lands in the overlay; the base cannot be overwritten', async () => {
    const local = path.join(root, 'delta.bin');
    const delta = randomBytes(3 * MiB + 17);
    fs.writeFileSync(local, delta);
    await exec('nfs-cp', [local, url('/vaultline/ir-nfs/app_recovered_/app_recovered_-000001-delta.vmdk')]);
    expect(sha(fs.readFileSync(path.join(overlay, 'app_recovered_', 'app_recovered_-000001-delta.vmdk')))).toBe(sha(delta));
    await expect(exec('nfs-cp', [local, url('/vaultline/ir-nfs/app_recovered_/app_recovered_-flat.vmdk')])).rejects.toThrow();
    const { stdout } = await exec('nfs-cat', [url('/vaultline/ir-nfs/app_recovered_/app_recovered_-flat.vmdk')], { encoding: 'buffer', maxBuffer: 2 * CAPACITY });
    expect(sha(stdout)).toBe(sha(images[0]!));
    expect(fs.existsSync(path.join(overlay, 'app_recovered_', 'app_recovered_-flat.vmdk'))).toBe(false);
  });

  it('removing the export leaves nothing served', async () => {
    await nfsExportHost(server, '127.0.0.1').remove('/vaultline/ir-nfs');
    await expect(exec('nfs-ls', [url('/vaultline/ir-nfs')])).rejects.toThrow();
    await expect(nfsExportHost(server, '127.0.0.1').remove('/vaultline/ir-nfs')).rejects.toThrow(/not exported/);
  });
});
