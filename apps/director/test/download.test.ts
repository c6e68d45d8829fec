import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { Repository, RestorePointWriter } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';

const MiB = 1024 * 1024;

function ensureQemuImg() {
  if (existsSync('/usr/bin/qemu-img')) return;
  if (process.getuid?.() !== 0) throw new Error('these tests need qemu-img: apt-get install qemu-utils');
  execFileSync('apt-get', ['install', '-y', '-qq', 'qemu-utils'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: 'ignore' });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

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
    // A disk with text, random data, zeros and a size that is not a multiple of a chunk.
    image = Buffer.alloc(9 * MiB + 4096);
    image.write('Vaultline restore point test '.repeat(20000), 0);
    randomBytes(2 * MiB).copy(image, 5 * MiB);
    const passphrase = 'download passphrase';
    const repoDir = path.join(dir, 'repo');
    await Repository.init(repoDir, { passphrase });
    const repo = await Repository.open(repoDir, { passphrase });
    const rp = await RestorePointWriter.open(repo, { vmId: 'vm-uuid-1', vm: { name: 'db01' } });
    const disk = await rp.openDisk({ key: '2000', capacity: image.length, controller: 'pvscsi' });
    for (let off = 0; off < image.length; off += MiB) await disk.write(off, image.subarray(off, Math.min(off + MiB, image.length)));
    const m = await rp.commit();
    await repo.close();
    const row = await d.db.repository.create({
      data: { name: 'dl', location: repoDir, encrypted: true, passphraseSealed: sealSecret(Buffer.alloc(32, 3), SECRET_LABELS.repositoryPassphrase, passphrase) },
    });
    const point = await d.db.restorePoint.create({
      data: { repositoryId: row.id, repoPointId: m.id, vmInstanceUuid: 'vm-uuid-1', vmName: 'db01', createdAt: new Date(), logicalBytes: BigInt(image.length) },
    });
    pointId = point.id;
  });
  afterAll(async () => {
    await d?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = (url: string, c = cookie) => d.app.fastify.inject({ method: 'GET', url, headers: { cookie: c } });

  it('lists the restore point and its disks', async () => {
    const list = await get('/api/restore-points?vm=db01');
    expect(list.json()).toMatchObject([{ id: pointId, vmName: 'db01', repository: 'dl' }]);
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
    await d.app.fastify.inject({ method: 'POST', url: '/api/users', headers: { cookie }, payload: { username: 'viewer1', password: 'viewer-password-1', role: 'viewer' } });
    const login = await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'viewer1', password: 'viewer-password-1' } });
    const vc = `vl_session=${login.cookies.find((c) => c.name === 'vl_session')!.value}`;
    await d.app.fastify.inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie: vc }, payload: { currentPassword: 'viewer-password-1', newPassword: 'viewer-password-2' } });
    expect((await get(`/api/restore-points/${pointId}/disks/2000/download`, vc)).statusCode).toBe(403);
    const missing = await get(`/api/restore-points/${pointId}/disks/9999/download`);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().message).toContain('has no disk 9999 (it has 2000)');
  });
});
