/**
 * The ONE conformance suite every storage backend must pass (local FS, SFTP, ...).
 * Call `backendConformance(name, setup)` from a backend's test file; `setup`
 * returns a fresh, empty backend root and a cleanup function.
 */
import { describe, expect, it } from 'vitest';
import { CorruptDataError, NotFoundError, Repository, openDiskReader, openRestorePointWriter, verify } from '../src/index.ts';
import type { Backend } from '../src/index.ts';
import { makeImage, mutate, sha256 } from './helpers.ts';

export function backendConformance(name: string, setup: () => Promise<{ backend: Backend; cleanup: () => Promise<void> }>): void {
  describe(`backend conformance: ${name}`, () => {
    it('writeFileAtomic then readFile returns the bytes; overwrite replaces; missing is NotFoundError', async () => {
      const { backend: b, cleanup } = await setup();
      try {
        await b.writeFileAtomic('a/b/file', Buffer.from('one'));
        expect((await b.readFile('a/b/file')).toString()).toBe('one');
        await b.writeFileAtomic('a/b/file', Buffer.from('two!'));
        expect((await b.readFile('a/b/file')).toString()).toBe('two!');
        expect((await b.stat('a/b/file'))?.size).toBe(4);
        await expect(b.readFile('a/b/missing')).rejects.toBeInstanceOf(NotFoundError);
        expect(await b.stat('a/b/missing')).toBeNull();
        expect((await b.list('a/b')).filter((n) => !n.includes('.tmp-'))).toEqual(['file']);
        expect(await b.list('a/b')).toEqual(['file']); // no tmp leftovers
      } finally {
        await cleanup();
      }
    });

    it('readRange returns exact ranges, reuses the given buffer and reports short reads as corruption', async () => {
      const { backend: b, cleanup } = await setup();
      try {
        const data = Buffer.alloc(300_000);
        for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
        await b.writeFileAtomic('r', data);
        expect((await b.readRange('r', 12_345, 100_000)).equals(data.subarray(12_345, 112_345))).toBe(true);
        const into = Buffer.alloc(1000);
        const got = await b.readRange('r', 299_000, 1000, into);
        expect(got.equals(data.subarray(299_000))).toBe(true);
        await expect(b.readRange('r', 299_500, 1000)).rejects.toBeInstanceOf(CorruptDataError);
        await expect(b.readRange('nope', 0, 1)).rejects.toBeInstanceOf(NotFoundError);
      } finally {
        await cleanup();
      }
    });

    it('createExclusive succeeds once and never overwrites', async () => {
      const { backend: b, cleanup } = await setup();
      try {
        expect(await b.createExclusive('locks/x', Buffer.from('first'))).toBe(true);
        expect(await b.createExclusive('locks/x', Buffer.from('second'))).toBe(false);
        expect((await b.readFile('locks/x')).toString()).toBe('first');
        expect(await b.list('locks')).toEqual(['x']);
      } finally {
        await cleanup();
      }
    });

    it('openWriter: invisible until commit, exact bytes after; abort leaves nothing', async () => {
      const { backend: b, cleanup } = await setup();
      try {
        const w = await b.openWriter('packs/aa/p1');
        const parts = [Buffer.alloc(5000, 1), Buffer.alloc(3 * 1024 * 1024 + 17, 2), Buffer.from('tail')];
        for (const p of parts) await w.write(p);
        expect(w.size).toBe(parts.reduce((a, p) => a + p.length, 0));
        expect(await b.stat('packs/aa/p1')).toBeNull();
        await w.commit();
        expect((await b.readFile('packs/aa/p1')).equals(Buffer.concat(parts))).toBe(true);
        // Padding: zero bytes before the data, counted in the size.
        const w3 = await b.openWriter('packs/aa/p3');
        await w3.write(Buffer.alloc(10, 4));
        await w3.write(Buffer.alloc(4097, 5), 6);
        await w3.write(Buffer.from('end'), 7);
        expect(w3.size).toBe(10 + 6 + 4097 + 7 + 3);
        await w3.commit();
        expect((await b.readFile('packs/aa/p3')).equals(Buffer.concat([Buffer.alloc(10, 4), Buffer.alloc(6), Buffer.alloc(4097, 5), Buffer.alloc(7), Buffer.from('end')]))).toBe(true);
        const w2 = await b.openWriter('packs/aa/p2');
        await w2.write(Buffer.alloc(100, 3));
        await w2.abort();
        expect(await b.list('packs/aa')).toEqual(['p1', 'p3']);
      } finally {
        await cleanup();
      }
    });

    it('list, remove and removeDir are idempotent', async () => {
      const { backend: b, cleanup } = await setup();
      try {
        expect(await b.list('no/such/dir')).toEqual([]);
        await b.writeFileAtomic('d/x', Buffer.from('1'));
        await b.writeFileAtomic('d/y', Buffer.from('2'));
        expect((await b.list('d')).sort()).toEqual(['x', 'y']);
        await b.removeDir('d'); // not empty: no-op
        await b.remove('d/x');
        await b.remove('d/x');
        await b.remove('d/y');
        await b.removeDir('d');
        await b.removeDir('d');
        expect(await b.list('d')).toEqual([]);
        await b.writeFileAtomic('d/z', Buffer.from('3')); // the directory can be recreated
        expect(await b.list('d')).toEqual(['z']);
      } finally {
        await cleanup();
      }
    });

    it('holds a complete repository: full + incremental round trip, bit-exact, verify clean', async () => {
      const { backend: b, cleanup } = await setup();
      try {
        await Repository.init(b, { chunkSize: 64 * 1024, packTargetSize: 1024 * 1024 });
        const repo = await Repository.open(b);
        const img = makeImage(3 * 1024 * 1024 + 333, 21);
        const w = await openRestorePointWriter(repo, { vmId: 'vm-c' });
        await (await w.openDisk({ key: 'd0', capacity: img.length })).write(0, img);
        const m1 = await w.commit();
        const changes = mutate(img, 5, 2, 10_000, 512);
        const w2 = await openRestorePointWriter(repo, { vmId: 'vm-c', parent: { vmId: 'vm-c', id: m1.id } });
        const d2 = await w2.openDisk({ key: 'd0', capacity: img.length });
        for (const [o, l] of changes) await d2.write(o, img.subarray(o, o + l));
        const m2 = await w2.commit();
        const r = await openDiskReader(repo, { vmId: 'vm-c', id: m2.id }, 'd0');
        expect(sha256(await r.read(0, r.capacity))).toBe(sha256(img));
        // The restore pipeline over this backend: sequential reads and forEachExtent.
        const parts: Buffer[] = [];
        for (let off = 0; off < r.capacity; off += 256 * 1024) parts.push(Buffer.from(await r.read(off, Math.min(256 * 1024, r.capacity - off))));
        expect(sha256(Buffer.concat(parts))).toBe(sha256(img));
        const image = Buffer.alloc(r.capacity);
        await r.forEachExtent((off, data) => {
          data.copy(image, off);
        });
        expect(sha256(image)).toBe(sha256(img));
        expect((await verify(repo)).ok).toBe(true);
      } finally {
        await cleanup();
      }
    });
  });
}
