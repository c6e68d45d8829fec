/**
 * A lab VM backed up into an S3 bucket end to end (issue #17): the real backup handler against the lab
 * vCenter, the repository in a folder of a bucket on a real S3 server (Ceph's RADOS Gateway on loopback,
 * @vaultline/s3-lab), encrypted with a passphrase. A full and an incremental backup read back bit-exact,
 * the incremental reads only what changed, the repository verifies clean, and a full VM restore streams
 * the newest point from the bucket to a new VM whose disks equal the guest's at backup time.
 */
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { restoreVm } from '@vaultline/core';
import { memoryLogger } from '@vaultline/logger';
import { verify, type Repository } from '@vaultline/repository';
import { startS3Lab, type S3Lab } from '@vaultline/s3-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import type { RestoreClientSession } from '../src/adapters/vsphere-port.ts';
import { isRoot, startBench, type Bench, type BenchPoint } from './fixture.ts';

const MiB = 1024 * 1024;
const BUCKET = 'offsite';
const PREFIX = 'site-a/vaultline';

describe.runIf(isRoot)('a lab VM backed up to and restored from an S3 bucket (RADOS Gateway on loopback, encrypted repository)', () => {
  let s3: S3Lab;
  let b: Bench;
  const points: BenchPoint[] = [];
  let afterFull: Map<string, number>;

  beforeAll(async () => {
    s3 = await startS3Lab();
    await s3.createBucket(BUCKET);
    b = await startBench({
      passphrase: 'an off-site passphrase',
      s3: { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, prefix: PREFIX, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await b.lab.createVm({ name: 'web01', cbt: true, disks: [{ capacityBytes: 48 * MiB }, { capacityBytes: 16 * MiB, controller: 'lsilogic' }] });
    await b.lab.guestWrite('web01', 0, [
      { offset: 0, length: 20 * MiB, pattern: 'random', seed: 71 },
      { offset: 30 * MiB, length: 6 * MiB, pattern: 'text', seed: 72 },
    ]);
    await b.lab.guestWrite('web01', 1, [{ offset: 2 * MiB, length: 8 * MiB, pattern: 'text', seed: 73 }]);
  }, 240_000);
  afterAll(async () => {
    await b?.close();
    await s3?.stop();
  });

  it('a full and an incremental backup land in the bucket (nothing on local disk), read back bit-exact, and the incremental reads only what changed', async () => {
    points.push(await b.backupPoint('web01', 2));
    afterFull = await s3.objects(BUCKET, `${PREFIX}/`);
    const packBytes = (m: Map<string, number>) => [...m].filter(([k]) => k.includes('/packs/')).reduce((a, [, v]) => a + v, 0);
    // Compressed and encrypted: the random 20 MiB cannot shrink, so at least that much is in packs.
    expect(packBytes(afterFull)).toBeGreaterThan(20 * MiB);
    expect(await readdir(b.repoDir), 'the local repository folder stays unused').toEqual([]);

    await b.lab.guestWrite('web01', 0, [{ offset: 40 * MiB, length: 1 * MiB, pattern: 'random', seed: 74 }]);
    points.push(await b.backupPoint('web01', 2));
    const point = await b.db.restorePoint.findUniqueOrThrow({ where: { id: points[1]!.rowId } });
    const incr = await b.db.runDisk.findMany({ where: { runVmId: point.runVmId! }, orderBy: { deviceKey: 'asc' } });
    expect(incr.map((d) => d.readMode)).toEqual(['changed', 'changed']);
    // The one changed MiB (CBT reports 64 KiB blocks; nothing changed on the second disk).
    expect(incr.reduce((a, d) => a + Number(d.bytesRead), 0)).toBe(1 * MiB);
    const added = packBytes(await s3.objects(BUCKET, `${PREFIX}/`)) - packBytes(afterFull);
    expect(added).toBeGreaterThan(1 * MiB);
    expect(added).toBeLessThan(3 * MiB);

    // Each point's disks read back from the bucket equal the guest's disks when it was taken (by device key).
    const vm = await b.lab.getVm('web01');
    for (const [i, p] of points.entries()) {
      const got = [];
      for (const d of vm.disks) got.push(await b.restoredSha256(p.id, p.vmId, String(d.key)));
      expect(got, `point ${i}`).toEqual(p.truth);
    }
    expect(points[0]!.truth[0]).not.toBe(points[1]!.truth[0]);
  }, 300_000);

  it('verifies clean, reading every chunk back from the bucket', async () => {
    const repo = await b.openRepository();
    try {
      const report = await verify(repo);
      expect(report.ok, JSON.stringify(report)).toBe(true);
      expect(report.restorePoints).toBe(2);
      expect(report.chunksChecked).toBe(report.chunksReferenced);
      expect(report.chunksChecked).toBeGreaterThan(0);
    } finally {
      await repo.close();
    }
  }, 300_000);

  it('restores the newest point from the bucket to a new VM over NBDSSL, bit-exact', async () => {
    const session: RestoreClientSession = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
    let repo: Repository | undefined;
    try {
      repo = await b.openRepository();
      const p = points[1]!;
      const lines: string[] = [];
      const result = await restoreVm(
        { repo, ref: { vmId: p.vmId, id: p.id }, name: 'web01-from-s3', restoreId: randomUUID(), transport: 'nbdssl', vcenterId: b.vcenterId },
        { vsphere: session.port, journal: pgJournal(b.db, b.transporterId, b.journalKey), log: memoryLogger('s3-restore').log, devices: b.devices, proxy: session.facts, runLog: (_l: string, m: string) => void lines.push(m) },
      );
      expect(result.disks.map((d) => d.sha256)).toEqual(p.truth);
      expect(await b.lab.diskSha256('web01-from-s3', 0)).toBe(p.truth[0]);
      expect(await b.lab.diskSha256('web01-from-s3', 1)).toBe(p.truth[1]);
    } finally {
      await repo?.close();
      await session.close();
    }
  }, 300_000);
});
