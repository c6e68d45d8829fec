import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptDataError, Repository, openDiskReader, openRestorePointWriter } from '../src/index.ts';
import { makeImage, sha256, tmpDir } from './helpers.ts';

const KiB = 1024;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function repoWith(img: Buffer): Promise<{ root: string; repo: Repository; id: string }> {
  const root = tmpDir();
  dirs.push(root);
  await Repository.init(root, { chunkSize: 256 * KiB, packTargetSize: 2048 * KiB });
  const repo = await Repository.open(root);
  const w = await openRestorePointWriter(repo, { vmId: 'vm' });
  const d = await w.openDisk({ key: 'd0', capacity: img.length });
  await d.write(0, img);
  return { root, repo, id: (await w.commit()).id };
}

describe('write and read paths', () => {
  it('writeFrom fills the writer slots directly (any alignment) and a failing fill aborts cleanly', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 256 * KiB });
    const repo = await Repository.open(root);
    const img = makeImage(3 * 1024 * KiB + 777, 12);
    const src = path.join(root, 'source.img');
    fs.writeFileSync(src, img);
    const fd = fs.openSync(src, 'r');
    const w = await openRestorePointWriter(repo, { vmId: 'vm' });
    const d = await w.openDisk({ key: 'd0', capacity: img.length, fullImageSha256: true });
    const calls: Array<[number, number]> = [];
    for (let off = 0; off < img.length; off += 1_000_001) {
      const len = Math.min(1_000_001, img.length - off);
      await d.writeFrom(off, len, (into, at) => {
        calls.push([at, into.length]);
        expect(fs.readSync(fd, into, 0, into.length, at)).toBe(into.length);
      });
    }
    fs.closeSync(fd);
    // Views never cross a chunk boundary and arrive in order.
    for (const [at, n] of calls) expect(Math.floor(at / (256 * KiB))).toBe(Math.floor((at + n - 1) / (256 * KiB)));
    const m = await w.commit();
    expect(m.disks[0]!.sha256).toBe(sha256(img));
    const r = await openDiskReader(repo, { vmId: 'vm', id: m.id }, 'd0');
    expect(sha256(await r.read(0, r.capacity))).toBe(sha256(img));

    const w2 = await openRestorePointWriter(repo, { vmId: 'vm-bad' });
    const d2 = await w2.openDisk({ key: 'd0', capacity: img.length });
    await expect(
      d2.writeFrom(0, img.length, (into, at) => {
        if (at >= 512 * KiB) throw new Error('source read failed');
        img.copy(into, 0, at, at + into.length);
      }),
    ).rejects.toThrow('source read failed');
    await w2.abort();
    expect((await repo.listRestorePoints('vm-bad')).length).toBe(0);
    // The pool was handed back whole: the next writer works.
    const w3 = await openRestorePointWriter(repo, { vmId: 'vm-3' });
    await (await w3.openDisk({ key: 'd0', capacity: 4096 })).write(0, Buffer.alloc(4096, 7));
    await w3.commit();
    await repo.close();
  });

  it('workerWaitMs counts the time a writer waits for the workers: none for holes, some when it outruns them', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 256 * KiB });
    const repo = await Repository.open(root);
    const w = await openRestorePointWriter(repo, { vmId: 'vm' });
    const zeros = await w.openDisk({ key: 'z', capacity: 64 * 1024 * KiB });
    await zeros.writeFrom(0, zeros.capacity, (into) => void into.fill(0));
    // Zero chunks are holes: their slot is given back at once, no worker is ever waited for.
    expect(zeros.workerWaitMs).toBeLessThan(50);
    // 96 MiB of VM-like data handed over as fast as memory copies: the pool's slots run out and the
    // writer waits for workers hashing and compressing earlier chunks.
    const img = makeImage(96 * 1024 * KiB, 5);
    const d = await w.openDisk({ key: 'd', capacity: img.length });
    await d.writeFrom(0, img.length, (into, at) => void img.copy(into, 0, at, at + into.length));
    expect(d.workerWaitMs).toBeGreaterThan(0);
    await w.commit();
    await repo.close();
  });

  it('sequential read() switches to the parallel pipeline, survives random reads in between, fills a caller buffer and stays bit-exact', async () => {
    const img = makeImage(9 * 1024 * KiB + 5000, 21);
    img.fill(0, 2 * 1024 * KiB, 4 * 1024 * KiB); // a run of zero chunks (holes) between stages
    const { repo, id } = await repoWith(img);
    const r = await openDiskReader(repo, { vmId: 'vm', id }, 'd0');
    const step = 300 * KiB;
    const into = Buffer.alloc(step);
    const parts: Buffer[] = [];
    for (let off = 0; off < img.length; off += step) {
      const n = Math.min(step, img.length - off);
      const got = await r.read(off, n, into);
      expect(got.buffer).toBe(into.buffer); // the caller's buffer, no new allocation
      parts.push(Buffer.from(got));
      if (off === 2 * step) expect(r.pipelined).toBe(true);
      if (off === 3 * step) {
        // A random read in the middle: correct, and the sequential reads carry on afterwards.
        expect(sha256(await r.read(7 * 1024 * KiB + 3, 1000))).toBe(sha256(img.subarray(7 * 1024 * KiB + 3, 7 * 1024 * KiB + 1003)));
      }
    }
    expect(sha256(Buffer.concat(parts))).toBe(sha256(img));
    // Stop half-way: close() releases the pipeline; reads still work.
    await r.read(0, step);
    await r.read(step, step);
    await r.read(2 * step, step);
    expect(r.pipelined).toBe(true);
    r.close();
    expect(r.pipelined).toBe(false);
    expect(sha256(await r.read(3 * step, step))).toBe(sha256(img.subarray(3 * step, 4 * step)));
    await expect(r.read(0, 10, Buffer.alloc(5))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await repo.close();
  });

  it('a damaged chunk fails sequential reads with CorruptDataError', async () => {
    const img = makeImage(4 * 1024 * KiB, 22);
    const { root, repo, id } = await repoWith(img);
    const idx = await repo.readDiskIndex({ vmId: 'vm', id }, 'd0');
    let victim = '';
    let at = 0;
    for (let ci = 0; ci < idx.ids.length / 32; ci++) {
      const hex = idx.ids.toString('hex', ci * 32, ci * 32 + 32);
      if (!/^0+$/.test(hex) && ci > 4) {
        victim = hex;
        at = ci * 256 * KiB;
        break;
      }
    }
    const loc = repo.index.get(victim)!;
    const file = path.join(root, 'packs', loc.pack.slice(0, 2), `${loc.pack}.pack`);
    const data = fs.readFileSync(file);
    data[loc.offset + Math.floor(loc.storedLen / 2)]! ^= 0x20;
    fs.writeFileSync(file, data);
    const r = await openDiskReader(repo, { vmId: 'vm', id }, 'd0');
    const step = 512 * KiB;
    let err: unknown = null;
    try {
      for (let off = 0; off < img.length; off += step) await r.read(off, step);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CorruptDataError);
    expect((err as Error).message).toContain(victim);
    expect(at).toBeGreaterThan(0);
    await repo.close();
  });
  it('in-order reads fired all at once return the exact bytes (what nbdcopy sends: many requests in flight from offset 0 on)', async () => {
    const img = makeImage(16 * 1024 * KiB, 21);
    const { repo, id } = await repoWith(img);
    const step = 256 * KiB;
    for (const size of [step, 2 * step]) {
      const r = await openDiskReader(repo, { vmId: 'vm', id }, 'd0');
      const offsets = Array.from({ length: img.length / size }, (_, i) => i * size);
      const got = await Promise.all(offsets.map((o) => r.read(o, size)));
      const bad = offsets.filter((o, i) => !got[i]!.equals(img.subarray(o, o + size)));
      expect(bad, `reads of ${size} bytes that came back wrong`).toEqual([]);
      r.close();
    }
    // And one at a time, in order (the pipeline's own case), still exact.
    const r = await openDiskReader(repo, { vmId: 'vm', id }, 'd0');
    for (let off = 0; off < img.length; off += step) expect((await r.read(off, step)).equals(img.subarray(off, off + step))).toBe(true);
    r.close();
  });
});
