import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository, openDiskReader, openRestorePointWriter, verify } from '../src/index.ts';
import { makeImage, mutate, sha256, tmpDir } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function readAll(repo: Repository, vmId: string, id: string, key: string): Promise<Buffer> {
  const r = await openDiskReader(repo, { vmId, id }, key);
  return r.read(0, r.capacity);
}

describe('full + incremental round trips', () => {
  it('full backup then incremental of changed areas restore bit-exact (sha256), holes and unaligned writes included', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 256 * 1024 });
    const repo = await Repository.open(root);
    const size = 24 * 1024 * 1024 + 12345; // not a multiple of the chunk size
    const img = makeImage(size, 1);
    const w = await openRestorePointWriter(repo, { vmId: 'vm-1', vm: { name: 'web01', cpus: 2 }, transport: 'nbd' });
    const d = await w.openDisk({ key: 'scsi0:0', capacity: size, format: 'thin', controller: 'pvscsi', changeId: 'c1' });
    // Full backup in odd-sized pieces: unaligned writes.
    const piece = 1_000_003;
    for (let off = 0; off < size; off += piece) await d.write(off, img.subarray(off, Math.min(size, off + piece)));
    const m1 = await w.commit();
    expect(m1.disks[0]!.stats.zeroChunks).toBeGreaterThan(0);
    expect(m1.disks[0]!.stats.newChunks).toBeGreaterThan(0);
    expect(sha256(await readAll(repo, 'vm-1', m1.id, 'scsi0:0'))).toBe(sha256(img));

    // Day 2: scattered aligned changes, an unaligned change straddling chunks, and a zeroed area.
    const changes = mutate(img, 20, 7);
    const odd: [number, number] = [3 * 256 * 1024 - 1000, 5000];
    img.fill(0xab, odd[0], odd[0] + odd[1]);
    img.fill(0, 8 * 256 * 1024, 10 * 256 * 1024);
    const w2 = await openRestorePointWriter(repo, { vmId: 'vm-1', parent: { vmId: 'vm-1', id: m1.id } });
    const d2 = await w2.openDisk({ key: 'scsi0:0', capacity: size, changeId: 'c2' });
    const all = [...changes, odd].sort((a, b) => a[0] - b[0]);
    for (const [off, len] of all) await d2.write(off, img.subarray(off, off + len));
    await d2.markZero(8 * 256 * 1024, 2 * 256 * 1024);
    const m2 = await w2.commit();
    const st = m2.disks[0]!.stats;
    expect(st.reusedChunks).toBeGreaterThan(0);
    expect(st.mergedChunks).toBeGreaterThan(0);
    expect(sha256(await readAll(repo, 'vm-1', m2.id, 'scsi0:0'))).toBe(sha256(img));
    // The first restore point is unchanged.
    expect((await verify(repo)).ok).toBe(true);

    // Restore fast path + stream.
    const out = path.join(root, 'restore.img');
    const r = await openDiskReader(repo, { vmId: 'vm-1', id: m2.id }, 'scsi0:0');
    await r.restoreToFile(out);
    expect(sha256(fs.readFileSync(out))).toBe(sha256(img));
    const parts: Buffer[] = [];
    for await (const c of r.stream()) parts.push(c as Buffer);
    expect(sha256(Buffer.concat(parts))).toBe(sha256(img));
    await repo.close();
  });

  it('full re-read with dedup stores almost nothing new and fullImageSha256 matches', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root);
    const repo = await Repository.open(root);
    const size = 8 * 1024 * 1024;
    const img = makeImage(size, 3);
    const w = await openRestorePointWriter(repo, { vmId: 'vm-2' });
    const d = await w.openDisk({ key: 'd0', capacity: size, fullImageSha256: true });
    for (let off = 0; off < size; off += 65536) await d.write(off, img.subarray(off, off + 65536));
    const m1 = await w.commit();
    expect(m1.disks[0]!.sha256).toBe(sha256(img));
    mutate(img, 2, 9);
    const w2 = await openRestorePointWriter(repo, { vmId: 'vm-2', parent: { vmId: 'vm-2', id: m1.id } });
    const d2 = await w2.openDisk({ key: 'd0', capacity: size, mode: 'full', fullImageSha256: true });
    await d2.write(0, img);
    const m2 = await w2.commit();
    expect(m2.disks[0]!.stats.newChunks).toBeLessThanOrEqual(2);
    expect(m2.disks[0]!.sha256).toBe(sha256(img));
    expect(sha256(await readAll(repo, 'vm-2', m2.id, 'd0'))).toBe(sha256(img));
    await repo.close();
  });
});
