/**
 * ImportVApp import leases against the lab vCenter: the VM is created from a ConfigSpec (restore marker
 * included), each disk is uploaded as a streamOptimized VMDK made by @vaultline/vmdk's writer (streamed,
 * chunked or with a length), the lease kept alive, completed or aborted.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { streamOptimizedChunks, type DiskSource } from '@vaultline/vmdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVmConfig, HttpError, ImportLease, VSphereClient, flatExtentPath, parseDatastorePath, type CreateVmSpec } from '../src/index.ts';

const MiB = 1024 * 1024;

let lab: Lab;
let client: VSphereClient;
let inv: { vmFolder: string; resourcePool: string; hosts: string[] };
const sent: string[] = [];

beforeAll(async () => {
  lab = await startLab({});
  client = await VSphereClient.connect({
    url: lab.url,
    username: lab.username,
    password: lab.password,
    thumbprintSha256: lab.thumbprintSha256,
    keepAliveMs: 0,
    onRequest: (method) => sent.push(method),
  });
  const all = await client.inventory.all();
  inv = { vmFolder: all.datacenters[0]!.vmFolder, resourcePool: all.clusters[0]!.resourcePool!, hosts: all.clusters[0]!.hosts };
});
afterAll(async () => {
  await client?.close();
  await lab?.stop();
});

function spec(name: string, restoreId: string, capacities: number[]): CreateVmSpec {
  return {
    name,
    restoreId,
    folder: inv.vmFolder,
    resourcePool: inv.resourcePool,
    datastore: lab.datastores[0]!.name,
    guestId: 'debian10_64Guest',
    cpus: 1,
    memoryMiB: 512,
    controllers: [{ kind: 'pvscsi' }],
    disks: capacities.map((capacityBytes) => ({ controller: 0, capacityBytes, thin: true })),
  };
}

/** A disk image in memory with data in `areas` and holes elsewhere, as a writer source that lists its extents. */
function image(capacity: number, areas: [number, Buffer][]): { bytes: Buffer; source: DiskSource } {
  const bytes = Buffer.alloc(capacity);
  for (const [off, b] of areas) b.copy(bytes, off);
  const extents = areas.map(([offset, b]) => ({ offset, length: b.length })).sort((a, b) => a.offset - b.offset);
  return {
    bytes,
    source: {
      capacity,
      read: async (o, l) => Buffer.from(bytes.subarray(o, o + l)),
      allocatedExtents: async function* () {
        yield* extents;
      },
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('import leases (ImportVApp)', () => {
  it('creates the VM with its restore marker, streams each disk as streamOptimized (chunked and with a length), keeps the lease alive and completes it: the disks read back exactly and stay thin', async () => {
    const lease = await client.vms.importVm(createVmConfig(spec('import-ok', 'rst-imp-1', [16 * MiB, 8 * MiB])), inv.vmFolder, inv.resourcePool, inv.hosts[0]);
    expect(lease).toBeInstanceOf(ImportLease);
    expect(lease.vm).toMatch(/^vm-/);
    expect(lease.disks).toHaveLength(2);
    expect(await client.vms.restoreIdOf(lease.vm)).toBe('rst-imp-1');

    const a = image(16 * MiB, [
      [0, randomBytes(MiB)],
      [5 * MiB, Buffer.alloc(MiB)], // listed as allocated, but zeros: not sent
      [9 * MiB + 512, randomBytes(70_000)],
    ]);
    const b = image(8 * MiB, [[8 * MiB - 65536, randomBytes(65536)]]);
    const disks = await lab.getVm('import-ok');
    sent.length = 0;
    lease.startKeepAlive(undefined, 50);
    // Disk 1: chunked (no length known up front), produced as it is sent.
    const stats = { grains: 0 };
    const r1 = await lease.upload(lease.deviceFor({ controller: 'pvscsi', busNumber: 0, unitNumber: 0 }, 0), streamOptimizedChunks(a.source, { stats }));
    expect(stats.grains).toBe(16 + 2); // 1 MiB of data = 16 grains; 70,000 bytes at 9 MiB + 512 span 2 grains
    // Disk 2: with a Content-Length.
    const whole: Buffer[] = [];
    for await (const c of streamOptimizedChunks(b.source)) whole.push(c);
    const body = Buffer.concat(whole);
    const r2 = await lease.upload(lease.deviceFor({ controller: 'pvscsi', busNumber: 0, unitNumber: 1 }, 1), (async function* () {
      yield body;
    })(), { size: body.length });
    expect(r2.bytes).toBe(body.length);
    expect(r1.bytes).toBeGreaterThan(MiB);
    await new Promise((r) => setTimeout(r, 200));
    expect(sent.filter((m) => m === 'HttpNfcLeaseProgress').length).toBeGreaterThan(0);
    await lease.progress(100);
    await lease.complete();
    expect(lease.ended).toBe(true);

    for (const [i, img] of [a, b].entries()) {
      const d = disks.disks[i]!;
      const p = parseDatastorePath(d.fileName);
      const back = await client.files.readRange({ datacenter: lab.datacenter, datastore: p.datastore, path: flatExtentPath(p.path) }, 0, d.capacityBytes);
      expect(sha(back)).toBe(sha(img.bytes));
    }
    // Thin: only the non-zero grains hold blocks.
    expect(fs.statSync(disks.disks[0]!.flatPath).blocks * 512).toBeLessThanOrEqual((16 + 2) * 65536);
    expect(fs.statSync(disks.disks[1]!.flatPath).blocks * 512).toBe(65536);
  });

  it('a refused upload is an HttpError naming the lease; abort ends the lease and the VM is destroyed through its restore marker', async () => {
    const lease = await client.vms.importVm(createVmConfig(spec('import-bad', 'rst-imp-2', [4 * MiB])), inv.vmFolder, inv.resourcePool);
    const bad = Buffer.alloc(1024);
    bad.write('KDMV');
    const err = await lease.upload(lease.disks[0]!, bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).status).toBe(400);
    expect((err as Error).message).toMatch(/import lease .*HTTP 400.*not streamOptimized/);
    await lease.abort();
    await expect(lease.upload(lease.disks[0]!, bad)).rejects.toThrow(/already over/);
    await client.vms.destroyRestored(lease.vm, 'rst-imp-2');
    expect((await client.inventory.vms()).some((v) => v.name === 'import-bad')).toBe(false);
  });
});
