/**
 * S3 backend against a real S3 server: Ceph's RADOS Gateway on a one-node in-memory cluster
 * (@vaultline/s3-lab), started here and stopped afterwards. The same conformance suite as the local
 * and SFTP backends, then what is particular to object storage: exclusive creation without
 * If-None-Match, no versions left behind, multipart packs, Object Lock, and clear errors.
 */
import { CreateBucketCommand, DeleteObjectCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startS3Lab, type S3Lab } from '@vaultline/s3-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteRestorePoint, gc, ImmutableError, NotFoundError, openDiskReader, openRestorePointWriter, Repository, RepositoryError, S3Backend, verify, type Manifest } from '../src/index.ts';
import { backendConformance } from './backend-conformance.ts';
import { backupImage, makeImage, mutate, seededBytes, sha256, storedFilesOf } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
let lab: S3Lab;
let admin: S3Client;

const bucket = async (name: string, objectLock = false) => {
  await admin.send(new CreateBucketCommand({ Bucket: name, ...(objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  return name;
};
const connect = (Bucket: string, prefix = '', extra: { partBytes?: number } = {}) =>
  S3Backend.connect({ endpoint: lab.endpoint, region: lab.region, bucket: Bucket, prefix, accessKeyId: lab.accessKeyId, secretAccessKey: lab.secretAccessKey, ...extra });
/** Every version and delete marker under a prefix, as the storage itself lists them. */
const versionsUnder = async (Bucket: string, Prefix: string) => {
  const r = await admin.send(new ListObjectVersionsCommand({ Bucket, Prefix }));
  return [...(r.Versions ?? []).map((v) => v.Key!), ...(r.DeleteMarkers ?? []).map((m) => `${m.Key!} (marker)`)].sort();
};

describe.runIf(isRoot)('S3 backend (Ceph RADOS Gateway on loopback)', () => {
  beforeAll(async () => {
    lab = await startS3Lab();
    admin = new S3Client({ endpoint: lab.endpoint, region: lab.region, forcePathStyle: true, credentials: lab });
    await bucket('conformance');
  }, 180_000);
  afterAll(async () => {
    admin?.destroy();
    await lab?.stop();
  });

  let n = 0;
  backendConformance('s3 (Ceph RADOS Gateway on loopback)', async () => {
    const prefix = `repo-${n++}`;
    const backend = await connect('conformance', prefix);
    return { backend, cleanup: () => backend.close() };
  });

  it('createExclusive has one winner among many racing writers, and the losers leave no version behind', async () => {
    const b = await connect('conformance', 'race');
    try {
      for (let round = 0; round < 12; round++) {
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => b.createExclusive(`locks/r${round}`, Buffer.from(`writer ${i}`))));
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true);
        expect((await b.readFile(`locks/r${round}`)).toString()).toBe(`writer ${winner}`);
        expect(await versionsUnder('conformance', `race/locks/r${round}`)).toEqual([`race/locks/r${round}`]);
      }
    } finally {
      await b.close();
    }
  });

  it('overwrites and removes leave neither old versions nor delete markers (nothing kept to pay for)', async () => {
    const b = await connect('conformance', 'tidy');
    try {
      for (let i = 0; i < 4; i++) await b.writeFileAtomic('index/x', Buffer.from(`v${i}`));
      expect(await versionsUnder('conformance', 'tidy/')).toEqual(['tidy/index/x']);
      await b.remove('index/x');
      expect(await versionsUnder('conformance', 'tidy/')).toEqual([]);
      const w = await b.openWriter('packs/p');
      await w.write(Buffer.alloc(100));
      await w.abort();
      expect(await versionsUnder('conformance', 'tidy/')).toEqual([]);
    } finally {
      await b.close();
    }
  });

  it('a pack larger than a part is a multipart upload: invisible until commit, exact after, nothing left by an abort', async () => {
    const b = await connect('conformance', 'multipart', { partBytes: 5 * 1024 * 1024 });
    try {
      const data = Buffer.alloc(12 * 1024 * 1024 + 12345);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
      const w = await b.openWriter('packs/big');
      for (let off = 0; off < data.length; off += 1024 * 1024 + 7) await w.write(data.subarray(off, Math.min(data.length, off + 1024 * 1024 + 7)));
      expect(await b.stat('packs/big')).toBeNull();
      await w.commit();
      expect((await b.readFile('packs/big')).equals(data)).toBe(true);
      expect((await b.readRange('packs/big', 5 * 1024 * 1024 - 10, 20)).equals(data.subarray(5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10))).toBe(true);
      const aborted = await b.openWriter('packs/gone');
      await aborted.write(data);
      await aborted.abort();
      expect(await b.list('packs')).toEqual(['big']);
    } finally {
      await b.close();
    }
  });

  it('a key created after a plain DELETE (a delete marker) is created again by createExclusive', async () => {
    const b = await connect('conformance', 'marker');
    try {
      await admin.send(new PutObjectCommand({ Bucket: 'conformance', Key: 'marker/k', Body: 'old' }));
      await admin.send(new DeleteObjectCommand({ Bucket: 'conformance', Key: 'marker/k' }));
      expect(await b.stat('k')).toBeNull();
      expect(await b.createExclusive('k', Buffer.from('new'))).toBe(true);
      expect((await b.readFile('k')).toString()).toBe('new');
    } finally {
      await b.close();
    }
  });

  it('Object Lock: a locked object cannot be removed, by the backend or with the storage keys directly, and retention only grows', async () => {
    const b = await connect(await bucket('locked', true));
    try {
      expect(b.objectLock).toBe(true);
      await b.writeFileAtomic('packs/p1', Buffer.from('pack'));
      const until = new Date(Date.now() + 3_600_000);
      await b.lockUntil('packs/p1', until);
      expect((await b.lockedUntil('packs/p1'))?.getTime()).toBe(until.getTime());
      await b.lockUntil('packs/p1', new Date(Date.now() + 60_000)); // shorter: kept as it is
      expect((await b.lockedUntil('packs/p1'))?.getTime()).toBe(until.getTime());
      const err = await b.remove('packs/p1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImmutableError);
      expect((err as Error).message).toContain(`until ${until.toISOString()}`);
      const { Versions } = await admin.send(new ListObjectVersionsCommand({ Bucket: 'locked', Prefix: 'packs/p1' }));
      await expect(admin.send(new DeleteObjectCommand({ Bucket: 'locked', Key: 'packs/p1', VersionId: Versions![0]!.VersionId }))).rejects.toMatchObject({ name: 'AccessDenied' });
      expect((await b.readFile('packs/p1')).toString()).toBe('pack');
    } finally {
      await b.close();
    }
  });

  it('a bucket without Object Lock says so when asked to lock', async () => {
    const b = await connect('conformance', 'nolock');
    try {
      expect(b.objectLock).toBe(false);
      await b.writeFileAtomic('x', Buffer.from('1'));
      await expect(b.lockUntil('x', new Date(Date.now() + 60_000))).rejects.toThrow(/has no Object Lock/);
      expect(await b.lockedUntil('x')).toBeNull();
    } finally {
      await b.close();
    }
  });

  it('clear errors: a missing bucket, wrong credentials, an unreachable server, a missing object', async () => {
    await expect(connect('no-such-bucket')).rejects.toThrow(/bucket no-such-bucket does not exist/);
    await expect(S3Backend.connect({ endpoint: lab.endpoint, region: lab.region, bucket: 'conformance', accessKeyId: lab.accessKeyId, secretAccessKey: 'wrong' })).rejects.toThrow(
      /refused these credentials for bucket conformance/,
    );
    const err = await S3Backend.connect({ endpoint: 'http://127.0.0.1:1', region: lab.region, bucket: 'conformance', accessKeyId: 'a', secretAccessKey: 'b', maxAttempts: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RepositoryError);
    expect((err as Error).message).toMatch(/s3 opening the bucket at s3:\/\/conformance at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
    const b = await connect('conformance', 'errors');
    try {
      await expect(b.readFile('nope')).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      await b.close();
    }
  });
  describe('restore points the storage keeps immutable (Object Lock, compliance mode)', () => {
    const hour = 3_600_000;
    /** Writes one restore point of `img` (an incremental when `parent` is given). */
    const backup = (repo: Repository, img: Buffer, lockedUntil: Date | null, parent?: Manifest, changes?: Array<[number, number]>) => backupImage(repo, 'vm-l', img, lockedUntil, parent, changes);
    /** Every pack holding a chunk of the point, and its own files. */
    const objectsOf = async (repo: Repository, m: Manifest) => {
      const { packs, own } = await storedFilesOf(repo, m);
      return { packs, files: [...own, 'config'] };
    };

    it('a locked point is undeletable in the storage before it is visible; a later point extends the packs it shares; GC and deletes are refused until the date', async () => {
      const b = await connect(await bucket('immutable', true), 'repo');
      try {
        // Small packs: the point's chunks spread over several, so sharing and extending can be seen per pack.
        await Repository.init(b, { chunkSize: 64 * 1024, packTargetSize: 128 * 1024 });
        const repo = await Repository.open(b);
        const img = makeImage(2 * 1024 * 1024 + 4096, 31);
        const untilA = new Date(Date.now() + hour);
        const a = await backup(repo, img, untilA);
        const ofA = await objectsOf(repo, a);
        expect(ofA.packs.length).toBeGreaterThan(1);
        // Its own files to its date; the packs and the config to the end of the lock generation, a little later.
        for (const p of ofA.files.filter((f) => f !== 'config')) expect((await b.lockedUntil(p))?.getTime(), p).toBe(untilA.getTime());
        const generationA = Date.parse(a.packsLockedUntil!);
        expect(generationA).toBeGreaterThanOrEqual(untilA.getTime());
        expect(generationA).toBeLessThanOrEqual(untilA.getTime() + hour / 10);
        for (const p of [...ofA.packs, 'config']) expect((await b.lockedUntil(p))?.getTime(), p).toBe(generationA);

        // An incremental locked longer shares most of A's packs: their retention grows to its date.
        const changed = Buffer.from(img);
        const changes = mutate(changed, 3, 7, 64 * 1024, 64 * 1024);
        const untilB = new Date(Date.now() + 2 * hour);
        const bPoint = await backup(repo, changed, untilB, a, changes);
        const ofB = await objectsOf(repo, bPoint);
        const shared = ofA.packs.filter((p) => ofB.packs.includes(p));
        expect(shared.length).toBeGreaterThan(0);
        const generationB = Date.parse(bPoint.packsLockedUntil!);
        expect(generationB).toBeGreaterThanOrEqual(untilB.getTime());
        for (const p of shared) expect((await b.lockedUntil(p))?.getTime(), p).toBe(generationB);

        // A point made within B's generation locks only its new packs and its own files: one request each,
        // none for the many packs B locked past its date already.
        const untilC = new Date(Math.min(generationB, untilB.getTime() + 60_000));
        const before = b.requests.get('PutObjectRetentionCommand') ?? 0;
        const again = Buffer.from(changed);
        const changesC = mutate(again, 5, 3, 64 * 1024, 64 * 1024);
        const cPoint = await backup(repo, again, untilC, bPoint, changesC);
        const ofC = await objectsOf(repo, cPoint);
        const newPacks = ofC.packs.filter((p) => !ofB.packs.includes(p));
        expect(newPacks.length).toBeGreaterThan(0);
        expect(ofC.packs.length - newPacks.length, 'C shares most packs with B').toBeGreaterThan(newPacks.length);
        // New packs, the session's index file, the disk index and the manifest.
        expect((b.requests.get('PutObjectRetentionCommand') ?? 0) - before).toBe(newPacks.length + 3);
        for (const p of ofC.packs) expect((await b.lockedUntil(p))!.getTime(), p).toBeGreaterThanOrEqual(untilC.getTime());
        // What C records is what all its packs are locked to at least (B's generation for the shared ones).
        expect(Date.parse(cPoint.packsLockedUntil!)).toBeLessThanOrEqual(generationB);
        expect(Date.parse(cPoint.packsLockedUntil!)).toBeGreaterThanOrEqual(untilC.getTime());

        // Deleting is refused by the repository, by the backend, and by the storage to its own keys.
        await expect(deleteRestorePoint(repo, { vmId: 'vm-l', id: a.id })).rejects.toBeInstanceOf(ImmutableError);
        await expect(b.remove(ofA.files[0]!)).rejects.toBeInstanceOf(ImmutableError);
        for (const key of [`repo/${ofA.packs[0]!}`, `repo/${ofA.files[0]!}`, 'repo/config']) {
          const { Versions } = await admin.send(new ListObjectVersionsCommand({ Bucket: 'immutable', Prefix: key }));
          await expect(admin.send(new DeleteObjectCommand({ Bucket: 'immutable', Key: key, VersionId: Versions![0]!.VersionId })), key).rejects.toMatchObject({ name: 'AccessDenied' });
        }

        // GC with no grace at all keeps everything locked, and both points still restore bit-exact.
        const report = await gc(repo, { graceMs: 0, repackThreshold: 0 });
        expect(report.deletedPacks).toBe(0);
        for (const [m, want] of [[a, img], [bPoint, changed]] as const) {
          const r = await openDiskReader(repo, { vmId: 'vm-l', id: m.id }, 'd0');
          expect(sha256(await r.read(0, r.capacity))).toBe(sha256(want));
        }
        expect((await verify(repo)).ok).toBe(true);
        await repo.close();
      } finally {
        await b.close();
      }
    });

    it('once a lock expires its point can be deleted; GC frees the packs no locked point needs and keeps, unrepacked, those a later locked point shares', async () => {
      const b = await connect(await bucket('immutable-expiring', true));
      try {
        await Repository.init(b, { chunkSize: 64 * 1024, packTargetSize: 128 * 1024 });
        const repo = await Repository.open(b);
        // Incompressible and without repeats: two chunks a pack, and no chunk of the first MiB recurs later.
        const img = seededBytes(5, 2 * 1024 * 1024);
        const shortly = new Date(Date.now() + 4000);
        const a = await backup(repo, img, shortly);
        // B rewrites A's first MiB: the packs holding only that MiB of A are needed by no one once A goes.
        const changed = Buffer.from(img);
        seededBytes(77, 1024 * 1024).copy(changed, 0);
        const b2 = await backup(repo, changed, new Date(Date.now() + hour), a, [[0, 1024 * 1024]]);
        const ofA = (await objectsOf(repo, a)).packs;
        const ofB = (await objectsOf(repo, b2)).packs;
        const onlyA = ofA.filter((p) => !ofB.includes(p));
        expect(onlyA.length, 'some packs hold only chunks B replaced').toBeGreaterThan(0);
        await expect(deleteRestorePoint(repo, { vmId: 'vm-l', id: a.id })).rejects.toBeInstanceOf(ImmutableError);
        await new Promise((r) => setTimeout(r, shortly.getTime() - Date.now() + 1500));
        await deleteRestorePoint(repo, { vmId: 'vm-l', id: a.id });
        // Every pack with a dead chunk would be repacked (threshold 0): the ones B locks stay as they are.
        const report = await gc(repo, { graceMs: 0, repackThreshold: 0 });
        expect(report.deletedPacks).toBe(onlyA.length);
        expect(report.lockedKept).toBeGreaterThan(0);
        for (const p of onlyA) expect(await versionsUnder('immutable-expiring', p), p).toEqual([]);
        for (const p of ofB) expect(await b.lockedUntil(p), p).not.toBeNull();
        const r = await openDiskReader(repo, { vmId: 'vm-l', id: b2.id }, 'd0');
        expect(sha256(await r.read(0, r.capacity))).toBe(sha256(changed));
        expect((await verify(repo)).ok).toBe(true);
        await repo.close();
      } finally {
        await b.close();
      }
    }, 60_000);

    it('a locked point on a bucket without Object Lock is refused before anything is written, saying why', async () => {
      const b = await connect('conformance', 'unlockable');
      try {
        await Repository.init(b, { chunkSize: 64 * 1024 });
        const repo = await Repository.open(b);
        const err = await openRestorePointWriter(repo, { vmId: 'vm-l', lockedUntil: new Date(Date.now() + hour) }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ImmutableError);
        expect((err as Error).message).toMatch(/bucket conformance has no Object Lock.*create the bucket with Object Lock enabled/);
        expect(await b.list('packs')).toEqual([]);
        await repo.close();
      } finally {
        await b.close();
      }
    });
  });
});
