/**
 * The copy loop's read-ahead, driven the way the repository writer drives it (chunk-sized requests in
 * offset order, not aligned to the source's requests) over an in-memory source that records every request
 * and how many were in flight.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { pieces } from '../src/backup/areas.ts';
import type { Area, SourceReader } from '../src/backup/ports.ts';
import { ReadAhead, readAheadFor } from '../src/backup/readahead.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A source over `disk` whose reads resolve after a tick, optionally failing at one offset. */
function memorySource(disk: Buffer, opts: { failAt?: number; readAhead?: { segmentBytes: number; depth: number } } = {}) {
  const requests: Area[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const reader: SourceReader & { requests: Area[]; maxInFlight: () => number } = {
    capacity: disk.length,
    ...(opts.readAhead ? { readAhead: opts.readAhead } : {}),
    requests,
    maxInFlight: () => maxInFlight,
    async read(offset, length, into) {
      requests.push({ start: offset, length });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      if (opts.failAt !== undefined && offset <= opts.failAt && opts.failAt < offset + length) throw new Error(`I/O error at ${opts.failAt}`);
      const out = into && into.length >= length ? into.subarray(0, length) : Buffer.alloc(length);
      disk.copy(out, 0, offset, offset + length);
      return out;
    },
    async close() {},
  };
  return reader;
}

/** Reads `areas` as the writer does: pieces of 4 MiB, each cut at 256 KiB chunk boundaries. */
async function copyLikeTheWriter(ahead: ReadAhead, areas: Area[], chunk = 256 * KiB): Promise<Map<number, Buffer>> {
  const got = new Map<number, Buffer>();
  for (const p of pieces(areas, 4 * MiB)) {
    for (let pos = p.start; pos < p.start + p.length; ) {
      const n = Math.min(chunk - (pos % chunk), p.start + p.length - pos);
      const into = Buffer.alloc(n);
      await ahead.readInto(into, pos);
      got.set(pos, into);
      pos += n;
    }
  }
  return got;
}

function expectSame(disk: Buffer, got: Map<number, Buffer>): void {
  for (const [at, b] of got) expect(b.equals(disk.subarray(at, at + b.length)), `bytes at ${at}`).toBe(true);
}

describe('read-ahead of the backup copy', () => {
  const disk = randomBytes(24 * MiB);
  // Unaligned, CBT-like areas: 64 KiB granules, one spanning many segments, one tiny.
  const areas: Area[] = [
    { start: 64 * KiB, length: 5 * MiB + 192 * KiB },
    { start: 7 * MiB + 64 * KiB, length: 64 * KiB },
    { start: 9 * MiB, length: 9 * MiB - 64 * KiB },
    { start: 23 * MiB, length: MiB },
  ];

  it('serves every chunk-sized request bit-exact, asks the source only for the areas, in its own request size, with its depth in flight', async () => {
    const src = memorySource(disk, { readAhead: { segmentBytes: 2 * MiB, depth: 3 } });
    const got = await copyLikeTheWriter(new ReadAhead(src, areas, readAheadFor(src)), areas);
    expectSame(disk, got);
    // Every byte of the areas was delivered once, and the source read exactly the areas, in order.
    expect([...got.values()].reduce((n, b) => n + b.length, 0)).toBe(areas.reduce((n, a) => n + a.length, 0));
    const covered = src.requests.reduce((n, r) => n + r.length, 0);
    expect(covered).toBe(areas.reduce((n, a) => n + a.length, 0));
    for (const r of src.requests) {
      expect(r.length).toBeLessThanOrEqual(2 * MiB);
      expect(areas.some((a) => r.start >= a.start && r.start + r.length <= a.start + a.length), `request ${r.start}+${r.length} inside an area`).toBe(true);
    }
    expect(src.requests.map((r) => r.start)).toEqual([...src.requests.map((r) => r.start)].sort((a, b) => a - b));
    // The writer asks for one 256 KiB chunk at a time; the source still had three 2 MiB requests going.
    expect(src.maxInFlight()).toBe(3);
  });

  it('without a preference of the source: 1 MiB requests, four in flight', async () => {
    const src = memorySource(disk);
    expect(readAheadFor(src)).toEqual({ segmentBytes: MiB, depth: 4 });
    expectSame(disk, await copyLikeTheWriter(new ReadAhead(src, areas, readAheadFor(src)), areas));
    expect(Math.max(...src.requests.map((r) => r.length))).toBe(MiB);
    expect(src.maxInFlight()).toBe(4);
  });

  it('a failed source request fails the chunk that needs it, not an earlier one; restart on another reader continues from there', async () => {
    const failAt = 10 * MiB + 100 * KiB;
    const broken = memorySource(disk, { failAt, readAhead: { segmentBytes: MiB, depth: 4 } });
    const ahead = new ReadAhead(broken, areas, readAheadFor(broken));
    const got = new Map<number, Buffer>();
    let failedAt: number | null = null;
    const spare = memorySource(disk, { readAhead: { segmentBytes: 512 * KiB, depth: 2 } });
    for (const p of pieces(areas, 4 * MiB)) {
      for (let pos = p.start; pos < p.start + p.length; ) {
        const n = Math.min(256 * KiB - (pos % (256 * KiB)), p.start + p.length - pos);
        const into = Buffer.alloc(n);
        try {
          await ahead.readInto(into, pos);
        } catch (err) {
          expect((err as Error).message).toBe(`I/O error at ${failAt}`);
          failedAt = pos;
          ahead.restart(spare, pos);
          await ahead.readInto(into, pos);
        }
        got.set(pos, into);
        pos += n;
      }
    }
    // The failing segment is [10 MiB, 11 MiB): the first chunk needing it starts at 10 MiB.
    expect(failedAt).toBe(10 * MiB);
    expectSame(disk, got);
    // The spare reader took over at the failure and read only what was left, in its own request size.
    expect(spare.requests[0]!.start).toBe(10 * MiB);
    expect(spare.requests.reduce((n, r) => n + r.length, 0)).toBe(8 * MiB - 64 * KiB + MiB);
    expect(Math.max(...spare.requests.map((r) => r.length))).toBe(512 * KiB);
  });

  it('refuses a request outside the areas instead of reading or inventing bytes', async () => {
    const src = memorySource(disk);
    const ahead = new ReadAhead(src, areas, readAheadFor(src));
    await expect(ahead.readInto(Buffer.alloc(4096), 6 * MiB)).rejects.toThrow(/not inside the areas/);
    await expect(ahead.readInto(Buffer.alloc(4096), 30 * MiB)).rejects.toThrow(/not inside the areas/);
  });

  it('stop() drops what is in flight; a failing read in flight then never surfaces as an unhandled rejection', async () => {
    const src = memorySource(disk, { failAt: 2 * MiB, readAhead: { segmentBytes: MiB, depth: 4 } });
    const ahead = new ReadAhead(src, areas, readAheadFor(src));
    await ahead.readInto(Buffer.alloc(4096), 64 * KiB);
    ahead.stop();
    await new Promise((r) => setTimeout(r, 10));
    expect(src.requests.length).toBe(4);
  });
});
