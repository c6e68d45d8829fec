/**
 * The forward-only streamOptimized decoder (readStreamOptimized), fed the way an
 * HttpNfcLease export arrives: chunks of any size, one pass.
 *
 * The streams come from an independent producer, `qemu-img convert -O vmdk -o
 * subformat=streamOptimized`, and are checked byte for byte against the raw
 * input. Our own writer's output (VMware's layout: grain-table / directory
 * markers and a footer) is decoded too and compared with qemu-img's reading of
 * it. Damaged streams are built by mutating qemu's output or by appending
 * hand-made markers to its header.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  VmdkBadMagicError,
  VmdkCorruptError,
  VmdkError,
  VmdkRangeError,
  VmdkTruncatedError,
  VmdkUnsupportedError,
  readStreamOptimized,
  streamOptimizedChunks,
} from '../src/index.ts';
import type { StreamGrain, StreamOptimizedInfo, StreamOptimizedReadOptions, VmdkErrorCode } from '../src/index.ts';
import { SyntheticDisk, prng, qemuImg, qemuTmpDir, qemuToRaw, sha256 } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const SECTOR = 512;
const GRAIN = 64 * KiB;

// ---- sources ----

/** `buf` cut into pieces whose lengths `next()` picks. */
function* pieces(buf: Buffer, next: () => number): Generator<Buffer> {
  for (let at = 0; at < buf.length; ) {
    const n = Math.max(1, next());
    yield buf.subarray(at, at + n);
    at += n;
  }
}

async function* asAsync<T>(it: Iterable<T>): AsyncGenerator<T> {
  for (const x of it) yield x;
}

const whole = (buf: Buffer): AsyncIterable<Uint8Array> => asAsync([buf]);
const fixed = (buf: Buffer, size: number): AsyncIterable<Uint8Array> => asAsync(pieces(buf, () => size));

/** Random piece sizes in 1..max from a seeded generator; plain Uint8Array copies (as fetch bodies give). */
function randomPieces(buf: Buffer, max: number, seed: number): AsyncIterable<Uint8Array> {
  const rnd = prng(seed);
  return asAsync(
    (function* () {
      for (const p of pieces(buf, () => 1 + (rnd(4).readUInt32LE(0) % max))) yield new Uint8Array(p);
    })(),
  );
}

// ---- decoding ----

interface Decoded {
  info: StreamOptimizedInfo;
  disk: Buffer;
  grains: number[];
}

/** Decode a whole stream into a disk buffer (zeros where no grain came), checking the yielded shape. */
async function decode(source: AsyncIterable<Uint8Array>, opts?: StreamOptimizedReadOptions): Promise<Decoded> {
  const reader = readStreamOptimized(source, opts);
  const info = await reader.header();
  const disk = Buffer.alloc(info.capacity);
  const grains: number[] = [];
  let last = -1;
  for await (const g of reader) {
    expect(g.offset % info.grainBytes).toBe(0);
    expect(g.offset).toBeGreaterThan(last);
    expect(g.data.length).toBe(Math.min(info.grainBytes, info.capacity - g.offset));
    g.data.copy(disk, g.offset);
    grains.push(g.offset);
    last = g.offset;
  }
  return { info, disk, grains };
}

/** Decode and return the error it ends with (fails the test when there is none). */
async function decodeError(source: AsyncIterable<Uint8Array>, opts?: StreamOptimizedReadOptions): Promise<VmdkError> {
  try {
    const reader = readStreamOptimized(source, opts);
    await reader.header();
    for await (const _ of reader);
  } catch (e) {
    expect(e).toBeInstanceOf(VmdkError);
    return e as VmdkError;
  }
  throw new Error('the stream decoded without an error');
}

function expectError(err: VmdkError, cls: abstract new (...a: never[]) => VmdkError, code: VmdkErrorCode, message: RegExp): void {
  expect(err).toBeInstanceOf(cls);
  expect(err.code).toBe(code);
  expect(err.message).toMatch(message);
}

// ---- raw test images ----

function textBlock(n: number, seed: number): Buffer {
  const lines: string[] = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const line = `${seed}:${i} the export streams grains in ascending order; absent grains read as zeros\n`;
    lines.push(line);
    len += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, n);
}

/**
 * A raw disk of `bytes` (a sector multiple) built grain by grain from a seed: random
 * (incompressible) grains, zero grains, text, half-zero grains, a lone non-zero byte
 * at a grain's very end, runs of one byte value.
 */
function rawImage(bytes: number, seed: number): Buffer {
  const out = Buffer.alloc(bytes);
  const rnd = prng(seed);
  for (let g = 0, off = 0; off < bytes; g++, off += GRAIN) {
    const n = Math.min(GRAIN, bytes - off);
    const kind = g === 0 ? 0 : (rnd(1)[0] ?? 0) % 7;
    if (kind === 0) rnd(n).copy(out, off);
    else if (kind === 1 || kind === 2) continue; // zeros
    else if (kind === 3) textBlock(n, seed + g).copy(out, off);
    else if (kind === 4) rnd(n >> 1).copy(out, off + (n >> 1));
    else if (kind === 5) out[off + n - 1] = 0x5a;
    else out.fill(g & 0xff || 1, off, off + n);
  }
  // The last sector always carries data, so the final (partial) grain is present.
  rnd(SECTOR).copy(out, bytes - SECTOR);
  return out;
}

function nonZeroGrains(raw: Buffer): number[] {
  const out: number[] = [];
  for (let off = 0; off < raw.length; off += GRAIN) {
    if (raw.subarray(off, Math.min(off + GRAIN, raw.length)).some((b) => b !== 0)) out.push(off);
  }
  return out;
}

describe('readStreamOptimized: streams written by qemu-img', () => {
  const tmp = qemuTmpDir();
  /**
   * qemu-img's streamOptimized encoding of `raw`, as an export stream. qemu keeps its grain
   * directory in front and ends the file after the last grain (sometimes followed by zero
   * padding) without an end-of-stream marker, which every VMware export carries: cut the
   * file after its last grain and add that marker (a zero sector).
   */
  const convert = async (name: string, raw: Buffer): Promise<Buffer> => {
    const input = join(tmp.dir, `${name}.raw`);
    const output = join(tmp.dir, `${name}.vmdk`);
    await writeFile(input, raw);
    const r = qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', input, output]);
    if (r.status !== 0) throw new Error(`qemu-img convert to streamOptimized failed: ${r.stderr}`);
    const file = await readFile(output);
    return Buffer.concat([file.subarray(0, lastGrainEnd(file)), eosMarker()]);
  };

  // 6 MiB + 3 sectors: not a grain multiple, so the last grain is 1536 bytes.
  let big: { raw: Buffer; vmdk: Buffer };
  // 704 KiB + 1 sector, for the small-piece runs.
  let small: { raw: Buffer; vmdk: Buffer };
  beforeAll(async () => {
    const bigRaw = rawImage(6 * MiB + 3 * SECTOR, 7);
    const smallRaw = rawImage(704 * KiB + SECTOR, 11);
    big = { raw: bigRaw, vmdk: await convert('big', bigRaw) };
    small = { raw: smallRaw, vmdk: await convert('small', smallRaw) };
  });

  it('one piece: the composed disk equals the raw input, and only non-zero grains come', async () => {
    const { info, disk, grains } = await decode(whole(big.vmdk));
    expect(info.capacity).toBe(big.raw.length);
    expect(info.grainBytes).toBe(GRAIN);
    expect(info.header.version).toBe(3);
    expect(info.descriptor).toMatch(/createType="streamOptimized"/);
    expect(sha256(disk)).toBe(sha256(big.raw));
    const expected = nonZeroGrains(big.raw);
    expect(expected.length).toBeLessThan(Math.ceil(big.raw.length / GRAIN)); // the image has zero grains to skip
    expect(grains).toEqual(expected);
    expect(grains.at(-1)).toBe(6 * MiB); // the partial last grain
  });

  it('64 KiB pieces', async () => {
    const { disk } = await decode(fixed(big.vmdk, 64 * KiB));
    expect(sha256(disk)).toBe(sha256(big.raw));
  });

  it('random pieces of 1..7000 bytes (plain Uint8Arrays), several seeds', async () => {
    for (const seed of [1, 2, 3]) {
      const { disk, info } = await decode(randomPieces(small.vmdk, 7000, seed));
      expect(info.capacity).toBe(small.raw.length);
      expect(sha256(disk)).toBe(sha256(small.raw));
    }
  });

  it('1-byte pieces', async () => {
    const raw = rawImage(192 * KiB + SECTOR, 5);
    const vmdk = await convert('tiny', raw);
    const { disk } = await decode(fixed(vmdk, 1));
    expect(sha256(disk)).toBe(sha256(raw));
  });

  it('an all-zero disk yields no grain', async () => {
    const raw = Buffer.alloc(3 * MiB);
    const vmdk = await convert('zeros', raw);
    const { info, grains } = await decode(fixed(vmdk, 4096));
    expect(info.capacity).toBe(3 * MiB);
    expect(grains).toEqual([]);
  });

  it('header() reads only up to the first grain and exposes capacity before any grain', async () => {
    let pulled = 0;
    async function* counting(): AsyncGenerator<Buffer> {
      for (const p of pieces(big.vmdk, () => 4096)) {
        pulled += p.length;
        yield p;
      }
    }
    const reader = readStreamOptimized(counting());
    const info = await reader.header();
    expect(info.capacity).toBe(big.raw.length);
    expect(reader.position).toBe(info.header.overHead * SECTOR);
    expect(pulled).toBeLessThanOrEqual(reader.position + 4096);
    expect(await reader.header()).toBe(info);
    const first = await reader[Symbol.asyncIterator]().next();
    expect((first.value as StreamGrain).offset).toBe(0);
  });

  // ---- refusals on damaged qemu streams ----

  it('a truncated stream is a TRUNCATED error naming the byte position, wherever it is cut', async () => {
    const v = small.vmdk;
    const overHead = v.readUInt32LE(64) * SECTOR;
    const eos = v.length - SECTOR; // where the end-of-stream marker starts
    for (const cut of [0, 100, 511, 600, overHead - 1, overHead + 5, overHead + 12, overHead + 4000, eos - 1, eos, eos + 100]) {
      const err = await decodeError(fixed(v.subarray(0, cut), 1000));
      expectError(err, VmdkTruncatedError, 'TRUNCATED', /streamOptimized stream ends at byte \d+/);
      expect(err.message).toContain(`byte ${cut}`);
    }
    // Without its end-of-stream marker even a stream that stops cleanly after a grain is refused.
    expectError(await decodeError(whole(v.subarray(0, eos))), VmdkTruncatedError, 'TRUNCATED', new RegExp(`ends at byte ${eos} without an end-of-stream marker`));
  });

  it('bad magic, version, flags and compression in the header are refused', async () => {
    const patched = (at: number, bytes: number[]): Buffer => {
      const b = Buffer.from(small.vmdk);
      Buffer.from(bytes).copy(b, at);
      return b;
    };
    expectError(await decodeError(whole(patched(0, [0x4b, 0x44, 0x4d, 0x58]))), VmdkBadMagicError, 'BAD_MAGIC', /header at byte 0: .*bad magic/);
    expectError(await decodeError(whole(patched(4, [2, 0, 0, 0]))), VmdkUnsupportedError, 'UNSUPPORTED', /version 2, expected 3/);
    const flags = small.vmdk.readUInt32LE(8);
    const noMarkers = Buffer.alloc(4);
    noMarkers.writeUInt32LE(flags & ~(1 << 17));
    expectError(await decodeError(whole(patched(8, [...noMarkers]))), VmdkUnsupportedError, 'UNSUPPORTED', /lack markers \(bit 17\)/);
    const noCompression = Buffer.alloc(4);
    noCompression.writeUInt32LE(flags & ~(1 << 16));
    expectError(await decodeError(whole(patched(8, [...noCompression]))), VmdkUnsupportedError, 'UNSUPPORTED', /lack compressed grains \(bit 16\)/);
    expectError(await decodeError(whole(patched(77, [0, 0]))), VmdkUnsupportedError, 'UNSUPPORTED', /compression algorithm 0/);
  });

  it('maxCapacity refuses a larger disk before reading any grain', async () => {
    const err = await decodeError(whole(big.vmdk), { maxCapacity: 6 * MiB });
    expectError(err, VmdkRangeError, 'RANGE', /capacity 6292992 bytes exceeds the allowed maximum of 6291456/);
    expect((await decode(whole(big.vmdk), { maxCapacity: big.raw.length })).info.capacity).toBe(big.raw.length);
  });

  // ---- refusals on hand-made marker sequences after qemu's header ----

  /** qemu's header + descriptor + tables, up to the first grain, with capacity set to `sectors`. */
  const preamble = (sectors: number): Buffer => {
    const v = small.vmdk;
    const p = Buffer.from(v.subarray(0, v.readUInt32LE(64) * SECTOR));
    p.writeBigUInt64LE(BigInt(sectors), 12);
    return p;
  };
  const stream = (...parts: Buffer[]): Buffer => Buffer.concat([preamble(1024), ...parts]); // 512 KiB disk, 8 grains

  it('crafted streams decode when well-formed (the baseline the refusals mutate)', async () => {
    const a = prng(3)(GRAIN);
    const { disk, grains } = await decode(whole(stream(grainMarker(128, a), metaMarker(1, 4), metaMarker(2, 1), footer(preamble(1024)), eosMarker())));
    expect(grains).toEqual([GRAIN]);
    expect(disk.subarray(GRAIN, 2 * GRAIN).equals(a)).toBe(true);
  });

  it('out-of-order, duplicate and unaligned LBAs are corruption', async () => {
    const a = Buffer.alloc(GRAIN, 1);
    const pos = preamble(1024).length + grainMarker(256, a).length;
    expectError(
      await decodeError(whole(stream(grainMarker(256, a), grainMarker(128, a), eosMarker()))),
      VmdkCorruptError,
      'CORRUPT',
      new RegExp(`grain marker at byte ${pos}: LBA 128 is out of order`),
    );
    expectError(await decodeError(whole(stream(grainMarker(256, a), grainMarker(256, a), eosMarker()))), VmdkCorruptError, 'CORRUPT', /LBA 256 is out of order/);
    expectError(await decodeError(whole(stream(grainMarker(100, a), eosMarker()))), VmdkCorruptError, 'CORRUPT', /LBA 100 is not a multiple of the grain size/);
  });

  it('a grain beyond the capacity is corruption', async () => {
    const a = Buffer.alloc(GRAIN, 1);
    const at = preamble(1024).length;
    expectError(
      await decodeError(whole(stream(grainMarker(1024, a), eosMarker()))),
      VmdkCorruptError,
      'CORRUPT',
      new RegExp(`grain marker at byte ${at}: LBA 1024 lies beyond the capacity of 1024 sectors`),
    );
  });

  it('an absurd marker size is refused before buffering, without reading on', async () => {
    let pulled = 0;
    let closed = false;
    const head = stream();
    const marker = Buffer.alloc(12);
    marker.writeBigUInt64LE(0n, 0);
    marker.writeUInt32LE(0x7fff_ffff, 8);
    async function* endless(): AsyncGenerator<Buffer> {
      try {
        yield head;
        yield marker;
        for (;;) {
          pulled += MiB;
          yield Buffer.alloc(MiB);
        }
      } finally {
        closed = true;
      }
    }
    const err = await decodeError(endless());
    expectError(err, VmdkCorruptError, 'CORRUPT', new RegExp(`grain marker at byte ${head.length} announces 2147483647 compressed bytes`));
    expect(pulled).toBe(0);
    expect(closed).toBe(true);
  });

  it('grains that inflate to the wrong size, or not at all, are corruption', async () => {
    const over = grainMarker(0, Buffer.alloc(GRAIN + SECTOR, 7));
    expectError(await decodeError(whole(stream(over, eosMarker()))), VmdkCorruptError, 'CORRUPT', /inflates to more than the grain size \(65536 bytes\)/);
    const short = grainMarker(0, Buffer.alloc(GRAIN - SECTOR, 7));
    expectError(await decodeError(whole(stream(short, eosMarker()))), VmdkCorruptError, 'CORRUPT', /inflates to 65024 bytes, expected 65536/);
    // The last grain of a 1000-sector disk holds 1000 - 896 = 104 sectors: it may inflate to those
    // (qemu) or to a whole grain cut at the capacity (our writer), nothing else.
    const last = (bytes: number): Buffer => Buffer.concat([preamble(1000), grainMarker(896, Buffer.alloc(bytes, 7)), eosMarker()]);
    for (const bytes of [104 * SECTOR, GRAIN]) {
      const { grains, disk } = await decode(whole(last(bytes)));
      expect(grains).toEqual([896 * SECTOR]);
      expect(disk.length).toBe(1000 * SECTOR);
    }
    expectError(await decodeError(whole(last(50 * SECTOR))), VmdkCorruptError, 'CORRUPT', /inflates to 25600 bytes, expected 53248/);
    expectError(await decodeError(whole(last(105 * SECTOR))), VmdkCorruptError, 'CORRUPT', /inflates to 53760 bytes, expected 53248/);
    const garbage = grainMarker(0, Buffer.alloc(GRAIN), { data: Buffer.from('not zlib at all') });
    expectError(await decodeError(whole(stream(garbage, eosMarker()))), VmdkCorruptError, 'CORRUPT', /does not inflate/);
  });

  it('unknown metadata markers and a footer that disagrees with the header are corruption', async () => {
    expectError(await decodeError(whole(stream(metaMarker(7, 0), eosMarker()))), VmdkCorruptError, 'CORRUPT', /unknown type 7/);
    expectError(await decodeError(whole(stream(footer(preamble(2048)), eosMarker()))), VmdkCorruptError, 'CORRUPT', /footer at byte \d+ says capacity 2048/);
    const badMagic = footer(preamble(1024));
    badMagic.write('XXXX', SECTOR);
    expectError(await decodeError(whole(stream(badMagic, eosMarker()))), VmdkCorruptError, 'CORRUPT', /footer at byte \d+: .*bad magic/);
  });
});

describe('readStreamOptimized: VMware layout (our writer) agrees with qemu-img', () => {
  const tmp = qemuTmpDir();

  it('grain tables, grain directory, footer markers; large sparse capacity with few grains', async () => {
    const rnd = prng(99);
    const cap = 40 * 1024 * MiB + 3 * SECTOR; // 40 GiB: only what the stream holds is ever in memory
    const src = new SyntheticDisk(cap)
      .put(0, rnd(3000))
      .put(33 * MiB + 5, rnd(200_000))
      .put(20 * 1024 * MiB, textBlock(GRAIN, 1))
      .put(cap - 700, rnd(700));
    const chunks: Buffer[] = [];
    for await (const c of streamOptimizedChunks(src)) chunks.push(c);
    const vmdk = Buffer.concat(chunks);
    const path = join(tmp.dir, 'writer.vmdk');
    await writeFile(path, vmdk);
    expect(qemuImg(['check', path]).status).toBe(0);

    const reader = readStreamOptimized(randomPieces(vmdk, 7000, 4));
    const info = await reader.header();
    expect(info.capacity).toBe(cap);
    expect(info.header.gdOffset).toBe('end');
    const got: StreamGrain[] = [];
    for await (const g of reader) got.push({ offset: g.offset, data: Buffer.from(g.data) });
    for (const g of got) expect(g.data.equals(src.readSync(g.offset, g.data.length))).toBe(true);
    expect(got.map((g) => g.offset)).toEqual([0, 33 * MiB, 33 * MiB + GRAIN, 33 * MiB + 2 * GRAIN, 33 * MiB + 3 * GRAIN, 20 * 1024 * MiB, cap - (cap % GRAIN)]);
    expect(got.at(-1)?.data.length).toBe(cap % GRAIN);
  });

  it('a small disk from our writer decodes to what qemu-img reads from the same file', async () => {
    const src = new SyntheticDisk(2 * MiB + SECTOR).put(5, prng(8)(300_000)).put(2 * MiB - 10, Buffer.from('tail data!!'));
    const chunks: Buffer[] = [];
    for await (const c of streamOptimizedChunks(src)) chunks.push(c);
    const vmdk = Buffer.concat(chunks);
    const path = join(tmp.dir, 'writer-small.vmdk');
    await writeFile(path, vmdk);
    const { disk } = await decode(fixed(vmdk, 3333));
    expect(sha256(disk)).toBe(sha256(await qemuToRaw(path, tmp.dir)));
  });
});

// ---- hand-made markers ----

function grainMarker(lba: number, grain: Buffer, override?: { data?: Buffer }): Buffer {
  const data = override?.data ?? deflateSync(grain);
  const out = Buffer.alloc(Math.ceil((12 + data.length) / SECTOR) * SECTOR);
  out.writeBigUInt64LE(BigInt(lba), 0);
  out.writeUInt32LE(data.length, 8);
  data.copy(out, 12);
  return out;
}

/** Metadata marker of `type` announcing `sectors` sectors, followed by that many zero sectors. */
function metaMarker(type: number, sectors: number): Buffer {
  const out = Buffer.alloc((1 + sectors) * SECTOR);
  out.writeBigUInt64LE(BigInt(sectors), 0);
  out.writeUInt32LE(type, 12);
  return out;
}

function footer(header: Buffer): Buffer {
  const out = metaMarker(3, 1);
  header.copy(out, SECTOR, 0, SECTOR);
  return out;
}

const eosMarker = (): Buffer => Buffer.alloc(SECTOR);

/** End of the last grain of a qemu-written file: grain markers follow one another from overHead on. */
function lastGrainEnd(v: Buffer): number {
  let pos = v.readUInt32LE(64) * SECTOR;
  while (pos + 12 <= v.length) {
    const size = v.readUInt32LE(pos + 8);
    if (size === 0) break;
    pos += Math.ceil((12 + size) / SECTOR) * SECTOR;
  }
  return pos;
}
