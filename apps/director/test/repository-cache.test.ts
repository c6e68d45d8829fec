import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { Repository, RestorePointWriter } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';
import { createRestorePoint } from './restore-point-fixture.ts';

const MiB = 1024 * 1024;
const SECRET = Buffer.alloc(32, 3);

describe('opened repositories are kept between requests (real repository, Postgres)', () => {
  const ctx = signedInDirector();
  let dir: string;
  let location: string;
  const passphrase = 'cache test passphrase';
  let repoId: string;
  let pointId: string;

  /** Writes a restore point of `image` and registers it. */
  const addPoint = async (vm: string, image: Buffer) => {
    const repo = await Repository.open(location, { passphrase });
    const rp = await RestorePointWriter.open(repo, { vmId: vm, vm: { name: vm } });
    const w = await rp.openDisk({ key: '2000', capacity: image.length, controller: 'pvscsi' });
    await w.write(0, image);
    const m = await rp.commit();
    await repo.close();
    const point = await ctx.d.db.restorePoint.create({ data: { repositoryId: repoId, repoPointId: m.id, vmInstanceUuid: vm, vmName: vm, createdAt: new Date(), logicalBytes: BigInt(image.length) } });
    return point.id;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-repo-cache-'));
    location = path.join(dir, 'repo');
    // A costly key (scrypt N=2^17, 128 MiB): deriving it once per request would be felt.
    await Repository.init(location, { passphrase, kdf: { N: 1 << 17, r: 8, p: 1 } });
    const row = await ctx.d.db.repository.create({ data: { name: 'cached', location, encrypted: true, passphraseSealed: sealSecret(SECRET, SECRET_LABELS.repositoryPassphrase, passphrase) } });
    repoId = row.id;
    pointId = await addPoint('vm-a', randomBytes(2 * MiB));
  }, 60_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const get = (url: string) => ctx.d.app.fastify.inject({ method: 'GET', url, headers: { cookie: ctx.cookie } });

  it('16 parallel requests for its figures and a restore point derive the key once, and /api/health answers while they run', async () => {
    const before = ctx.d.app.repositories.opened;
    const derivedBefore = ctx.d.app.repositories.keysDerived;
    let running = 16;
    const requests = Array.from({ length: 16 }, (_, i) => get(i % 2 ? `/api/repositories/${repoId}/stats` : `/api/restore-points/${pointId}`).finally(() => running--));
    const health = await get('/api/health');
    expect(health.statusCode).toBe(200);
    expect(running).toBeGreaterThan(0);
    for (const res of await Promise.all(requests)) expect(res.statusCode, res.body).toBe(200);
    expect(ctx.d.app.repositories.opened - before).toBe(1);
    expect(ctx.d.app.repositories.keysDerived - derivedBefore).toBe(1);
    expect((await get(`/api/restore-points/${pointId}/disks`)).statusCode).toBe(200);
    expect(ctx.d.app.repositories.opened - before).toBe(1);
  }, 60_000);

  it('a restore point written after the repository was opened is counted and downloads whole (new index files are read)', async () => {
    const image = randomBytes(3 * MiB);
    const later = await addPoint('vm-b', image);
    const before = ctx.d.app.repositories.opened;
    expect((await get(`/api/repositories/${repoId}/stats`)).json()).toMatchObject({ restorePoints: 2 });
    const raw = await get(`/api/restore-points/${later}/disks/2000/download?format=raw`);
    expect(raw.statusCode).toBe(200);
    expect(raw.rawPayload.equals(image)).toBe(true);
    expect(ctx.d.app.repositories.opened).toBe(before);
  }, 60_000);

  it('a changed row (its passphrase sealed again) opens the repository afresh; the same passphrase needs no new scrypt run', async () => {
    const before = ctx.d.app.repositories.opened;
    const derivedBefore = ctx.d.app.repositories.keysDerived;
    await ctx.d.db.repository.update({ where: { id: repoId }, data: { passphraseSealed: sealSecret(SECRET, SECRET_LABELS.repositoryPassphrase, passphrase) } });
    expect((await get(`/api/restore-points/${pointId}`)).statusCode).toBe(200);
    expect(ctx.d.app.repositories.opened - before).toBe(1);
    expect(ctx.d.app.repositories.keysDerived - derivedBefore).toBe(0);
  }, 60_000);
});

describe("listing a restore point's disks reads its manifest, not the global index", () => {
  const ctx = signedInDirector();
  let dir: string;
  let pointId: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-manifest-only-'));
    pointId = await createRestorePoint(ctx.d, dir, { name: 'db01', uuid: 'vm-uuid-m' }, [{ key: '2000', image: randomBytes(MiB), controller: 'lsilogic' }]);
    // Every index file damaged: whatever loads the global index fails.
    const indexDir = path.join(dir, 'repo-vm-uuid-m', 'index');
    for (const name of await readdir(indexDir)) await writeFile(path.join(indexDir, name), 'not an index');
  }, 60_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const get = (url: string) => ctx.d.app.fastify.inject({ method: 'GET', url, headers: { cookie: ctx.cookie } });

  it('the disks and the restore point are listed; the figures, which need the index, are a 503', async () => {
    const disks = await get(`/api/restore-points/${pointId}/disks`);
    expect(disks.statusCode, disks.body).toBe(200);
    expect(disks.json()).toEqual([{ key: '2000', capacityBytes: MiB, controller: 'lsilogic', transport: null }]);
    const point = await get(`/api/restore-points/${pointId}`);
    expect(point.statusCode, point.body).toBe(200);
    expect(point.json().disks.map((d: { key: string }) => d.key)).toEqual(['2000']);
    const repoId = point.json().repositoryId as string;
    const stats = await get(`/api/repositories/${repoId}/stats`);
    expect(stats.statusCode).toBe(503);
    expect(stats.json().message).toMatch(/index/);
  }, 60_000);
});
