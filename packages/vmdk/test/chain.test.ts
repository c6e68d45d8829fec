import { mkdir, open, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  VmdkChainError,
  VmdkCorruptError,
  VmdkTruncatedError,
  buildDeltaLink,
  descriptorForFlat,
  localFiles,
  openVmdk,
  openVmdkChain,
  parseDescriptor,
  seSparseLayout,
  writeDeltaLink,
} from '../src/index.ts';
import type { ByteRange, DeltaExtent, DeltaFormat, DeltaOp, FileOpener, VmdkError } from '../src/index.ts';
import { prng, qemuTmpDir, qemuToRaw, sha256 } from './helpers.ts';

const MiB = 1024 * 1024;

/** Seeded integers. */
function rng(seed: number): { int: (n: number) => number; bytes: (n: number) => Buffer } {
  const bytes = prng(seed);
  return { int: (n) => bytes(4).readUInt32LE(0) % n, bytes };
}

/**
 * The independent model: the disk as a plain buffer plus "holds data" per byte,
 * changed by applying the same operations in order.
 */
class Truth {
  readonly bytes: Buffer;
  readonly data: Uint8Array;
  constructor(readonly capacity: number) {
    this.bytes = Buffer.alloc(capacity);
    this.data = new Uint8Array(capacity).fill(1); // a vmfs flat base reports everything allocated
  }
  /** `grain`: a delta holds whole grains, so a partial write makes the whole grain data (copied from the parent). */
  apply(op: DeltaOp, grain: number): void {
    if ('data' in op) {
      op.data.copy(this.bytes, op.offset);
      const end = Math.min(this.capacity, Math.ceil((op.offset + op.data.length) / grain) * grain);
      this.data.fill(1, Math.floor(op.offset / grain) * grain, end);
    } else {
      this.bytes.fill(0, op.offset, op.offset + op.length);
      this.data.fill(0, op.offset, op.offset + op.length);
    }
  }
  extents(): ByteRange[] {
    const out: ByteRange[] = [];
    let start = -1;
    for (let i = 0; i <= this.capacity; i++) {
      const on = i < this.capacity && this.data[i] === 1;
      if (on && start < 0) start = i;
      if (!on && start >= 0) {
        out.push({ offset: start, length: i - start });
        start = -1;
      }
    }
    return out;
  }
}

interface Chain {
  dir: string;
  top: string;
  truth: Truth;
  descriptors: string[];
}

async function makeBase(dir: string, name: string, capacity: number, seed: number): Promise<{ truth: Truth; cid: string; file: string }> {
  const r = rng(seed);
  const truth = new Truth(capacity);
  // Data in a few places, the rest a hole (reads as zeros).
  for (let i = 0; i < 6; i++) {
    const len = (1 + r.int(256)) * 512;
    const off = r.int(Math.floor((capacity - len) / 512)) * 512;
    r.bytes(len).copy(truth.bytes, off);
  }
  truth.bytes.copy(truth.bytes, capacity - 1024, 0, 1024); // the last sectors too
  const flat = await open(join(dir, `${name}-flat.vmdk`), 'w');
  await flat.write(truth.bytes, 0, capacity, 0);
  await flat.close();
  const cid = (0x10000000 + seed).toString(16);
  await writeFile(join(dir, `${name}.vmdk`), descriptorForFlat(capacity, `${name}-flat.vmdk`, { createType: 'vmfs', cid, thinProvisioned: true }));
  return { truth, cid, file: `${name}.vmdk` };
}

function randomOps(format: DeltaFormat, capacity: number, r: ReturnType<typeof rng>, link: number): DeltaOp[] {
  const grain = format === 'seSparse' ? 4096 : 512;
  const ops: DeltaOp[] = [];
  const sectors = capacity / 512;
  for (let i = 0; i < 14; i++) {
    const kind = r.int(10);
    if (format === 'seSparse' && kind >= 7) {
      const grains = Math.floor(capacity / grain);
      const n = 1 + r.int(24);
      const g = r.int(grains - n);
      ops.push(kind === 9 ? { offset: g * grain, length: n * grain, unmap: true } : { offset: g * grain, length: n * grain, zero: true });
    } else {
      const len = (1 + r.int(160)) * 512;
      const off = r.int(sectors - len / 512) * 512;
      ops.push({ offset: off, data: r.bytes(len) });
    }
  }
  // Overlaps with older links, across a grain table boundary, and the disk's last (partial) grain.
  const span = format === 'seSparse' ? 16 * MiB : 2 * MiB;
  if (capacity > span + 8192) ops.push({ offset: span - 4096, data: r.bytes(8192 + link * 512) });
  ops.push({ offset: capacity - 1536, data: r.bytes(1536) });
  ops.push({ offset: 0, data: r.bytes(512 * (1 + link)) });
  return ops;
}

async function makeChain(dir: string, format: DeltaFormat, capacity: number, links: number, seed: number): Promise<Chain> {
  const base = await makeBase(dir, 'disk', capacity, seed);
  const truth = base.truth;
  const descriptors = [join(dir, base.file)];
  let parentFile = base.file;
  let parentCid = base.cid;
  const r = rng(seed * 7919);
  for (let i = 1; i <= links; i++) {
    const ops = randomOps(format, capacity, r, i);
    const parent = await openVmdk(join(dir, parentFile));
    let link;
    try {
      link = await buildDeltaLink({ format, capacity, name: `disk-00000${i}`, parentFileName: parentFile, parentCid, ops, parent });
    } finally {
      await parent.close();
    }
    await writeDeltaLink(dir, link);
    for (const op of ops) truth.apply(op, format === 'seSparse' ? 4096 : 512);
    parentFile = link.descriptorFileName;
    parentCid = link.cid;
    descriptors.push(join(dir, link.descriptorFileName));
  }
  return { dir, top: join(dir, parentFile), truth, descriptors };
}

async function collect(it: AsyncIterable<ByteRange>): Promise<ByteRange[]> {
  const out: ByteRange[] = [];
  for await (const r of it) out.push({ offset: r.offset, length: r.length });
  return out;
}

async function errorOf(p: Promise<unknown>): Promise<VmdkError> {
  try {
    await p;
  } catch (e) {
    return e as VmdkError;
  }
  throw new Error('expected an error');
}

/** Open the chain and read all of it (and its map). */
async function readAll(path: string): Promise<void> {
  const img = await openVmdk(path);
  try {
    await img.read(0, img.capacity);
    await collect(img.allocatedExtents());
  } finally {
    await img.close();
  }
}

describe('snapshot chains (vmfsSparse / seSparse) read composed, checked against a model and qemu-img', () => {
  const tmp = qemuTmpDir();
  let n = 0;
  const freshDir = async (): Promise<string> => {
    const d = join(tmp.dir, `c${n++}`);
    await mkdir(d);
    return d;
  };

  const cases: [DeltaFormat, number, number, number][] = [
    ['vmfsSparse', 2, 3 * MiB + 512, 11],
    ['vmfsSparse', 4, 5 * MiB + 3 * 512, 12],
    ['seSparse', 2, 6 * MiB, 13],
    ['seSparse', 4, 17 * MiB + 3 * 1024, 14],
  ];
  for (const [format, links, capacity, seed] of cases) {
    it(`${format}: ${links} links over a vmfs base, ${capacity} bytes`, async () => {
      const c = await makeChain(await freshDir(), format, capacity, links, seed);
      const img = await openVmdkChain(c.top);
      try {
        expect(img.capacity).toBe(capacity);
        expect(img.format).toBe(format);
        expect(img.links.map((l) => l.descriptorPath)).toEqual(c.descriptors.slice(1).reverse());
        const whole = await img.read(0, capacity);
        expect(sha256(whole)).toBe(sha256(c.truth.bytes));
        const r = rng(seed + 100);
        for (let i = 0; i < 60; i++) {
          const len = 1 + r.int(70_000);
          const off = r.int(capacity - len + 1);
          const got = await img.read(off, len);
          if (!got.equals(c.truth.bytes.subarray(off, off + len))) throw new Error(`read ${off}+${len} differs from the model`);
        }
        expect(await collect(img.allocatedExtents())).toEqual(c.truth.extents());
      } finally {
        await img.close();
      }
      // qemu-img composes the same chain on its own; it must agree byte for byte.
      const raw = await qemuToRaw(c.top, c.dir);
      expect(raw.length).toBe(capacity);
      expect(sha256(raw)).toBe(sha256(c.truth.bytes));
    });
  }

  it('seSparse zero and unmapped grains hide parent data; vmfsSparse zero writes are data', async () => {
    const dir = await freshDir();
    const capacity = 2 * MiB;
    const base = await makeBase(dir, 'z', capacity, 5);
    const ones = Buffer.alloc(64 * 1024, 0xab);
    await writeFile(join(dir, 'z-flat.vmdk'), Buffer.concat([ones, Buffer.alloc(capacity - ones.length)]));
    const ops: DeltaOp[] = [
      { offset: 4096, length: 8192, zero: true },
      { offset: 16384, length: 4096, unmap: true },
      { offset: 40960, data: Buffer.alloc(100, 1) },
    ];
    const parent = await openVmdk(join(dir, base.file));
    const link = await buildDeltaLink({ format: 'seSparse', capacity, name: 'z-000001', parentFileName: base.file, parentCid: base.cid, ops, parent });
    await parent.close();
    await writeDeltaLink(dir, link);
    const expected = Buffer.concat([ones, Buffer.alloc(capacity - ones.length)]);
    expected.fill(0, 4096, 4096 + 8192);
    expected.fill(0, 16384, 16384 + 4096);
    expected.fill(1, 40960, 41060);
    const img = await openVmdk(join(dir, 'z-000001.vmdk'));
    try {
      expect((await img.read(0, capacity)).equals(expected)).toBe(true);
      expect(await collect(img.allocatedExtents())).toEqual([
        { offset: 0, length: 4096 },
        { offset: 12288, length: 4096 },
        { offset: 20480, length: capacity - 20480 },
      ]);
    } finally {
      await img.close();
    }
    expect((await qemuToRaw(join(dir, 'z-000001.vmdk'), dir)).equals(expected)).toBe(true);
  });

  it('lays the files out as ESXi does (header fields, table places, grain sizes, CIDs)', async () => {
    const dir = await freshDir();
    const capacity = 3 * MiB;
    const base = await makeBase(dir, 'l', capacity, 6);
    const ops: DeltaOp[] = [{ offset: 2 * MiB + 512, data: Buffer.alloc(512, 7) }];
    const cow = await buildDeltaLink({ format: 'vmfsSparse', capacity, name: 'l-000001', parentFileName: base.file, parentCid: base.cid, ops, cid: 'aabbccdd' });
    const d = parseDescriptor(cow.descriptor);
    expect(d).toMatchObject({ version: 1, cid: 'aabbccdd', parentCid: base.cid, createType: 'vmfsSparse' });
    expect(d.header.get('parentFileNameHint')).toBe('l.vmdk');
    expect(d.extents).toEqual([{ access: 'RW', sectors: capacity / 512, type: 'VMFSSPARSE', fileName: 'l-000001-delta.vmdk' }]);
    const h = cow.chunks[0]!.data;
    expect(h.toString('latin1', 0, 4)).toBe('COWD');
    expect([1, 2, 3, 4, 5, 6].map((i) => h.readUInt32LE(i * 4))).toEqual([1, 3, capacity / 512, 1, 4, 2]);
    expect(h.readUInt32LE(28) * 512).toBe(cow.size); // freeSector = end of file
    expect(h.length).toBe(2048);

    const se = await buildDeltaLink({ format: 'seSparse', capacity, name: 'l-000002', parentFileName: cow.descriptorFileName, parentCid: cow.cid, ops: [{ offset: 0, data: Buffer.alloc(4096, 1) }] });
    expect(se.descriptor).toMatch(/createType="seSparse"\nparentFileNameHint="l-000001.vmdk"\n/);
    expect(se.descriptor).toContain(`RW ${capacity / 512} SESPARSE "l-000002-sesparse.vmdk"`);
    expect(se.descriptor).toContain('ddb.grain = "8"');
    const c = se.chunks[0]!.data;
    const f = (i: number): bigint => c.readBigUInt64LE(i * 8);
    expect([f(0), f(1), f(3), f(4), f(5)]).toEqual([0xcafebaben, 0x200000001n, 8n, 64n, 0n]);
    // The 100 MiB example ESXi logs in hostd.log when it creates a seSparse snapshot.
    expect(seSparseLayout(204800)).toMatchObject({ gdOffset: 4096, gdSectors: 2048, gtOffset: 6144, gtSectors: 2048, bitmapOffset: 8192, bitmapSectors: 2048, backmapOffset: 10240, backmapSectors: 2048, grainsOffset: 12288, grainsSectors: 204800 });
    expect(Number(f(24)) * 512 + 4096).toBe(se.size);
  });

  it('a read touches each link\'s grain tables for the range, not every grain', async () => {
    const c = await makeChain(await freshDir(), 'vmfsSparse', 5 * MiB, 4, 21);
    const reads = new Map<string, number>();
    const counting: FileOpener = {
      async open(path) {
        const f = await localFiles.open(path);
        return { size: f.size, close: () => f.close(), read: (pos, len, into, at) => (reads.set(path, (reads.get(path) ?? 0) + 1), f.read(pos, len, into, at)) };
      },
    };
    const img = await openVmdkChain(c.top, { files: counting });
    try {
      reads.clear();
      const got = await img.read(3 * MiB + 1000, 64 * 1024);
      expect(got.equals(c.truth.bytes.subarray(3 * MiB + 1000, 3 * MiB + 1000 + 64 * 1024))).toBe(true);
      const perLink = img.links.map((l) => reads.get(l.dataPath) ?? 0);
      // One grain table per link (the range lies in one 2 MiB table) plus its data runs.
      // The reader's links carry their extents (not part of the public ChainLinkInfo).
      const links = img.links as unknown as { extent: DeltaExtent }[];
      for (const [i, l] of links.entries()) {
        const runs = (await l.extent.runs(3 * MiB + 1000, 64 * 1024)).filter((r) => r.state === 'allocated').length;
        expect(perLink[i]).toBeLessThanOrEqual(1 + runs);
      }
      const first = [...reads.values()].reduce((a, b) => a + b, 0);
      reads.clear();
      await img.read(3 * MiB + 1000, 64 * 1024);
      const again = [...reads.values()].reduce((a, b) => a + b, 0);
      expect(again).toBeLessThan(first); // the grain tables are cached: only data is read again
    } finally {
      await img.close();
    }
  });

  it('a parentCID that is not the parent\'s CID, a missing parent and mixed formats are chain errors naming both files', async () => {
    const dir = await freshDir();
    const capacity = MiB;
    const base = await makeBase(dir, 'e', capacity, 8);
    const bad = await buildDeltaLink({ format: 'vmfsSparse', capacity, name: 'e-000001', parentFileName: base.file, parentCid: '0badc1d0', ops: [] });
    await writeDeltaLink(dir, bad);
    let err = await errorOf(readAll(join(dir, 'e-000001.vmdk')));
    expect(err).toBeInstanceOf(VmdkChainError);
    expect(err.code).toBe('CHAIN');
    expect(err.message).toMatch(/parentCID 0badc1d0 does not match the parent's CID 10000008/);
    expect(err.message).toContain(join(dir, 'e-000001.vmdk'));
    expect(err.message).toContain(join(dir, 'e.vmdk'));

    const good = await buildDeltaLink({ format: 'vmfsSparse', capacity, name: 'e-000002', parentFileName: base.file, parentCid: base.cid, ops: [{ offset: 0, data: Buffer.alloc(512, 1) }] });
    await writeDeltaLink(dir, good);
    const mixed = await buildDeltaLink({ format: 'seSparse', capacity, name: 'e-000003', parentFileName: good.descriptorFileName, parentCid: good.cid, ops: [] });
    await writeDeltaLink(dir, mixed);
    err = await errorOf(readAll(join(dir, 'e-000003.vmdk')));
    expect(err).toBeInstanceOf(VmdkChainError);
    expect(err.message).toMatch(/mixes seSparse and vmfsSparse/);
    expect(err.message).toContain('e-000003.vmdk');
    expect(err.message).toContain('e-000002.vmdk');

    await rm(join(dir, 'e.vmdk'));
    err = await errorOf(readAll(join(dir, 'e-000002.vmdk')));
    expect(err).toBeInstanceOf(VmdkChainError);
    expect(err.message).toMatch(/parent disk not found/);
    expect(err.message).toContain(join(dir, 'e-000002.vmdk'));
    expect(err.message).toContain(join(dir, 'e.vmdk'));
  });

  for (const format of ['vmfsSparse', 'seSparse'] as const) {
    it(`${format}: a truncated grain table and a grain past the end of the file are clear errors`, async () => {
      const dir = await freshDir();
      const capacity = 2 * MiB;
      const base = await makeBase(dir, 't', capacity, 9);
      const ops: DeltaOp[] = [{ offset: 8192, data: Buffer.alloc(8192, 3) }];
      const link = await buildDeltaLink({ format, capacity, name: 't-000001', parentFileName: base.file, parentCid: base.cid, ops });
      const { dataPath, descriptorPath } = await writeDeltaLink(dir, link);
      const gtChunk = link.chunks[format === 'seSparse' ? 3 : 2]!;

      // A grain table entry pointing far past the end of the file.
      const fh = await open(dataPath, 'r+');
      const entry = Buffer.alloc(format === 'seSparse' ? 8 : 4);
      if (format === 'seSparse') entry.writeBigUInt64LE(0x3000000000000000n | (100n << 48n)); // grain 100: inside the grain area, past the file
      else entry.writeUInt32LE(0x00ffffff);
      const at = gtChunk.position + (8192 / (format === 'seSparse' ? 4096 : 512)) * entry.length;
      await fh.write(entry, 0, entry.length, at);
      await fh.close();
      let err = await errorOf(readAll(descriptorPath));
      expect(err).toBeInstanceOf(VmdkCorruptError);
      expect(err.message).toMatch(/grain table 0 entry \d+ points to .* past the end of the file/);
      expect(err.message).toContain(dataPath);

      // The file cut inside the grain table.
      await truncate(dataPath, gtChunk.position + 1000);
      err = await errorOf(readAll(descriptorPath));
      expect(err).toBeInstanceOf(VmdkTruncatedError);
      expect(err.message).toMatch(/grain table 0 .*truncated/);
    });
  }
});
