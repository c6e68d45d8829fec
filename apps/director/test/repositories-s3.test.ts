/**
 * S3 repositories through the API, against a real S3 server (Ceph's RADOS Gateway, @vaultline/s3-lab):
 * created in an existing bucket, the secret access key sealed at rest and never returned, readable
 * afterwards; bad credentials, a missing bucket and a bad prefix refused with the reason.
 */
import { openSecret } from '@vaultline/config';
import { SECRET_LABELS } from '@vaultline/appliance';
import { startS3Lab, type S3Lab } from '@vaultline/s3-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

const isRoot = process.getuid?.() === 0;

describe.runIf(isRoot)('S3 repositories (Ceph RADOS Gateway on loopback)', () => {
  const ctx = signedInDirector();
  let lab: S3Lab;
  beforeAll(async () => {
    lab = await startS3Lab();
    await lab.createBucket('backups', { objectLock: true });
  }, 180_000);
  afterAll(async () => {
    await lab?.stop();
  });
  const add = (extra: object = {}) =>
    ctx.d.app.fastify.inject({
      method: 'POST',
      url: '/api/repositories',
      headers: { cookie: ctx.cookie },
      payload: { kind: 's3', name: 'object-store', endpoint: lab.endpoint, region: lab.region, bucket: 'backups', prefix: 'site-a/vaultline', accessKeyId: lab.accessKeyId, secretAccessKey: lab.secretAccessKey, ...extra },
    });

  it('creates the repository in the bucket, keeps the secret sealed and out of every answer, and reads it back', async () => {
    const res = await add();
    expect(res.statusCode, res.body).toBe(201);
    expect(res.body).not.toContain(lab.secretAccessKey);
    expect(res.json()).toMatchObject({ kind: 's3', name: 'object-store', encrypted: false });
    const row = await ctx.d.db.repository.findUniqueOrThrow({ where: { name: 'object-store' } });
    expect(row.location).toBe(`s3://${lab.accessKeyId}@backups/site-a/vaultline?endpoint=${encodeURIComponent(lab.endpoint)}&region=${lab.region}`);
    expect(row.s3SecretSealed).not.toContain(lab.secretAccessKey);
    // The test Director's appliance key (helpers.ts).
    expect(openSecret(Buffer.alloc(32, 3), SECRET_LABELS.repositoryS3Secret, row.s3SecretSealed!)).toBe(lab.secretAccessKey);
    const stats = await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/repositories/${row.id}/stats`, headers: { cookie: ctx.cookie } });
    expect(stats.statusCode, stats.body).toBe(200);
    expect(stats.json()).toMatchObject({ restorePoints: 0, freeBytes: null });
    const list = await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/repositories', headers: { cookie: ctx.cookie } });
    expect(list.body).not.toContain(lab.secretAccessKey);
  });

  it('refuses wrong credentials, a missing bucket and a prefix that climbs out, saying why, and stores nothing', async () => {
    const wrong = await add({ name: 'wrong-key', secretAccessKey: 'not-the-secret' });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().message).toContain('refused these credentials for bucket backups');
    const missing = await add({ name: 'no-bucket', bucket: 'no-such-bucket' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().message).toContain('bucket no-such-bucket does not exist');
    const climbing = await add({ name: 'climbing', prefix: 'a/../../b' });
    expect(climbing.statusCode).toBe(400);
    expect(await ctx.d.db.repository.count({ where: { name: { in: ['wrong-key', 'no-bucket', 'climbing'] } } })).toBe(0);
  });
});
