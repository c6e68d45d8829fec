/**
 * The S3 lab is a real RADOS Gateway: objects round-trip, Object Lock in compliance mode refuses deletes and
 * shorter retention for everyone (owner included), and stop() leaves neither a daemon nor a file behind.
 * Needs root and Ceph's packages (npm test installs them); CI runs as root, so there it always runs.
 */
import * as fs from 'node:fs';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, PutObjectRetentionCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { startS3Lab } from '../src/index.ts';

const isRoot = process.getuid?.() === 0;

describe.runIf(isRoot)('S3 lab (Ceph RADOS Gateway)', () => {
  it('serves S3 with Object Lock, and stop() ends every daemon and removes its files', async () => {
    const lab = await startS3Lab();
    const dirs = fs.readdirSync('/tmp').filter((n) => n.startsWith('vaultline-s3-lab-'));
    const s3 = new S3Client({ endpoint: lab.endpoint, region: lab.region, forcePathStyle: true, credentials: lab });
    try {
      const Bucket = 'locked';
      await s3.send(new CreateBucketCommand({ Bucket, ObjectLockEnabledForBucket: true }));
      const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'a/b', Body: 'hello', ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: new Date(Date.now() + 3_600_000) }));
      expect(await (await s3.send(new GetObjectCommand({ Bucket, Key: 'a/b' }))).Body!.transformToString()).toBe('hello');
      await expect(s3.send(new DeleteObjectCommand({ Bucket, Key: 'a/b', VersionId: put.VersionId }))).rejects.toMatchObject({ name: 'AccessDenied' });
      await expect(
        s3.send(new PutObjectRetentionCommand({ Bucket, Key: 'a/b', VersionId: put.VersionId, Retention: { Mode: 'COMPLIANCE', RetainUntilDate: new Date(Date.now() + 60_000) } })),
      ).rejects.toMatchObject({ name: 'AccessDenied' });
      expect(await (await s3.send(new GetObjectCommand({ Bucket, Key: 'a/b', VersionId: put.VersionId }))).Body!.transformToString()).toBe('hello');
    } finally {
      s3.destroy();
      await lab.stop();
    }
    for (const dir of dirs) expect(fs.existsSync(`/tmp/${dir}`), `${dir} removed`).toBe(false);
    const left = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return dirs.some((d) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(d));
        } catch {
          return false;
        }
      });
    expect(left, 'no Ceph daemon of the lab is left').toEqual([]);
  }, 180_000);
});
