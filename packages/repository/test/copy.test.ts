/**
 * Backup copies (copy.ts): a restore point copied into another repository (with other keys and
 * settings) reads back bit-exact there; copying the next point with the first copy as base reads only
 * the chunks that changed and stores only what the target lacks; holes written after the base reach the
 * copy; a failed or cancelled copy leaves nothing in the target; both repositories verify clean. One
 * case copies into a real S3 bucket (Ceph's RADOS Gateway on loopback).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startS3Lab, type S3Lab } from '@vaultline/s3-lab';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { COPY_LABELS, copyRestorePoint } from '../src/copy.ts';
import { openDiskReader, Repository, S3Backend, verify, type Manifest } from '../src/index.ts';
import { backupImage, makeImage, mutate, sha256, tmpDir } from './helpers.ts';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

async function imageOf(repo: Repository, m: { vmId: string; id: string }, key = 'd0'): Promise<Buffer> {
  const r = await openDiskReader(repo, { vmId: m.vmId, id: m.id }, key);
  try {
    return await r.read(0, r.capacity);
  } finally {
    r.close();
  }
}

const opened: Repository[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function pair(target: { passphrase?: string } = { passphrase: 'the copy passphrase' }) {
  const root = tmpDir('vl-copy-');
  dirs.push(root);
  const a = path.join(root, 'source');
  const b = path.join(root, 'target');
  await Repository.init(a, { passphrase: 'the source passphrase' });
  await Repository.init(b, { ...target, compressionLevel: 3 });
  const source = await Repository.open(a, { passphrase: 'the source passphrase' });
  const copyTo = await Repository.open(b, target);
  opened.push(source, copyTo);
  return { source, target: copyTo };
}

describe('copying restore points between repositories', () => {
  it('a full copy into a repository with other keys reads back bit-exact and says where it came from', async () => {
    const { source, target } = await pair();
    const img = makeImage(8 * MiB, 11);
    const p = await backupImage(source, 'vm-1', img, null);
    const c = await copyRestorePoint(source, target, { vmId: 'vm-1', id: p.id });
    expect(c.incremental).toBe(false);
    // Every byte of data read once; holes (the image's zero blocks) are not read.
    expect(c.readBytes).toBe(c.dataBytes);
    expect(c.readBytes).toBeLessThan(img.length);
    expect(sha256(await imageOf(target, c.manifest))).toBe(sha256(img));
    expect(c.manifest.labels[COPY_LABELS.sourceId]).toBe(p.id);
    expect(c.manifest.labels[COPY_LABELS.sourceCreatedAt]).toBe(p.createdAt);
    expect(c.manifest.vmId).toBe('vm-1');
    expect(await target.listRestorePoints('vm-1')).toEqual([{ vmId: 'vm-1', id: c.manifest.id }]);
    expect((await verify(target)).ok).toBe(true);
    expect((await verify(source)).ok).toBe(true);
  });

  it('an incremental copy reads only the chunks that changed since its base, stores only what the target lacks, and carries new holes over', async () => {
    const { source, target } = await pair();
    const day1 = makeImage(16 * MiB, 21);
    const p1 = await backupImage(source, 'vm-2', day1, null);
    const c1 = await copyRestorePoint(source, target, { vmId: 'vm-2', id: p1.id });

    const day2 = Buffer.from(day1);
    const changes = mutate(day2, 5, 22); // five 64 KiB areas, each inside one 256 KiB chunk
    // And one chunk that held data is zeroed (a trimmed area): the copy must not keep its old data.
    const dataChunk = Array.from({ length: 64 }, (_, i) => i).find((ci) => !day1.subarray(ci * 256 * 1024, (ci + 1) * 256 * 1024).equals(Buffer.alloc(256 * 1024)) && !changes.some(([o]) => Math.floor(o / (256 * 1024)) === ci))!;
    day2.fill(0, dataChunk * 256 * 1024, (dataChunk + 1) * 256 * 1024);
    changes.push([dataChunk * 256 * 1024, 256 * 1024]);
    const p2 = await backupImage(source, 'vm-2', day2, null, p1, changes.sort((x, y) => x[0] - y[0]));

    const progress: number[] = [];
    const c2 = await copyRestorePoint(source, target, { vmId: 'vm-2', id: p2.id }, { base: { source: { vmId: 'vm-2', id: p1.id }, target: { vmId: 'vm-2', id: c1.manifest.id } }, onProgress: (x) => progress.push(x.readBytes) });
    expect(c2.incremental).toBe(true);
    const changedChunks = new Set(mutate(Buffer.from(day1), 5, 22).map(([o]) => Math.floor(o / (256 * 1024)))).size;
    expect(c2.readBytes).toBe(changedChunks * 256 * 1024);
    expect(progress[progress.length - 1]).toBe(c2.readBytes);
    // Only the changed chunks are new in the target (the zeroed one is a hole, never stored).
    expect(c2.stats.newChunks).toBe(changedChunks);
    expect(c2.manifest.parent).toBe(c1.manifest.id);
    expect(sha256(await imageOf(target, c2.manifest))).toBe(sha256(day2));
    expect(sha256(await imageOf(target, c1.manifest))).toBe(sha256(day1));
    expect((await verify(target)).ok).toBe(true);
  });

  it('a base whose copy is gone from the target is no base: the copy reads everything and is still complete', async () => {
    const { source, target } = await pair();
    const img = makeImage(4 * MiB, 31);
    const p1 = await backupImage(source, 'vm-3', img, null);
    const c = await copyRestorePoint(source, target, { vmId: 'vm-3', id: p1.id }, { base: { source: { vmId: 'vm-3', id: p1.id }, target: { vmId: 'vm-3', id: 'no-such-point' } } });
    expect(c.incremental).toBe(false);
    expect(c.readBytes).toBe(c.dataBytes);
    expect(sha256(await imageOf(target, c.manifest))).toBe(sha256(img));
  });

  it('a cancelled copy leaves nothing in the target, and the source is untouched', async () => {
    const { source, target } = await pair({});
    const img = makeImage(12 * MiB, 41);
    const p = await backupImage(source, 'vm-4', img, null);
    let runs = 0;
    await expect(
      copyRestorePoint(source, target, { vmId: 'vm-4', id: p.id }, { isCancelled: () => (++runs > 1 ? new Error('copy cancelled by the operator') : null) }),
    ).rejects.toThrow('copy cancelled by the operator');
    expect(await target.listRestorePoints()).toEqual([]);
    const report = await verify(target);
    expect(report.ok).toBe(true);
    expect(report.chunksReferenced).toBe(0);
    expect(sha256(await imageOf(source, p))).toBe(sha256(img));
  });

  it('refuses a base that is another VM’s point', async () => {
    const { source, target } = await pair({});
    const p = await backupImage(source, 'vm-5', makeImage(1 * MiB, 51), null);
    await expect(copyRestorePoint(source, target, { vmId: 'vm-5', id: p.id }, { base: { source: { vmId: 'vm-6', id: p.id }, target: { vmId: 'vm-6', id: p.id } } })).rejects.toThrow('must be a point of the same VM');
  });
});

describe.runIf(isRoot)('copying restore points into S3 (Ceph RADOS Gateway on loopback)', () => {
  let lab: S3Lab;
  beforeAll(async () => {
    lab = await startS3Lab();
    await lab.createBucket('copies');
  }, 180_000);
  afterAll(async () => {
    await lab?.stop();
  });

  it('a local point and its next are copied into a bucket, the second incrementally, and read back bit-exact from it', async () => {
    const root = tmpDir('vl-copy-s3-');
    dirs.push(root);
    await Repository.init(root);
    const source = await Repository.open(root);
    opened.push(source);
    const s3 = () => S3Backend.connect({ endpoint: lab.endpoint, region: lab.region, bucket: 'copies', prefix: 'offsite', accessKeyId: lab.accessKeyId, secretAccessKey: lab.secretAccessKey });
    await Repository.init(await s3(), { passphrase: 'off-site copies' });
    const target = await Repository.open(await s3(), { passphrase: 'off-site copies' });
    opened.push(target);

    const day1 = makeImage(8 * MiB, 61);
    const p1: Manifest = await backupImage(source, 'vm-s3', day1, null);
    const c1 = await copyRestorePoint(source, target, { vmId: 'vm-s3', id: p1.id });
    const day2 = Buffer.from(day1);
    const changes = mutate(day2, 3, 62);
    const p2 = await backupImage(source, 'vm-s3', day2, null, p1, changes);
    const c2 = await copyRestorePoint(source, target, { vmId: 'vm-s3', id: p2.id }, { base: { source: { vmId: 'vm-s3', id: p1.id }, target: { vmId: 'vm-s3', id: c1.manifest.id } } });
    expect(c2.incremental).toBe(true);
    expect(c2.readBytes).toBeLessThanOrEqual(3 * 256 * 1024);
    expect(sha256(await imageOf(target, c1.manifest))).toBe(sha256(day1));
    expect(sha256(await imageOf(target, c2.manifest))).toBe(sha256(day2));
    const objects = await lab.objects('copies', 'offsite/');
    expect([...objects.keys()].some((k) => k.includes('/packs/'))).toBe(true);
    expect((await verify(target)).ok).toBe(true);
  }, 240_000);
});
