/**
 * What the writer measures of the data it stores anew, for the ransomware signal: entropy from a small
 * sample of each new blob, compressibility from the compression it did anyway, and nothing for chunks that
 * were deduplicated or reused from the parent.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { byteEntropy, ENTROPY_SAMPLE_BYTES, HIGH_ENTROPY_BITS, openRestorePointWriter, Repository, sampleEntropy } from '../src/index.ts';
import { tmpDir } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
/** Log-like text: what an ordinary guest writes. */
function text(n: number, seed: number): Buffer {
  const words = 'the backup agent service disk volume snapshot kernel network request user session cache database index commit error info'.split(' ');
  let s = seed;
  const out: string[] = [];
  let len = 0;
  while (len < n) {
    s = (s * 1103515245 + 12345) >>> 0;
    const line = `${len.toString(36)} ${words[s % words.length]} ${words[(s >>> 8) % words.length]} ${words[(s >>> 16) % words.length]}\n`;
    out.push(line);
    len += line.length;
  }
  return Buffer.from(out.join(''), 'latin1').subarray(0, n);
}

describe('byteEntropy', () => {
  it('measures bits per byte: 0 for a constant, 1 for two values, log2(256) for all bytes equally, ≈ 8 for ciphertext', () => {
    expect(byteEntropy(Buffer.alloc(0))).toBe(0);
    expect(byteEntropy(Buffer.alloc(4096, 7))).toBe(0);
    expect(byteEntropy(Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 2)))).toBeCloseTo(1, 10);
    expect(byteEntropy(Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256)))).toBeCloseTo(8, 10);
    expect(byteEntropy(randomBytes(ENTROPY_SAMPLE_BYTES))).toBeGreaterThan(HIGH_ENTROPY_BITS);
    const t = byteEntropy(text(ENTROPY_SAMPLE_BYTES, 1));
    expect(t).toBeGreaterThan(3);
    expect(t).toBeLessThan(5.5);
    // Longer than the log table: computed, not refused.
    expect(byteEntropy(randomBytes(3 * ENTROPY_SAMPLE_BYTES))).toBeGreaterThan(7.9);
  });
});

describe('sampleEntropy', () => {
  it('reads a small sample as a large one (Miller–Madow): random bytes ≈ 8, text well below the threshold, a run of one byte 0', () => {
    // Uncorrected, 1 KiB of random bytes counts ≈ 7.82 bits; corrected ≈ 7.98 (7.89 the least of 100,000 samples).
    for (let i = 0; i < 20; i++) {
      const r = randomBytes(64 * 1024);
      expect(sampleEntropy(r)).toBeGreaterThan(7.85);
      expect(sampleEntropy(r)).toBeLessThanOrEqual(8);
      expect(Math.abs(sampleEntropy(r) - byteEntropy(r))).toBeLessThan(0.08);
    }
    const t = text(64 * 1024, 2);
    expect(sampleEntropy(t)).toBeLessThan(HIGH_ENTROPY_BITS - 1.5);
    expect(Math.abs(sampleEntropy(t) - byteEntropy(t))).toBeLessThan(0.3);
    expect(sampleEntropy(Buffer.alloc(256 * 1024))).toBe(0);
    // Smaller than the sample: all of it.
    expect(sampleEntropy(randomBytes(300))).toBeGreaterThan(HIGH_ENTROPY_BITS);
    expect(sampleEntropy(Buffer.alloc(0))).toBe(0);
  });
});

describe('DiskWriter.changedData', () => {
  it('records the new blobs of each disk: compressed/raw from the workers, entropy sampled; deduplicated and reused chunks add nothing', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 256 * 1024 });
    const repo = await Repository.open(root);
    const size = 8 * MiB;
    const ordinary = text(size, 3);
    const w = await openRestorePointWriter(repo, { vmId: 'vm-1', vm: {} });
    const d = await w.openDisk({ key: '2000', capacity: size });
    await d.write(0, ordinary);
    const m1 = await w.commit();
    const c1 = m1.disks[0]!.changedData!;
    expect(c1.newRawBytes).toBe(m1.disks[0]!.stats.newRawBytes);
    expect(c1.newStoredBytes).toBe(m1.disks[0]!.stats.newStoredBytes);
    expect(c1.newStoredBytes / c1.newRawBytes).toBeLessThan(0.5);
    expect(c1.highEntropyBytes).toBe(0);
    expect(c1.sampledBytes).toBe(m1.disks[0]!.stats.newChunks * ENTROPY_SAMPLE_BYTES);
    expect(c1.entropyBits / c1.sampledBytes).toBeLessThan(5.5);

    // The guest "encrypts" the second half; the first half is unchanged and the parent's.
    const encrypted = Buffer.concat([ordinary.subarray(0, size / 2), randomBytes(size / 2)]);
    const w2 = await openRestorePointWriter(repo, { vmId: 'vm-1', parent: { vmId: 'vm-1', id: m1.id } });
    const d2 = await w2.openDisk({ key: '2000', capacity: size });
    await d2.write(size / 2, encrypted.subarray(size / 2));
    const m2 = await w2.commit();
    const c2 = m2.disks[0]!.changedData!;
    expect(c2.newRawBytes).toBe(size / 2);
    expect(c2.highEntropyBytes).toBe(size / 2);
    expect(c2.newStoredBytes / c2.newRawBytes).toBeGreaterThan(0.99);
    expect(c2.entropyBits / c2.sampledBytes).toBeGreaterThan(7.9);

    // A full re-read of the same bytes deduplicates everything: no new data, nothing measured.
    const w3 = await openRestorePointWriter(repo, { vmId: 'vm-1', vm: {} });
    const d3 = await w3.openDisk({ key: '2000', capacity: size, mode: 'full' });
    await d3.write(0, encrypted);
    const m3 = await w3.commit();
    expect(m3.disks[0]!.changedData).toEqual({ newRawBytes: 0, newStoredBytes: 0, sampledBytes: 0, entropyBits: 0, highEntropyBytes: 0 });
    await repo.close();
  });
});
