import { copyFile, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  VmdkBadMagicError,
  VmdkChainError,
  VmdkCorruptError,
  VmdkError,
  VmdkRangeError,
  VmdkTruncatedError,
  VmdkUnsupportedError,
  openVmdk,
  streamOptimizedChunks,
} from '../src/index.ts';
import type { VmdkErrorCode } from '../src/index.ts';
import { SyntheticDisk, prng, testdata, withTmpDir } from './helpers.ts';

/** Open and read the whole disk; return the error (or undefined when everything read fine). */
async function readFully(path: string): Promise<unknown> {
  try {
    const img = await openVmdk(path);
    try {
      for (let off = 0; off < img.capacity; off += 1 << 20) await img.read(off, Math.min(1 << 20, img.capacity - off));
      for await (const _ of img.allocatedExtents());
    } finally {
      await img.close();
    }
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectVmdkError(err: unknown, cls: abstract new (...a: never[]) => VmdkError, code: VmdkErrorCode, message?: RegExp): void {
  expect(err).toBeInstanceOf(cls);
  expect((err as VmdkError).code).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
}

async function patch(path: string, position: number, bytes: Buffer): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, position);
  } finally {
    await fh.close();
  }
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

describe('damaged images give typed errors, never garbage data', () => {
  let tmp: Awaited<ReturnType<typeof withTmpDir>>;
  let n = 0;
  const copy = async (name: string): Promise<string> => {
    const dst = join(tmp.dir, `${n++}-${name}`);
    await copyFile(testdata(name), dst);
    return dst;
  };
  beforeAll(async () => {
    tmp = await withTmpDir();
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('monolithicSparse cut short: the grains past the end are reported as truncation', async () => {
    const whole = await readFile(testdata('monolithicSparse.vmdk'));
    for (const keep of [whole.length - 100_000, 1_000_000, whole.length - 1]) {
      const path = join(tmp.dir, `truncated-${keep}.vmdk`);
      await writeFile(path, whole.subarray(0, keep));
      expectVmdkError(await readFully(path), VmdkTruncatedError, 'TRUNCATED');
    }
    const tiny = join(tmp.dir, 'tiny.vmdk');
    await writeFile(tiny, whole.subarray(0, 300));
    expectVmdkError(await readFully(tiny), VmdkTruncatedError, 'TRUNCATED', /sparse header/);
  });

  it('streamOptimized cut short (no footer at the end) is a truncation error at open', async () => {
    const chunks: Buffer[] = [];
    for await (const c of streamOptimizedChunks(new SyntheticDisk(2 << 20).put(0, prng(2)(1 << 20)))) chunks.push(c);
    const whole = Buffer.concat(chunks);
    for (const cut of [512, 1536, 100_000]) {
      const path = join(tmp.dir, `stream-cut-${cut}.vmdk`);
      await writeFile(path, whole.subarray(0, whole.length - cut));
      expectVmdkError(await readFully(path), VmdkTruncatedError, 'TRUNCATED', /footer/);
    }
  });

  it('bad magic in a sparse file, in a sparse extent behind a descriptor, and in a streamOptimized footer', async () => {
    const sparse = await copy('monolithicSparse.vmdk');
    await patch(sparse, 0, Buffer.from('KDMX'));
    expectVmdkError(await readFully(sparse), VmdkBadMagicError, 'BAD_MAGIC', /KDMV/);

    await copy('twoGbMaxExtentSparse.vmdk');
    const desc = join(tmp.dir, `${n - 1}-twoGbMaxExtentSparse.vmdk`);
    await copyFile(testdata('twoGbMaxExtentSparse-s001.vmdk'), join(tmp.dir, 'twoGbMaxExtentSparse-s001.vmdk'));
    await writeFile(desc, (await readFile(desc, 'utf8')).replace('"twoGbMaxExtentSparse-s001.vmdk"', `"${join(tmp.dir, 'twoGbMaxExtentSparse-s001.vmdk')}"`));
    expect(await readFully(desc)).toBeUndefined();
    await patch(join(tmp.dir, 'twoGbMaxExtentSparse-s001.vmdk'), 0, Buffer.from('\0\0\0\0'));
    expectVmdkError(await readFully(desc), VmdkBadMagicError, 'BAD_MAGIC');

    const chunks: Buffer[] = [];
    for await (const c of streamOptimizedChunks(new SyntheticDisk(1 << 20).put(0, Buffer.from('x')))) chunks.push(c);
    const stream = join(tmp.dir, 'bad-footer.vmdk');
    const bytes = Buffer.concat(chunks);
    bytes.write('XXXX', bytes.length - 1024);
    await writeFile(stream, bytes);
    expectVmdkError(await readFully(stream), VmdkCorruptError, 'CORRUPT', /footer/);
  });

  it('grain directory or its entries pointing past the end of the file', async () => {
    const a = await copy('monolithicSparse.vmdk');
    const header = await readFile(a);
    const gdOffset = Number(header.readBigUInt64LE(56));
    await patch(a, gdOffset * 512, u32(0x7fff_0000));
    expectVmdkError(await readFully(a), VmdkCorruptError, 'CORRUPT', /grain directory entry 0 .* past the end/);

    const b = await copy('monolithicSparse.vmdk');
    const far = Buffer.alloc(8);
    far.writeBigUInt64LE(1n << 40n);
    await patch(b, 56, far);
    expectVmdkError(await readFully(b), VmdkCorruptError, 'CORRUPT', /grain directory at sector .* past the end/);
  });

  it('a damaged compressed grain or grain marker is a corruption error', async () => {
    const path = await copy('streamOptimized.vmdk');
    const bytes = await readFile(path);
    const firstGrain = Number(bytes.readBigUInt64LE(64)) * 512; // overHead: first grain marker
    expect(bytes.readBigUInt64LE(firstGrain)).toBe(0n);
    await patch(path, firstGrain + 12 + 40, Buffer.from('garbage in the deflate stream'));
    expectVmdkError(await readFully(path), VmdkCorruptError, 'CORRUPT', /grain 0 .* does not inflate/);

    const lba = await copy('streamOptimized.vmdk');
    await patch(lba, firstGrain, Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0]));
    expectVmdkError(await readFully(lba), VmdkCorruptError, 'CORRUPT', /carries LBA 128, expected 0/);
  });

  it('damaged header fields: new-line check bytes, grain size, unknown compression', async () => {
    const nl = await copy('monolithicSparse.vmdk');
    await patch(nl, 73, Buffer.from('\n \n\n'));
    expectVmdkError(await readFully(nl), VmdkCorruptError, 'CORRUPT', /new-line/);
    const gs = await copy('monolithicSparse.vmdk');
    await patch(gs, 20, Buffer.from([100, 0, 0, 0]));
    expectVmdkError(await readFully(gs), VmdkCorruptError, 'CORRUPT', /grainSize/);
    const comp = await copy('streamOptimized.vmdk');
    await patch(comp, 77, Buffer.from([7, 0]));
    expectVmdkError(await readFully(comp), VmdkUnsupportedError, 'UNSUPPORTED', /compression/);
  });

  it('a flat extent shorter than its descriptor says is a truncation error', async () => {
    const desc = join(tmp.dir, 'short.vmdk');
    await writeFile(desc, (await readFile(testdata('vmfs_thick.vmdk'), 'utf8')).replace('"vmfs_thick-flat.vmdk"', '"short-flat.vmdk"'));
    await writeFile(join(tmp.dir, 'short-flat.vmdk'), Buffer.alloc(4096 * 512 - 512));
    expectVmdkError(await readFully(desc), VmdkTruncatedError, 'TRUNCATED', /flat extent 0/);
  });

  it('a delta disk whose parent is missing is a chain error, never read with zeros in place of the parent', async () => {
    const desc = join(tmp.dir, 'delta.vmdk');
    await writeFile(desc, '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=0172e8a4\ncreateType="vmfsSparse"\nparentFileNameHint="base.vmdk"\n\nRW 4096 VMFSSPARSE "delta-delta.vmdk"\n');
    const cowdHeader = Buffer.alloc(2048);
    cowdHeader.write('COWD', 0, 'latin1');
    for (const [i, v] of [1, 3, 4096, 1, 4, 1, 5].entries()) cowdHeader.writeUInt32LE(v, 4 + i * 4);
    await writeFile(join(tmp.dir, 'delta-delta.vmdk'), Buffer.concat([cowdHeader, Buffer.alloc(512)]));
    expectVmdkError(await readFully(desc), VmdkChainError, 'CHAIN', /parent disk not found.*delta\.vmdk/);
    const cowd = join(tmp.dir, 'x-delta.vmdk');
    await writeFile(cowd, Buffer.concat([Buffer.from('COWD'), Buffer.alloc(2044)]));
    expectVmdkError(await readFully(cowd), VmdkUnsupportedError, 'UNSUPPORTED', /COWD/);
  });

  it('a malformed descriptor file names the line; reads outside the disk are range errors', async () => {
    const desc = join(tmp.dir, 'malformed.vmdk');
    await writeFile(desc, '# Disk DescriptorFile\nversion=1\ncreateType="vmfs"\nRW 4096 VMFS\n');
    expectVmdkError(await readFully(desc), VmdkError, 'DESCRIPTOR', /line 4/);

    const img = await openVmdk(testdata('ext2.vmdk'));
    try {
      await expect(img.read(img.capacity - 10, 11)).rejects.toBeInstanceOf(VmdkRangeError);
      await expect(img.read(-1, 1)).rejects.toBeInstanceOf(VmdkRangeError);
      await expect(img.read(0, 100, Buffer.alloc(10))).rejects.toBeInstanceOf(VmdkRangeError);
      expect((await img.read(img.capacity, 0)).length).toBe(0);
    } finally {
      await img.close();
    }
  });

  it('a file named .vmdk that is neither sparse nor a descriptor is a bad-magic error, not a raw disk', async () => {
    const path = join(tmp.dir, 'random.vmdk');
    await writeFile(path, prng(4)(8192));
    expectVmdkError(await readFully(path), VmdkBadMagicError, 'BAD_MAGIC');
    const raw = join(tmp.dir, 'random.img');
    await writeFile(raw, prng(4)(8192));
    const img = await openVmdk(raw);
    expect(img.format).toBe('raw');
    await img.close();
  });

  it('randomly damaged sparse and stream files either read or fail with a VmdkError, never another exception', async () => {
    const names = ['monolithicSparse.vmdk', 'streamOptimized.vmdk', 'streamOptimizedWithMarkers.vmdk', 'ext2.vmdk'];
    const originals = await Promise.all(names.map((name) => readFile(testdata(name))));
    const rnd = prng(2026);
    const outcomes: Record<string, number> = {};
    for (let iter = 0; iter < 160; iter++) {
      const orig = originals[iter % originals.length] ?? Buffer.alloc(0);
      const buf = Buffer.from(orig);
      const r = rnd(64);
      const hits = 1 + ((r[0] ?? 0) % 8);
      for (let i = 0; i < hits; i++) {
        const where = r.readUInt32LE(4 + i * 4);
        // mostly the metadata at the front (header, descriptor, tables), sometimes the tail (footer) or anywhere
        const pos = i % 3 === 0 ? where % Math.min(buf.length, 12 * 1024) : i % 3 === 1 ? buf.length - 1 - (where % 2048) : where % buf.length;
        buf[pos] = r[40 + i] ?? 0;
      }
      const cut = (r[60] ?? 0) < 50 ? r.readUInt32LE(36) % buf.length : buf.length;
      const path = join(tmp.dir, `fuzz-${iter}.vmdk`);
      await writeFile(path, buf.subarray(0, cut));
      const err = await readFully(path);
      if (err !== undefined && !(err instanceof VmdkError)) throw new Error(`iteration ${iter}: untyped error`, { cause: err });
      const key = err instanceof VmdkError ? err.code : 'read';
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    expect(outcomes.TRUNCATED).toBeGreaterThan(0);
    expect(outcomes.CORRUPT).toBeGreaterThan(0);
  });
});
