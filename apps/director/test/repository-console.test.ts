import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { Repository, RestorePointWriter } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector, signInAs } from './helpers.ts';

const MiB = 1024 * 1024;

/** Writes one restore point of `image` as disk 2000 of `vmId`; returns its repository id. */
async function writePoint(repo: Repository, vmId: string, image: Buffer): Promise<string> {
  const rp = await RestorePointWriter.open(repo, { vmId, vm: { name: vmId } });
  const disk = await rp.openDisk({ key: '2000', capacity: image.length, controller: 'pvscsi' });
  for (let off = 0; off < image.length; off += MiB) await disk.write(off, image.subarray(off, off + MiB));
  return (await rp.commit()).id;
}

describe('repository figures and restore points for the console (real repository on disk)', () => {
  const ctx = signedInDirector();
  let dir: string;
  let repoId: string;
  let pointIds: string[];
  let runId: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-repo-console-'));
    const passphrase = 'console stats passphrase';
    const location = path.join(dir, 'repo');
    await Repository.init(location, { passphrase });
    const repo = await Repository.open(location, { passphrase });
    // 8 MiB: compressible text, random data, zeros. The second VM is the same image: all of it deduplicates.
    const image = Buffer.alloc(8 * MiB);
    image.write('Vaultline console statistics '.repeat(100_000), 0);
    randomBytes(2 * MiB).copy(image, 4 * MiB);
    const a = await writePoint(repo, 'uuid-app01', image);
    const b = await writePoint(repo, 'uuid-db01', image);
    await repo.close();
    const row = await ctx.d.db.repository.create({
      data: { name: 'console', location, encrypted: true, passphraseSealed: sealSecret(Buffer.alloc(32, 3), SECRET_LABELS.repositoryPassphrase, passphrase) },
    });
    repoId = row.id;
    const run = await ctx.d.db.jobRun.create({ data: { status: 'succeeded', vms: { create: [{ vmMoref: 'vm-1', vmName: 'app01', status: 'succeeded' }] } }, include: { vms: true } });
    runId = run.id;
    const p1 = await ctx.d.db.restorePoint.create({
      data: { repositoryId: row.id, repoPointId: a, runVmId: run.vms[0]!.id, vmInstanceUuid: 'uuid-app01', vmName: 'app01', createdAt: new Date(Date.now() - 60_000), logicalBytes: BigInt(image.length), newBytes: 3n * BigInt(MiB) },
    });
    const p2 = await ctx.d.db.restorePoint.create({
      data: { repositoryId: row.id, repoPointId: b, vmInstanceUuid: 'uuid-db01', vmName: 'db01', createdAt: new Date(), logicalBytes: BigInt(image.length), immutableUntil: new Date(Date.now() + 86400_000) },
    });
    pointIds = [p2.id, p1.id];
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const get = (url: string, cookie = ctx.cookie) => ctx.d.app.fastify.inject({ method: 'GET', url, headers: { cookie } });

  it('reports logical and stored size, dedup and compression ratios, and free space where it lives', async () => {
    const res = await get(`/api/repositories/${repoId}/stats`);
    expect(res.statusCode, res.body).toBe(200);
    const s = res.json();
    expect(s).toMatchObject({ repositoryId: repoId, restorePoints: 2, logicalBytes: 16 * MiB });
    // Two identical images: the unique data is at most one image's non-zero part.
    expect(s.uniqueRawBytes).toBeLessThanOrEqual(8 * MiB);
    expect(s.dedupRatio).toBeGreaterThan(1.9);
    // Text compresses, random data does not: stored is below raw but above the random part.
    expect(s.compressionRatio).toBeGreaterThan(1.2);
    expect(s.storedBytes).toBeGreaterThan(2 * MiB);
    expect(s.storedBytes).toBeLessThan(s.uniqueRawBytes);
    expect(s.freeBytes).toBeGreaterThan(0);
    expect(s.totalBytes).toBeGreaterThanOrEqual(s.freeBytes);
  });

  it('lists its restore points newest first, by VM name or instance UUID, with the run that wrote each', async () => {
    const all = (await get(`/api/repositories/${repoId}/restore-points`)).json();
    expect(all.map((p: { id: string }) => p.id)).toEqual(pointIds);
    expect(all[1]).toMatchObject({ vmName: 'app01', vmInstanceUuid: 'uuid-app01', logicalBytes: 8 * MiB, newBytes: 3 * MiB, suspect: false, immutableUntil: null, runId });
    expect(all[0]).toMatchObject({ vmName: 'db01', runId: null });
    expect(all[0].immutableUntil).not.toBeNull();
    expect((await get(`/api/repositories/${repoId}/restore-points?vm=db01`)).json().map((p: { id: string }) => p.id)).toEqual([pointIds[0]]);
    expect((await get(`/api/repositories/${repoId}/restore-points?vm=uuid-app01`)).json().map((p: { id: string }) => p.id)).toEqual([pointIds[1]]);
  });

  it('a viewer may read both; an unknown repository is a 404', async () => {
    const viewer = await signInAs(ctx.d, ctx.cookie, 'rita', 'viewer');
    expect((await get(`/api/repositories/${repoId}/stats`, viewer)).statusCode).toBe(200);
    expect((await get(`/api/repositories/${repoId}/restore-points`, viewer)).statusCode).toBe(200);
    expect((await get('/api/repositories/6b0c2f4e-6f1e-4d8e-9a57-3c1f5b1b2a10/stats')).statusCode).toBe(404);
    expect((await get('/api/repositories/not-a-uuid/restore-points')).statusCode).toBe(400);
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/repositories/${repoId}/stats` })).statusCode).toBe(401);
  });

  it('a repository whose storage has gone is a clear 503 naming it, not a crash', async () => {
    const gone = await ctx.d.db.repository.create({ data: { name: 'gone', location: path.join(dir, 'never-created') } });
    const res = await get(`/api/repositories/${gone.id}/stats`);
    expect(res.statusCode).toBe(503);
    expect(res.json().message).toMatch(/repository gone \(.*never-created\) cannot be read: no repository at/);
  });
});
