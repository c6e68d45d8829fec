import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { VmdkRangeError, openVmdk, parseSparseHeader, rawChunks, streamOptimizedChunks, writeRaw, writeStreamOptimized } from '../src/index.ts';
import type { DiskSource } from '../src/index.ts';
import { SyntheticDisk, prng, qemuImg, qemuToRaw, sha256, testdata, qemuTmpDir } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const GRAIN = 64 * KiB;

function textLike(n: number, seed: number): Buffer {
  const words = ['backup', 'restore', 'vSphere', 'grain', 'table', 'lorem', 'ipsum', 'datastore', '\n', 'snapshot'];
  const rnd = prng(seed);
  const parts: string[] = [];
  let len = 0;
  const r = rnd(n);
  for (let i = 0; len < n; i++) {
    const w = words[(r[i % n] ?? 0) % words.length] ?? '';
    parts.push(w, ' ');
    len += w.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

/** A 10 MiB + 512 disk mixing zero, text-like and random areas, unaligned to grains and sectors. */
function mixedDisk(): SyntheticDisk {
  const cap = 10 * MiB + 512;
  const rnd = prng(42);
  return new SyntheticDisk(cap)
    .put(0, rnd(4096)) // boot area
    .put(3 * GRAIN + 17, rnd(100_000)) // random, spans grains, unaligned
    .put(2 * MiB + 1234, textLike(700 * KiB, 1)) // compressible
    .put(5 * MiB - 3, Buffer.from([1, 2, 3, 4, 5, 6])) // straddles a grain boundary
    .put(7 * MiB, Buffer.alloc(GRAIN, 0)) // explicit zeros: must be skipped
    .put(cap - 512, rnd(512)); // the partial last grain
}

async function writeToFile(source: DiskSource, path: string, opts?: Parameters<typeof writeStreamOptimized>[1]): Promise<void> {
  await pipeline(writeStreamOptimized(source, opts), createWriteStream(path));
}

async function readWithOurReader(path: string): Promise<Buffer> {
  const img = await openVmdk(path);
  try {
    return await img.read(0, img.capacity);
  } finally {
    await img.close();
  }
}

function expectQemuCheckClean(path: string): void {
  const r = qemuImg(['check', path]);
  expect(r.status, `qemu-img check ${path}: ${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).toContain('No errors were found');
  const info = JSON.parse(qemuImg(['info', '--output=json', path]).stdout) as { format: string; 'format-specific'?: { data?: { 'create-type'?: string } } };
  expect(info.format).toBe('vmdk');
  expect(info['format-specific']?.data?.['create-type']).toBe('streamOptimized');
}

describe('streamOptimized writer', () => {
  const tmp = qemuTmpDir();

  const cases: [string, () => SyntheticDisk][] = [
    ['mixed zero/text/random disk of 10 MiB + 512', mixedDisk],
    ['all-zero disk of 3 MiB', () => new SyntheticDisk(3 * MiB)],
    ['incompressible random disk of 2 MiB + 4 KiB', () => new SyntheticDisk(2 * MiB + 4 * KiB).put(0, prng(9)(2 * MiB + 4 * KiB))],
    ['single sector disk', () => new SyntheticDisk(512).put(0, Buffer.from('hello sector'))],
    [
      '100 MiB disk with data in grain tables 0 and 2 only (table 1 absent)',
      () => new SyntheticDisk(100 * MiB).put(5, textLike(300 * KiB, 3)).put(70 * MiB + 999, prng(5)(200 * KiB)).put(100 * MiB - 1, Buffer.from([0xff])),
    ],
  ];

  it.each(cases)('%s: qemu-img check is clean, qemu-img convert and our reader give back the source bytes', async (name, make) => {
    const disk = make();
    const expected = disk.bytes();
    const file = join(tmp.dir, `${name.replace(/\W+/g, '_')}.vmdk`);
    await writeToFile(disk, file, { adapterType: 'pvscsi' });
    expectQemuCheckClean(file);
    expect(sha256(await qemuToRaw(file, tmp.dir))).toBe(sha256(expected));
    expect(sha256(await readWithOurReader(file))).toBe(sha256(expected));
  });

  it('skips all-zero grains: an empty disk is just header, descriptor, directory, footer and EOS', async () => {
    const file = join(tmp.dir, 'empty.vmdk');
    await writeToFile(new SyntheticDisk(64 * MiB), file);
    const bytes = await readFile(file);
    expect(bytes.length).toBeLessThan(80 * KiB);
    const img = await openVmdk(file);
    const extents = [];
    for await (const r of img.allocatedExtents()) extents.push(r);
    await img.close();
    expect(extents).toEqual([]);
  });

  it('writes the layout VMware specifies: GD_AT_END header, footer with the real GD, markers, zlib grains', async () => {
    const file = join(tmp.dir, 'layout.vmdk');
    const disk = mixedDisk();
    await writeToFile(disk, file, { uuid: '6000c29a-dc4a-120f-2acb-5c027ecf6d0e', fileName: 'web01.vmdk' });
    const bytes = await readFile(file);
    expect(bytes.length % 512).toBe(0);
    const header = parseSparseHeader(bytes.subarray(0, 512));
    expect(header).toMatchObject({ version: 3, flags: 0x30001, grainSize: 128, numGTEsPerGT: 512, gdOffset: 'end', compressAlgorithm: 1, descriptorOffset: 1 });
    expect(header.capacity).toBe(Math.ceil(disk.capacity / 512));
    expect(header.overHead % 128).toBe(0);
    // footer marker, footer, EOS
    const end = bytes.length;
    expect(bytes.readUInt32LE(end - 1536 + 12)).toBe(3);
    const footer = parseSparseHeader(bytes.subarray(end - 1024, end - 512));
    expect(footer.gdOffset).toBeTypeOf('number');
    expect(bytes.subarray(end - 512).equals(Buffer.alloc(512))).toBe(true);
    // GD marker right before the GD
    const gd = footer.gdOffset as number;
    expect(bytes.readUInt32LE((gd - 1) * 512 + 12)).toBe(2);
    // first grain: marker with LBA 0 and a zlib stream
    const first = header.overHead * 512;
    expect(bytes.readBigUInt64LE(first)).toBe(0n);
    expect(bytes[first + 12]).toBe(0x78);
    const desc = bytes.subarray(512, 512 * (1 + header.descriptorSize)).toString('utf8');
    expect(desc).toContain('createType="streamOptimized"');
    expect(desc).toContain(`RW ${header.capacity} SPARSE "web01.vmdk"`);
    expect(desc).toContain('ddb.uuid = "60 00 c2 9a dc 4a 12 0f-2a cb 5c 02 7e cf 6d 0e"');
    expect(desc).toContain('ddb.adapterType = "lsilogic"');
  });

  it('reads only the allocated extents the source reports, in bounded batches', async () => {
    const disk = new SyntheticDisk(1024 * MiB).put(10 * MiB + 5, prng(11)(3 * MiB)).put(900 * MiB, textLike(64 * KiB + 1, 2));
    const file = join(tmp.dir, 'sparse-1g.vmdk');
    const started = Date.now();
    await writeToFile(disk, file, { batchGrains: 8 });
    expect(Date.now() - started).toBeLessThan(10_000);
    const readBytes = disk.reads.reduce((s, r) => s + r.length, 0);
    expect(readBytes).toBeLessThanOrEqual(3 * MiB + 3 * GRAIN + 2 * GRAIN);
    expect(Math.max(...disk.reads.map((r) => r.length))).toBeLessThanOrEqual(8 * GRAIN);
    for (const r of disk.reads) {
      const inside = r.offset + r.length <= 14 * MiB || r.offset >= 900 * MiB - GRAIN;
      expect(inside, JSON.stringify(r)).toBe(true);
    }
    expectQemuCheckClean(file);
    const img = await openVmdk(file);
    try {
      expect(img.capacity).toBe(1024 * MiB);
      expect((await img.read(10 * MiB, 4 * MiB)).equals(disk.readSync(10 * MiB, 4 * MiB))).toBe(true);
      expect((await img.read(900 * MiB - 512, 129 * KiB)).equals(disk.readSync(900 * MiB - 512, 129 * KiB))).toBe(true);
      expect((await img.read(500 * MiB, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
    } finally {
      await img.close();
    }
  });

  it('is lazy and back-pressured: nothing is read before the consumer pulls, and it can stop early', async () => {
    const block = prng(1)(4 * MiB);
    const disk = new SyntheticDisk(64 * MiB);
    for (let off = 0; off < 64 * MiB; off += 4 * MiB) disk.put(off, block);
    const stream = writeStreamOptimized(disk, { batchGrains: 4 });
    await new Promise((r) => setTimeout(r, 20));
    // Readable.from starts one pull into its buffer at most; far from the whole disk.
    expect(disk.reads.reduce((s, r) => s + r.length, 0)).toBeLessThanOrEqual(4 * MiB);
    let got = 0;
    for await (const chunk of stream) {
      got += (chunk as Buffer).length;
      if (got > 2 * MiB) break;
    }
    expect(disk.reads.reduce((s, r) => s + r.length, 0)).toBeLessThan(16 * MiB);
  });

  it('pads a capacity that is not a whole sector with zeros', async () => {
    const data = prng(3)(100_000);
    const disk = new SyntheticDisk(100_000).put(0, data);
    const file = join(tmp.dir, 'odd.vmdk');
    await writeToFile(disk, file);
    expectQemuCheckClean(file);
    const raw = await qemuToRaw(file, tmp.dir);
    expect(raw.length).toBe(100_352);
    expect(raw.subarray(0, 100_000).equals(data)).toBe(true);
    expect(raw.subarray(100_000).equals(Buffer.alloc(352))).toBe(true);
  });

  it('refuses bad arguments with typed errors', async () => {
    const drain = async (s: DiskSource, o?: Parameters<typeof streamOptimizedChunks>[1]) => {
      for await (const _ of streamOptimizedChunks(s, o));
    };
    await expect(drain(new SyntheticDisk(0))).rejects.toBeInstanceOf(VmdkRangeError);
    await expect(drain(new SyntheticDisk(MiB), { compressionLevel: 12 })).rejects.toBeInstanceOf(VmdkRangeError);
    const unsorted: DiskSource = {
      capacity: 4 * MiB,
      read: async (_o, l) => Buffer.alloc(l, 1),
      async *allocatedExtents() {
        yield { offset: 2 * MiB, length: GRAIN };
        yield { offset: 0, length: GRAIN };
      },
    };
    await expect(drain(unsorted)).rejects.toThrow(/ascending/);
    const shortReads: DiskSource = { capacity: MiB, read: async () => Buffer.alloc(10) };
    await expect(drain(shortReads)).rejects.toBeInstanceOf(VmdkRangeError);
  });

  it('converts a real disk read by our reader (monolithicSparse) to streamOptimized that qemu-img reads identically', async () => {
    const src = await openVmdk(testdata('monolithicSparse.vmdk'));
    const file = join(tmp.dir, 'from-real.vmdk');
    try {
      await writeToFile(src, file, { compressionLevel: 9 });
    } finally {
      await src.close();
    }
    expectQemuCheckClean(file);
    const expected = await qemuToRaw(testdata('monolithicSparse.vmdk'), tmp.dir);
    expect(sha256(await qemuToRaw(file, tmp.dir))).toBe(sha256(expected));
  });

  it("reads qemu-img's own streamOptimized output of the same source identically", async () => {
    const disk = mixedDisk();
    const rawPath = join(tmp.dir, 'mixed.raw');
    await writeFile(rawPath, disk.bytes());
    const qemuStream = join(tmp.dir, 'mixed-qemu-stream.vmdk');
    const r = qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', rawPath, qemuStream]);
    expect(r.status, r.stderr).toBe(0);
    const img = await openVmdk(qemuStream);
    try {
      expect(img.format).toBe('streamOptimized');
      expect(sha256(await img.read(0, img.capacity))).toBe(sha256(disk.bytes()));
    } finally {
      await img.close();
    }
  });
});

describe('raw writer', () => {
  it('streams the source with holes filled by zeros and never reads outside allocated extents', async () => {
    const disk = new SyntheticDisk(5 * MiB + 512).put(MiB + 3, prng(8)(300 * KiB)).put(5 * MiB, Buffer.from('tail'));
    const chunks: Buffer[] = [];
    for await (const c of rawChunks(disk, { chunkSize: 256 * KiB })) {
      expect(c.length).toBeLessThanOrEqual(256 * KiB);
      chunks.push(Buffer.from(c));
    }
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(disk.bytes()));
    expect(disk.reads.reduce((s, r) => s + r.length, 0)).toBe(300 * KiB + 4);
    const viaReadable: Buffer[] = [];
    for await (const c of writeRaw({ capacity: disk.capacity, read: (o, l) => disk.read(o, l) })) viaReadable.push(c as Buffer);
    expect(sha256(Buffer.concat(viaReadable))).toBe(sha256(disk.bytes()));
  });
});
