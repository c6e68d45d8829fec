import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { DEFAULT_OVA_CHUNK_SIZE } from '@vaultline/vmdk';
import { comparableHardware, ensureQemuImg, hardwareFromOvf, qemuImg, readManifest, readTar, summariseOvf, systemTarList } from '@vaultline/vmdk/testing';
import type { HardwareDescription } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionCookie, signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';
import { createRestorePoint } from './restore-point-fixture.ts';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A disk with text, random data, zeros and a size that is not a multiple of a chunk. */
function mixedImage(size: number, randomAt: number, randomBytesCount: number): Buffer {
  const image = Buffer.alloc(size);
  image.write('Vaultline restore point test '.repeat(20000), 0);
  randomBytes(randomBytesCount).copy(image, randomAt);
  return image;
}

async function viewerCookie(d: TestDirector, adminCookie: string): Promise<string> {
  await d.app.fastify.inject({ method: 'POST', url: '/api/users', headers: { cookie: adminCookie }, payload: { username: 'viewer1', password: 'viewer-password-1', role: 'viewer' } });
  const login = await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'viewer1', password: 'viewer-password-1' } });
  const vc = sessionCookie(login);
  await d.app.fastify.inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie: vc }, payload: { currentPassword: 'viewer-password-1', newPassword: 'viewer-password-2' } });
  return vc;
}

describe('downloading a restore point disk (real repository, qemu-img as the independent reader)', () => {
  let d: TestDirector;
  let cookie: string;
  let dir: string;
  let image: Buffer;
  let pointId: string;
  beforeAll(async () => {
    ensureQemuImg();
    d = await startTestDirector();
    cookie = await signInAdmin(d);
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-dl-'));
    image = mixedImage(9 * MiB + 4096, 5 * MiB, 2 * MiB);
    pointId = await createRestorePoint(d, dir, { name: 'db01', uuid: 'vm-uuid-1' }, [{ key: '2000', image, controller: 'pvscsi' }]);
  });
  afterAll(async () => {
    await d?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = (url: string, c = cookie) => d.app.fastify.inject({ method: 'GET', url, headers: { cookie: c } });

  it('lists the restore point and its disks', async () => {
    const list = await get('/api/restore-points?vm=db01');
    expect(list.json()).toMatchObject([{ id: pointId, vmName: 'db01', repository: 'dl-vm-uuid-1' }]);
    expect((await get(`/api/restore-points/${pointId}/disks`)).json()).toEqual([{ key: '2000', capacityBytes: image.length, controller: 'pvscsi', transport: null }]);
  });

  it('raw download gives the disk byte for byte', async () => {
    const res = await get(`/api/restore-points/${pointId}/disks/2000/download?format=raw`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-disposition']).toContain('db01-');
    expect(sha(res.rawPayload)).toBe(sha(image));
  });

  it('VMDK download is a streamOptimized disk that qemu-img checks clean and converts to the same bytes', async () => {
    const res = await get(`/api/restore-points/${pointId}/disks/2000/download?format=vmdk`);
    expect(res.statusCode).toBe(200);
    const vmdk = path.join(dir, 'd.vmdk');
    await writeFile(vmdk, res.rawPayload);
    expect(res.rawPayload.length).toBeLessThan(image.length);
    execFileSync('qemu-img', ['check', vmdk]);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', vmdk], { encoding: 'utf8' })) as { format: string; 'format-specific'?: { data?: { 'create-type'?: string } } };
    expect(info.format).toBe('vmdk');
    expect(info['format-specific']?.data?.['create-type']).toBe('streamOptimized');
    const raw = path.join(dir, 'd.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', vmdk, raw]);
    const back = await readFile(raw);
    // qemu pads to whole sectors: the image here is sector-aligned, so it must be identical.
    expect(sha(back)).toBe(sha(image));
  });

  it('needs the operator role, and names a missing disk', async () => {
    const vc = await viewerCookie(d, cookie);
    expect((await get(`/api/restore-points/${pointId}/disks/2000/download`, vc)).statusCode).toBe(403);
    const missing = await get(`/api/restore-points/${pointId}/disks/9999/download`);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().message).toContain('has no disk 9999 (it has 2000)');
  });
});

describe('downloading a restore point as an OVA over HTTP (GNU tar, Python XML and qemu-img as the independent readers)', () => {
  let d: TestDirector;
  let cookie: string;
  let dir: string;
  let url: string;
  let pointId: string;
  let bare: string;
  let partial: string;
  let small: string;
  const disk1 = mixedImage(80 * MiB, 4 * MiB, 66 * MiB); // more than one 64 MiB chunk once compressed
  const disk2 = mixedImage(9 * MiB + 4096, 5 * MiB, 2 * MiB);
  const hardware: HardwareDescription = {
    name: 'app01',
    guestId: 'ubuntu64Guest',
    guestFullName: 'Ubuntu Linux (64-bit)',
    numCpu: 4,
    numCoresPerSocket: 2,
    memoryMiB: 6144,
    firmware: 'efi',
    controllers: [
      { key: 200, kind: 'ide', type: 'VirtualIDEController', busNumber: 0 },
      { key: 201, kind: 'ide', type: 'VirtualIDEController', busNumber: 1 },
      { key: 100, kind: 'other', type: 'VirtualPCIController', busNumber: 0 },
      { key: 1000, kind: 'pvscsi', type: 'ParaVirtualSCSIController', busNumber: 0, scsiCtlrUnitNumber: 7 },
      { key: 15000, kind: 'sata', type: 'VirtualAHCIController', busNumber: 0 },
    ],
    disks: [
      { key: 2000, label: 'Hard disk 1', controllerKey: 1000, controller: 'pvscsi', busNumber: 0, unitNumber: 0, capacityBytes: disk1.length, fileName: '[ds1] app01/app01.vmdk', parents: [], thin: true, eagerlyScrub: false, diskMode: 'persistent', backing: { type: 'VirtualDiskFlatVer2BackingInfo', fileName: '[ds1] app01/app01.vmdk' } },
      { key: 16001, label: 'Hard disk 2', controllerKey: 15000, controller: 'sata', busNumber: 0, unitNumber: 1, capacityBytes: disk2.length, fileName: '[ds1] app01/app01_1.vmdk', parents: [], thin: false, eagerlyScrub: false, diskMode: 'persistent', backing: { type: 'VirtualDiskFlatVer2BackingInfo', fileName: '[ds1] app01/app01_1.vmdk' } },
    ],
    nics: [{ key: 4000, type: 'VirtualVmxnet3', label: 'Network adapter 1', macAddress: '00:50:56:aa:bb:cc', network: 'network-7', networkName: 'Prod LAN' }],
  };
  // The two-pass layout reads everything twice: a smaller VM of the same shape keeps that test quick.
  const disk3 = mixedImage(6 * MiB, MiB, MiB);
  const smallHardware: HardwareDescription = { ...hardware, name: 'app02', disks: [{ ...hardware.disks[0]!, capacityBytes: disk3.length }, hardware.disks[1]!] };
  const images = new Map([
    [2000, disk1],
    [16001, disk2],
  ]);

  beforeAll(async () => {
    ensureQemuImg();
    d = await startTestDirector();
    cookie = await signInAdmin(d);
    url = await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-ova-'));
    pointId = await createRestorePoint(d, dir, { name: 'app01', uuid: 'vm-uuid-ova', hardware }, [
      { key: '2000', image: disk1, controller: 'pvscsi' },
      { key: '16001', image: disk2, controller: 'sata' },
    ]);
    bare = await createRestorePoint(d, dir, { name: 'old01', uuid: 'vm-uuid-bare' }, [{ key: '2000', image: disk2, controller: 'lsilogic' }]);
    small = await createRestorePoint(d, dir, { name: 'app02', uuid: 'vm-uuid-small', hardware: smallHardware }, [
      { key: '2000', image: disk3, controller: 'pvscsi' },
      { key: '16001', image: disk2, controller: 'sata' },
    ]);
    // The hardware lists two disks; the restore point holds data for one of them.
    partial = await createRestorePoint(d, dir, { name: 'part01', uuid: 'vm-uuid-part', hardware: { ...hardware, name: 'part01' } }, [{ key: '16001', image: disk2, controller: 'sata' }]);
  }, 300_000);
  afterAll(async () => {
    await d?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** GET over a real socket; a 200 body is streamed to `file`. */
  async function download(pathAndQuery: string, file: string, c: string | null = cookie): Promise<Response> {
    const res = await d.fetch(`${url}${pathAndQuery}`, { headers: c ? { cookie: c } : {} });
    if (res.status === 200 && res.body) await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(file));
    return res;
  }

  function untar(file: string, into: string): void {
    const r = spawnSync('tar', ['-xf', file, '-C', into], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tar xf ${file}: ${r.stderr}`);
  }

  /** qemu-img check is clean and convert gives exactly the restore point's bytes. */
  async function expectDiskBack(vmdk: string, want: Buffer): Promise<void> {
    const check = qemuImg(['check', vmdk]);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const raw = `${vmdk}.raw`;
    const conv = qemuImg(['convert', '-O', 'raw', vmdk, raw]);
    expect(conv.status, conv.stderr).toBe(0);
    expect(sha(await readFile(raw))).toBe(sha(want));
    await rm(raw);
  }

  it('chunked (default): descriptor first, VMDK chunks in References order, manifest last; hardware and every disk byte match the restore point', async () => {
    const file = path.join(dir, 'app01.ova');
    const res = await download(`/api/restore-points/${pointId}/ova`, file);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="app01-[^"]+\.ova"$/);

    const listing = systemTarList(file);
    const ours = readTar(await readFile(file));
    expect(listing).toEqual(ours.map((e) => ({ name: e.name, size: e.size })));
    const names = listing.map((e) => e.name);
    expect(names[0]).toBe('app01.ovf');
    expect(names.at(-1)).toBe('app01.mf');
    // disk1 compresses to more than one default chunk; disk2 fits in one.
    const chunks1 = listing.filter((e) => e.name.startsWith('app01-disk1.vmdk.'));
    const chunks2 = listing.filter((e) => e.name.startsWith('app01-disk2.vmdk.'));
    expect(chunks1.map((e) => e.name)).toEqual(['app01-disk1.vmdk.000000000', 'app01-disk1.vmdk.000000001']);
    expect(chunks1[0]!.size).toBe(DEFAULT_OVA_CHUNK_SIZE);
    expect(chunks2.map((e) => e.name)).toEqual(['app01-disk2.vmdk.000000000']);
    expect(names).toEqual(['app01.ovf', ...chunks1.map((e) => e.name), ...chunks2.map((e) => e.name), 'app01.mf']);

    const out = path.join(dir, 'chunked');
    await mkdir(out);
    untar(file, out);
    const s = summariseOvf(await readFile(path.join(out, 'app01.ovf')));
    expect(hardwareFromOvf(s)).toEqual(comparableHardware(hardware));
    expect(s.networks).toEqual(['Prod LAN']);
    expect(s.references.map((r) => [r.href, r.chunkSize])).toEqual([
      ['app01-disk1.vmdk', String(DEFAULT_OVA_CHUNK_SIZE)],
      ['app01-disk2.vmdk', String(DEFAULT_OVA_CHUNK_SIZE)],
    ]);
    for (const [i, key] of [2000, 16001].entries()) {
      const parts = (i === 0 ? chunks1 : chunks2).map((e) => path.join(out, e.name));
      const vmdk = path.join(out, `disk${i + 1}.vmdk`);
      await writeFile(vmdk, Buffer.concat(await Promise.all(parts.map((p) => readFile(p)))));
      await expectDiskBack(vmdk, images.get(key)!);
    }
    const mf = readManifest(await readFile(path.join(out, 'app01.mf'), 'ascii'));
    expect([...mf.keys()]).toEqual(names.slice(0, -1));
    for (const [name, digest] of mf) expect(sha(await readFile(path.join(out, name)))).toBe(digest);

    const audit = await d.db.auditEvent.findMany({ where: { action: 'restore-point.download' } });
    expect(audit.map((a) => a.subject)).toContainEqual(expect.stringMatching(/^app01 .+ OVA$/));
  }, 180_000); // ~70 MiB of incompressible data to deflate: a few seconds alone, much longer on a shared, loaded machine

  it('whole: descriptor, manifest, then one VMDK per disk with its size in References', async () => {
    const file = path.join(dir, 'app02-whole.ova');
    const res = await download(`/api/restore-points/${small}/ova?layout=whole`, file);
    expect(res.status).toBe(200);
    const listing = systemTarList(file);
    expect(listing).toEqual(readTar(await readFile(file)).map((e) => ({ name: e.name, size: e.size })));
    expect(listing.map((e) => e.name)).toEqual(['app02.ovf', 'app02.mf', 'app02-disk1.vmdk', 'app02-disk2.vmdk']);
    const out = path.join(dir, 'whole');
    await mkdir(out);
    untar(file, out);
    const s = summariseOvf(await readFile(path.join(out, 'app02.ovf')));
    expect(hardwareFromOvf(s)).toEqual(comparableHardware(smallHardware));
    expect(s.references.map((r) => [r.href, r.size])).toEqual(listing.slice(2).map((e) => [e.name, String(e.size)]));
    await expectDiskBack(path.join(out, 'app02-disk1.vmdk'), disk3);
    await expectDiskBack(path.join(out, 'app02-disk2.vmdk'), disk2);
    const mf = readManifest(await readFile(path.join(out, 'app02.mf'), 'ascii'));
    expect([...mf.keys()]).toEqual(['app02.ovf', 'app02-disk1.vmdk', 'app02-disk2.vmdk']);
    for (const [name, digest] of mf) expect(sha(await readFile(path.join(out, name)))).toBe(digest);
  });

  it('a restore point without a hardware description, or without data for one of its disks, is refused with 409 before any byte', async () => {
    const res = await download(`/api/restore-points/${bare}/ova`, path.join(dir, 'never.ova'));
    expect(res.status).toBe(409);
    expect(((await res.json()) as { message: string }).message).toMatch(/of old01 holds no hardware description, so it cannot be packaged as a VM; download its disks one by one/);
    const part = await download(`/api/restore-points/${partial}/ova`, path.join(dir, 'never.ova'));
    expect(part.status).toBe(409);
    expect(((await part.json()) as { message: string }).message).toMatch(/of part01 cannot be packaged as an OVA: Hard disk 1 \(key 2000\) has no data in the restore point/);
  });

  it('unknown id 404, malformed id or layout 400, signed out 401, viewer 403', async () => {
    const f = path.join(dir, 'never.ova');
    expect((await download('/api/restore-points/00000000-0000-4000-8000-000000000000/ova', f)).status).toBe(404);
    expect((await download('/api/restore-points/not-a-uuid/ova', f)).status).toBe(400);
    expect((await download(`/api/restore-points/${pointId}/ova?layout=zip`, f)).status).toBe(400);
    expect((await download(`/api/restore-points/${pointId}/ova`, f, null)).status).toBe(401);
    expect((await download(`/api/restore-points/${pointId}/ova`, f, await viewerCookie(d, cookie))).status).toBe(403);
  });
});
