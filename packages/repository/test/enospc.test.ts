import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository, RepositoryFullError, openDiskReader, openRestorePointWriter, verify } from '../src/index.ts';
import { makeImage, seededBytes, sha256, tmpDir } from './helpers.ts';

// A 24 MiB tmpfs (we run as root): the backup of 40 MiB of incompressible data cannot fit.
let mnt = '';
beforeAll(() => {
  mnt = tmpDir('vl-enospc-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
});
afterAll(() => {
  execFileSync('umount', [mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
});

describe('out of space', () => {
  it('ENOSPC mid-write fails with RepositoryFullError and leaves a valid repository', async () => {
    await Repository.init(mnt, { packTargetSize: 4 * 1024 * 1024 });
    const repo = await Repository.open(mnt);
    const small = makeImage(2 * 1024 * 1024, 1);
    const w0 = await openRestorePointWriter(repo, { vmId: 'vm-s' });
    await (await w0.openDisk({ key: 'd0', capacity: small.length })).write(0, small);
    const m0 = await w0.commit();

    const big = seededBytes(7, 40 * 1024 * 1024);
    const w = await openRestorePointWriter(repo, { vmId: 'vm-s', parent: { vmId: 'vm-s', id: m0.id } });
    const d = await w.openDisk({ key: 'd0', capacity: big.length, mode: 'full' });
    const run = async () => {
      for (let o = 0; o < big.length; o += 1 << 20) await d.write(o, big.subarray(o, o + (1 << 20)));
      await w.commit();
    };
    const err = await run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RepositoryFullError);
    expect((err as RepositoryFullError).code).toBe('NO_SPACE');
    await w.abort();
    // Only the first restore point is visible, it still restores, and verify is clean.
    const points = await repo.listRestorePoints();
    expect(points.map((p) => p.id)).toEqual([m0.id]);
    const r = await openDiskReader(repo, points[0]!, 'd0');
    expect(sha256(await r.read(0, r.capacity))).toBe(sha256(small));
    expect((await verify(repo)).ok).toBe(true);
    // The aborted writer cleaned up after itself: space is available again.
    const w2 = await openRestorePointWriter(repo, { vmId: 'vm-s', parent: points[0]! });
    await (await w2.openDisk({ key: 'd0', capacity: small.length })).write(0, small.subarray(0, 65536));
    await w2.commit();
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  });

  it('a restore to a file on a full filesystem fails with the error (writes in flight included) and the repository is untouched', async () => {
    const root = tmpDir();
    try {
      await Repository.init(root);
      const repo = await Repository.open(root);
      const big = seededBytes(9, 40 * 1024 * 1024);
      const w = await openRestorePointWriter(repo, { vmId: 'vm-r' });
      await (await w.openDisk({ key: 'd0', capacity: big.length })).write(0, big);
      const m = await w.commit();
      const r = await openDiskReader(repo, { vmId: 'vm-r', id: m.id }, 'd0');
      const err = await r.restoreToFile(`${mnt}/restore.img`).catch((e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      fs.rmSync(`${mnt}/restore.img`, { force: true });
      expect((await verify(repo)).ok).toBe(true);
      expect(sha256(await r.read(0, r.capacity))).toBe(sha256(big));
      await repo.close();
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
