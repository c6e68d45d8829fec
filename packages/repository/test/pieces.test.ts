import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptDataError, Repository, deleteRestorePoint, gc, openDiskReader, openRestorePointWriter, verify } from '../src/index.ts';
import type { Manifest } from '../src/index.ts';
import { HOLE_HEX, SPLIT_ID, decodeDiskIndex, encodeDiskIndex } from '../src/format.ts';
import { makeImage, rng, seededBytes, sha256, tmpDir } from './helpers.ts';

const KiB = 1024;
const CHUNK = 256 * KiB;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function fresh(passphrase?: string): Promise<{ root: string; repo: Repository }> {
  const root = tmpDir();
  dirs.push(root);
  await Repository.init(root, { chunkSize: CHUNK, packTargetSize: 1024 * KiB, ...(passphrase ? { passphrase, kdf: { N: 1 << 12, r: 8, p: 1 } } : {}) });
  return { root, repo: await Repository.open(root, passphrase ? { passphrase } : {}) };
}

async function backup(repo: Repository, img: Buffer, parent: Manifest | null, writes: Array<[number, number]> | 'all', zeros: Array<[number, number]> = []): Promise<Manifest> {
  const w = await openRestorePointWriter(repo, { vmId: 'vm', parent: parent ? { vmId: 'vm', id: parent.id } : null });
  const d = await w.openDisk({ key: 'd0', capacity: img.length, ...(writes === 'all' ? { mode: 'full' as const } : {}) });
  if (writes === 'all') await d.write(0, img);
  else for (const [o, l] of writes) await d.write(o, img.subarray(o, o + l));
  for (const [o, l] of zeros) await d.markZero(o, l);
  return w.commit();
}

async function restoreAll(repo: Repository, root: string, m: Manifest): Promise<{ read: string; stream: string; file: string }> {
  const r = await openDiskReader(repo, { vmId: 'vm', id: m.id }, 'd0');
  const parts: Buffer[] = [];
  for await (const c of r.stream()) parts.push(c as Buffer);
  const out = path.join(root, `restore-${m.id}.img`);
  await r.restoreToFile(out);
  const file = sha256(fs.readFileSync(out));
  fs.rmSync(out);
  return { read: sha256(await r.read(0, r.capacity)), stream: sha256(Buffer.concat(parts)), file };
}

async function expectRestores(repo: Repository, root: string, m: Manifest, img: Buffer): Promise<void> {
  const want = sha256(img);
  expect(await restoreAll(repo, root, m)).toEqual({ read: want, stream: want, file: want });
}

/** Random 64 KiB-aligned blocks, at most one per 256 KiB chunk region picked from `rand`. */
function changeBlocks(img: Buffer, r: () => number, count: number, len = 64 * KiB): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const blocks = Math.floor(img.length / len);
  const picked = new Set<number>();
  while (picked.size < count) picked.add(Math.floor(r() * blocks));
  for (const b of [...picked].sort((a, c) => a - c)) {
    crypto.randomFillSync(img, b * len, len);
    out.push([b * len, len]);
  }
  return out;
}

describe('sub-chunk pieces (format v2 incrementals)', () => {
  it('an incremental stores only the changed 64 KiB blocks of 256 KiB chunks, reads nothing back, and restores bit-exact', async () => {
    const { root, repo } = await fresh();
    const img = makeImage(8 * 1024 * KiB, 1);
    const m1 = await backup(repo, img, null, 'all');
    const changes = changeBlocks(img, rng(2), 12);
    const m2 = await backup(repo, img, m1, changes);
    const st = m2.disks[0]!.stats;
    const changed = changes.reduce((a, c) => a + c[1], 0);
    expect(st.splitChunks).toBeGreaterThan(0);
    expect(st.mergedChunks).toBe(0);
    expect(st.baseReadBytes).toBe(0);
    expect(st.newRawBytes).toBe(changed);
    await expectRestores(repo, root, m2, img);
    const idx = await repo.readDiskIndex({ vmId: 'vm', id: m2.id }, 'd0');
    expect(idx.pieces.size).toBe(st.splitChunks);
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  });

  it('generations of scattered, unaligned, zeroed and resized changes keep every restore point bit-exact; GC keeps what pieces reference', async () => {
    const { root, repo } = await fresh();
    const size = 4 * 1024 * KiB + 100 * KiB; // short last chunk
    let img = makeImage(size, 3);
    const points: Array<{ m: Manifest; sum: string; img: Buffer }> = [];
    let m = await backup(repo, img, null, 'all');
    points.push({ m, sum: sha256(img), img: Buffer.from(img) });
    const r = rng(7);
    for (let gen = 0; gen < 7; gen++) {
      const writes: Array<[number, number]> = changeBlocks(img, r, 6);
      // Unaligned writes inside blocks (their blocks need the parent's bytes), some crossing chunk edges.
      for (let k = 0; k < 3; k++) {
        const o = Math.floor(r() * (img.length - 9000));
        crypto.randomFillSync(img, o, 5000 + k);
        writes.push([o, 5000 + k]);
      }
      const zeros: Array<[number, number]> = [];
      if (gen % 2 === 1) {
        const z = Math.floor(r() * 60) * 64 * KiB;
        img.fill(0, z, z + 64 * KiB);
        zeros.push([z, 64 * KiB]);
      }
      if (gen === 4) {
        // The disk grows by a non-multiple of the chunk size: the old short chunk gets parent data + zeros.
        const grown = Buffer.alloc(img.length + 300 * KiB + 17);
        img.copy(grown);
        img = grown;
      }
      if (gen === 6) img = Buffer.from(img.subarray(0, img.length - 200 * KiB - 5)); // and shrinks
      const merged = mergeWrites(writes.filter(([o, l]) => o + l <= img.length));
      const w = await openRestorePointWriter(repo, { vmId: 'vm', parent: { vmId: 'vm', id: m.id } });
      const d = await w.openDisk({ key: 'd0', capacity: img.length });
      for (const [o, l] of merged) await d.write(o, img.subarray(o, o + l));
      for (const [o, l] of zeros) await d.markZero(o, l);
      m = await w.commit();
      points.push({ m, sum: sha256(img), img: Buffer.from(img) });
    }
    const last = points[points.length - 1]!;
    expect(last.m.disks[0]!.stats.splitChunks).toBeGreaterThan(0);
    // Partly written blocks were completed from the parent (split parents decoded on the main thread).
    expect(points.reduce((a, p) => a + p.m.disks[0]!.stats.mergedChunks, 0)).toBeGreaterThan(0);
    for (const [i, p] of points.entries()) {
      const got = await restoreAll(repo, root, p.m);
      expect(got, `restore point ${i} ${p.m.id}`).toEqual({ read: p.sum, stream: p.sum, file: p.sum });
    }
    expect((await verify(repo)).ok).toBe(true);
    // Retention drops everything but the newest point; the blobs its pieces name (written by the
    // full backup and older incrementals) must survive GC.
    for (const p of points.slice(0, -1)) await deleteRestorePoint(repo, { vmId: 'vm', id: p.m.id });
    const report = await gc(repo, { graceMs: 0, repackThreshold: 0.01 });
    expect(report.deletedPacks + report.repackedPacks).toBeGreaterThan(0);
    await expectRestores(repo, root, last.m, last.img);
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  });

  it('a bit flip in a full backup blob is reported for the incrementals whose pieces reference it', async () => {
    const { root, repo } = await fresh();
    const img = makeImage(2 * 1024 * KiB, 9);
    crypto.randomFillSync(img, 0, CHUNK); // chunk 0 is data
    const m1 = await backup(repo, img, null, 'all');
    crypto.randomFillSync(img, 64 * KiB, 64 * KiB); // one block of chunk 0 changes
    const m2 = await backup(repo, img, m1, [[64 * KiB, 64 * KiB]]);
    const idx2 = await repo.readDiskIndex({ vmId: 'vm', id: m2.id }, 'd0');
    const ps = idx2.pieces.get(0)!;
    expect(ps.map((p) => p.start)).toEqual([0, 64 * KiB, 128 * KiB]);
    const victim = ps[0]!.id;
    expect(ps[2]!.id).toBe(victim); // both unchanged parts name the full backup's blob
    const loc = repo.index.get(victim)!;
    const file = path.join(root, 'packs', loc.pack.slice(0, 2), `${loc.pack}.pack`);
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, loc.offset + 40);
    b[0]! ^= 0x01;
    fs.writeSync(fd, b, 0, 1, loc.offset + 40);
    fs.closeSync(fd);
    const rep = await verify(repo);
    const hit = rep.damagedChunks.find((d) => d.chunk === victim)!;
    expect(hit.restorePoints.map((p) => p.id).sort()).toEqual([m1.id, m2.id].sort());
    expect(hit.restorePoints.find((p) => p.id === m2.id)!.offsets).toEqual([0, 128 * KiB]);
    const r = await openDiskReader(repo, { vmId: 'vm', id: m2.id }, 'd0');
    await expect(r.read(0, CHUNK)).rejects.toBeInstanceOf(CorruptDataError);
    await expect(r.restoreToFile(path.join(root, 'bad.img'))).rejects.toBeInstanceOf(CorruptDataError);
    await repo.close();
  });

  it('encrypted repositories use pieces too and round trip', async () => {
    const { root, repo } = await fresh('piece-pw');
    const img = makeImage(3 * 1024 * KiB, 4);
    const m1 = await backup(repo, img, null, 'all');
    const changes = changeBlocks(img, rng(5), 5);
    crypto.randomFillSync(img, 3 * CHUNK + 1000, 3000);
    const m2 = await backup(repo, img, m1, mergeWrites([...changes, [3 * CHUNK + 1000, 3000]]));
    expect(m2.disks[0]!.stats.splitChunks).toBeGreaterThan(0);
    await expectRestores(repo, root, m2, img);
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  });

  it("a full re-read ('full' mode, CBT reset) after incrementals restores bit-exact and stores split chunks whole", async () => {
    const { root, repo } = await fresh();
    const img = makeImage(4 * 1024 * KiB, 6);
    const m1 = await backup(repo, img, null, 'all');
    const m2 = await backup(repo, img, m1, changeBlocks(img, rng(8), 4));
    const split = m2.disks[0]!.stats.splitChunks;
    const m3 = await backup(repo, img, m2, 'all');
    expect(m3.disks[0]!.stats.newChunks).toBeLessThanOrEqual(split);
    await expectRestores(repo, root, m3, img);
    expect((await repo.readDiskIndex({ vmId: 'vm', id: m3.id }, 'd0')).pieces.size).toBe(0);
    await repo.close();
  });

  it('a grown disk: data written twice in one session into the old short last chunk is kept', async () => {
    const { root, repo } = await fresh();
    const img = makeImage(CHUNK * 3 + 100 * KiB, 13); // last chunk 100 KiB
    crypto.randomFillSync(img, 2 * CHUNK, CHUNK + 100 * KiB);
    const m1 = await backup(repo, img, null, 'all');
    const grown = Buffer.alloc(CHUNK * 4);
    img.copy(grown);
    const w = await openRestorePointWriter(repo, { vmId: 'vm', parent: { vmId: 'vm', id: m1.id } });
    const d = await w.openDisk({ key: 'd0', capacity: grown.length });
    crypto.randomFillSync(grown, 3 * CHUNK + 192 * KiB, 64 * KiB); // beyond the parent's end
    await d.write(3 * CHUNK, grown.subarray(3 * CHUNK, 4 * CHUNK)); // the whole chunk: stored at once
    crypto.randomFillSync(grown, 3 * CHUNK, 64 * KiB); // then one block of it is written again
    await d.write(3 * CHUNK, grown.subarray(3 * CHUNK, 3 * CHUNK + 64 * KiB));
    const m2 = await w.commit();
    await expectRestores(repo, root, m2, grown);
    await expectRestores(repo, root, m1, img);
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  });

  it('the v2 disk index rejects pieces that do not tile their chunk', () => {
    const ids = Buffer.alloc(2 * 32);
    SPLIT_ID.copy(ids, 32);
    const id = 'ab'.repeat(32);
    const good = { capacity: CHUNK + 1000, chunkSize: CHUNK, ids, pieces: new Map([[1, [{ start: 0, len: 600, id, srcOff: 0 }, { start: 600, len: 400, id: HOLE_HEX, srcOff: 0 }]]]) };
    expect(decodeDiskIndex(encodeDiskIndex(good, 2), 'x', 2).pieces.get(1)).toEqual(good.pieces.get(1));
    const gap = { ...good, pieces: new Map([[1, [{ start: 0, len: 600, id, srcOff: 0 }]]]) };
    expect(() => decodeDiskIndex(encodeDiskIndex(gap, 2), 'x', 2)).toThrow(CorruptDataError);
    const unmarked = { ...good, ids: Buffer.alloc(64) };
    expect(() => decodeDiskIndex(encodeDiskIndex(unmarked, 2), 'x', 2)).toThrow(CorruptDataError);
    const missing = { ...good, pieces: new Map() };
    expect(() => decodeDiskIndex(encodeDiskIndex(missing, 2), 'x', 2)).toThrow(/marked split/);
    expect(() => decodeDiskIndex(encodeDiskIndex(good, 2).subarray(0, 100), 'x', 2)).toThrow(CorruptDataError);
    expect(() => encodeDiskIndex(good, 1)).toThrow(/v1/);
  });
});

describe('chunk storage and restore to a file', () => {
  it('incompressible chunks are stored at their size (zstd raw blocks), zero chunks not at all, and restore sparse and bit-exact', async () => {
    const { root, repo } = await fresh();
    const size = 16 * CHUNK;
    const img = Buffer.alloc(size);
    seededBytes(11, 4 * CHUNK).copy(img, 0); // chunks 0-3 random
    img.write('compressible '.repeat(20000), 8 * CHUNK, 'latin1'); // chunk 8 (and part of 9)
    const m = await backup(repo, img, null, 'all');
    const st = m.disks[0]!.stats;
    expect(st.zeroChunks).toBe(size / CHUNK - 5);
    expect(st.newChunks).toBe(5);
    const idx = await repo.readDiskIndex({ vmId: 'vm', id: m.id }, 'd0');
    for (let ci = 0; ci < 4; ci++) {
      const loc = repo.index.get(idx.ids.toString('hex', ci * 32, ci * 32 + 32))!;
      expect(loc.rawLen).toBe(CHUNK);
      expect(loc.storedLen).toBeLessThan(CHUNK + 64); // no expansion beyond frame/block headers
      expect(loc.storedLen).toBeGreaterThan(CHUNK - 1);
    }
    const comp = repo.index.get(idx.ids.toString('hex', 8 * 32, 9 * 32))!;
    expect(comp.storedLen).toBeLessThan(CHUNK / 20);
    const out = path.join(root, 'sparse.img');
    const r = await openDiskReader(repo, { vmId: 'vm', id: m.id }, 'd0');
    await r.restoreToFile(out);
    const data = fs.readFileSync(out);
    expect(sha256(data)).toBe(sha256(img));
    // Holes stay holes: only the 6 data chunks are allocated in the restored file.
    expect(fs.statSync(out).blocks * 512).toBeLessThanOrEqual(5 * CHUNK + 64 * KiB);
    await repo.close();
  });

  it('all-zero 64 KiB blocks inside stored chunks are not written either: the restored file stays sparse there, bit-exact', async () => {
    const { root, repo } = await fresh();
    const size = 8 * CHUNK;
    const img = Buffer.alloc(size);
    // Each chunk holds one 64 KiB block of data at a different position; the rest of it is zeros.
    for (let ci = 0; ci < 8; ci++) seededBytes(20 + ci, 64 * KiB).copy(img, ci * CHUNK + (ci % 4) * 64 * KiB);
    const m = await backup(repo, img, null, 'all');
    expect(m.disks[0]!.stats.newChunks).toBe(8);
    const out = path.join(root, 'blocks.img');
    await (await openDiskReader(repo, { vmId: 'vm', id: m.id }, 'd0')).restoreToFile(out);
    expect(sha256(fs.readFileSync(out))).toBe(sha256(img));
    expect(fs.statSync(out).blocks * 512).toBeLessThanOrEqual(8 * 64 * KiB + 64 * KiB);
    await repo.close();
  });
});

/** Sort and coalesce overlapping writes (a writer takes each area once). */
function mergeWrites(ws: Array<[number, number]>): Array<[number, number]> {
  const s = [...ws].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [o, l] of s) {
    const last = out[out.length - 1];
    if (last && o <= last[0] + last[1]) last[1] = Math.max(last[1], o + l - last[0]);
    else out.push([o, l]);
  }
  return out;
}
