import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { KnownIds } from '../src/chunk-codec.mjs';
import { Repository, openDiskReader, openRestorePointWriter } from '../src/index.ts';
import { makeImage, mutate, sha256, tmpDir } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('the workers’ known-id table', () => {
  it('finds every id of a parent list with repeats and holes, and nothing else, even ids that share their first bytes', () => {
    const unique = Array.from({ length: 5000 }, () => crypto.randomBytes(32));
    const hole = Buffer.alloc(32);
    // A disk index: each id repeated a few times, thousands of holes (all hash to one bucket).
    const list = Buffer.concat([...unique, ...unique.slice(0, 2000), ...Array.from({ length: 3000 }, () => hole)]);
    const known = new KnownIds(list);
    for (const id of unique) expect(known.has(id.toString('hex'))).toBe(true);
    expect(known.has(hole.toString('hex'))).toBe(true);
    for (let i = 0; i < 2000; i++) expect(known.has(crypto.randomBytes(32).toString('hex'))).toBe(false);
    // Same first four bytes (same bucket), different id.
    const twin = Buffer.from(unique[7]!);
    twin[31] = twin[31]! ^ 1;
    expect(known.has(twin.toString('hex'))).toBe(false);
    expect(known.has('abc')).toBe(false);
    const later = crypto.randomBytes(32).toString('hex');
    expect(known.has(later)).toBe(false);
    known.add(later);
    expect(known.has(later)).toBe(true);
    expect(new KnownIds(Buffer.alloc(0)).has(unique[0]!.toString('hex'))).toBe(false);
  });
});

describe('store jobs go to the workers in batches', () => {
  it('scattered 64 KiB changes (one pending chunk each) travel several jobs per message and restore bit-exact', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 256 * 1024 });
    const repo = await Repository.open(root);
    const size = 64 * 1024 * 1024;
    const img = makeImage(size, 11);
    const w1 = await openRestorePointWriter(repo, { vmId: 'vm' });
    const d1 = await w1.openDisk({ key: 'd0', capacity: size });
    await d1.write(0, img);
    const m1 = await w1.commit();

    const changes = mutate(img, 300, 5).sort((a, b) => a[0] - b[0]);
    const w2 = await openRestorePointWriter(repo, { vmId: 'vm', parent: { vmId: 'vm', id: m1.id } });
    let messages = 0;
    let jobs = 0;
    for (const worker of (w2.pool as unknown as { workers: Array<{ postMessage: (m: { op: string; jobs?: unknown[] }) => void }> }).workers) {
      const post = worker.postMessage.bind(worker);
      worker.postMessage = (m) => {
        if (m.op === 'batch' || m.op === 'store') {
          messages++;
          jobs += m.jobs?.length ?? 1;
        }
        post(m);
      };
    }
    const d2 = await w2.openDisk({ key: 'd0', capacity: size });
    for (const [o, l] of changes) await d2.writeFrom(o, l, (into, at) => void img.copy(into, 0, at, at + into.length));
    const m2 = await w2.commit();
    expect(m2.stats.newChunks).toBeGreaterThan(150);
    expect(jobs).toBeGreaterThan(150);
    // One message per job was the old behaviour (slots coming back one at a time); now several travel together.
    expect(jobs / messages).toBeGreaterThanOrEqual(2);
    const r = await openDiskReader(repo, { vmId: 'vm', id: m2.id }, 'd0');
    expect(sha256(await r.read(0, size))).toBe(sha256(img));
  });

  it('a slow asynchronous source never leaves queued jobs waiting for the next write', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 256 * 1024 });
    const repo = await Repository.open(root);
    const size = 8 * 1024 * 1024;
    const img = makeImage(size, 12);
    const w = await openRestorePointWriter(repo, { vmId: 'vm' });
    const d = await w.openDisk({ key: 'd0', capacity: size });
    for (let off = 0; off < size; off += 1024 * 1024) {
      await d.writeFrom(off, 1024 * 1024, async (into, at) => {
        await new Promise((res) => setTimeout(res, 2));
        img.copy(into, 0, at, at + into.length);
      });
      // Between writes the caller waits on something else: the jobs queued so far get done meanwhile
      // (polled for up to 10 s: this checks that nothing waits for the next write, not how fast).
      for (let i = 0; i < 1000 && w.pool.freeSlots !== w.pool.slots; i++) await new Promise((res) => setTimeout(res, 10));
      expect(w.pool.freeSlots).toBe(w.pool.slots);
    }
    const m = await w.commit();
    const r = await openDiskReader(repo, { vmId: 'vm', id: m.id }, 'd0');
    expect(sha256(await r.read(0, size))).toBe(sha256(img));
  });
});
