/**
 * The ransomware signal's decision: per disk, this point's new data against the medians of the VM's earlier
 * points; only a meaningful amount, with a baseline, that became both high-entropy and incompressible counts.
 */
import { describe, expect, it } from 'vitest';
import { assessChangedData, DEFAULT_ANOMALY_THRESHOLDS, summarise, type DiskDataStats } from '../src/backup/anomaly.ts';

const MiB = 1024 * 1024;

/** Statistics of `raw` bytes of new data, `high` of its share high-entropy, compressed to `ratio`, at `bits` per byte. */
function stats(raw: number, high: number, ratio: number, bits: number, key = '2000', label = 'Hard disk 1'): DiskDataStats {
  const sampled = Math.ceil(raw / (4 * MiB)) * 4096;
  return { key, label, newRawBytes: raw, newStoredBytes: Math.round(raw * ratio), sampledBytes: sampled, entropyBits: bits * sampled, highEntropyBytes: Math.round(raw * high) };
}
const ordinary = (raw = 64 * MiB) => stats(raw, 0.03, 0.3, 4.6);
const encrypted = (raw = 64 * MiB) => stats(raw, 1, 1.0, 7.95);

describe('assessChangedData', () => {
  it('flags a disk whose new data turned high-entropy and incompressible, saying what against what', () => {
    const v = assessChangedData([encrypted()], [[ordinary()], [ordinary()], [ordinary()]]);
    expect(v.anomalous).toBe(true);
    expect(v.findings).toHaveLength(1);
    const b = v.findings[0]!.baseline;
    expect(b.points).toBe(3);
    expect(b.highShare).toBeCloseTo(0.03, 6);
    expect(b.ratio).toBeCloseTo(0.3, 6);
    expect(v.findings[0]!.message).toBe(
      'disk Hard disk 1: 100 % of 64 MiB of new data is high-entropy (mean 7.95 bits/byte) and it compressed to 100 % of its size, ' +
        'against 3 % high-entropy (4.60 bits/byte) compressing to 30 % over the last 3 restore point(s) (medians)',
    );
  });

  it('does not judge a first backup, a second one without enough baseline, or a small change', () => {
    expect(assessChangedData([encrypted()], [])).toMatchObject({ anomalous: false, notJudged: ['disk Hard disk 1: 0 earlier restore point(s) with measured new data, 2 needed for a baseline'] });
    expect(assessChangedData([encrypted()], [[ordinary()]]).anomalous).toBe(false);
    const small = assessChangedData([encrypted(8 * MiB)], [[ordinary()], [ordinary()]]);
    expect(small.anomalous).toBe(false);
    expect(small.notJudged).toEqual(['disk Hard disk 1: 8.0 MiB of new data, below the 16 MiB judged']);
    // Points from before the signal (no statistics) and points without new data on the disk are no baseline.
    expect(assessChangedData([encrypted()], [[], [stats(0, 0, 0, 0)], [ordinary()]]).anomalous).toBe(false);
  });

  it('does not flag a VM whose changes were always high-entropy (media, encrypted volumes)', () => {
    expect(assessChangedData([encrypted()], [[encrypted()], [stats(64 * MiB, 0.9, 0.98, 7.9)], [encrypted()]]).anomalous).toBe(false);
  });

  it('needs both: high-entropy data that still compresses (a jump in entropy alone) is not flagged', () => {
    expect(assessChangedData([stats(64 * MiB, 0.9, 0.45, 7.6)], [[ordinary()], [ordinary()]]).anomalous).toBe(false);
    // …and incompressible data whose samples were not high-entropy is not either.
    expect(assessChangedData([stats(64 * MiB, 0.2, 0.95, 6)], [[ordinary()], [ordinary()]]).anomalous).toBe(false);
  });

  it('uses medians, so one earlier spike does not hide the jump', () => {
    expect(assessChangedData([encrypted()], [[encrypted()], [ordinary()], [ordinary()]]).anomalous).toBe(true);
  });

  it('judges each disk against its own history (matched by key)', () => {
    const v = assessChangedData(
      [ordinary(), encrypted(64 * MiB), encrypted(64 * MiB)].map((s, i) => ({ ...s, key: String(2000 + i), label: `Hard disk ${i + 1}` })),
      [[{ ...ordinary(), key: '2000' }, { ...ordinary(), key: '2001' }, { ...encrypted(), key: '2002' }], [{ ...ordinary(), key: '2000' }, { ...ordinary(), key: '2001' }, { ...encrypted(), key: '2002' }]],
    );
    expect(v.findings.map((f) => f.label)).toEqual(['Hard disk 2']);
  });

  it('honours thresholds and refuses invalid ones or invalid statistics with a clear error', () => {
    expect(assessChangedData([encrypted(8 * MiB)], [[ordinary()], [ordinary()]], { minNewBytes: 4 * MiB }).anomalous).toBe(true);
    expect(() => assessChangedData([], [], { minHighShare: 1.5 })).toThrow('anomaly threshold minHighShare is a share and must be at most 1, not 1.5');
    expect(() => assessChangedData([], [], { minNewBytes: -1 })).toThrow('anomaly threshold minNewBytes must be a non-negative number, not -1');
    expect(() => assessChangedData([], [], { minHistory: 0 })).toThrow('anomaly threshold minHistory must be a positive integer, not 0');
    expect(() => assessChangedData([{ ...ordinary(), newRawBytes: Number.NaN }], [])).toThrow('this restore point: disk 2000 has an invalid newRawBytes (NaN)');
    expect(() => assessChangedData([ordinary()], [[{ ...ordinary(), highEntropyBytes: 128 * MiB }]])).toThrow(
      `earlier restore point 1: disk 2000 has more high-entropy bytes (${128 * MiB}) than new bytes (${64 * MiB})`,
    );
    expect(() => assessChangedData([{ ...ordinary(), entropyBits: 9 * ordinary().sampledBytes }], [])).toThrow('more than 8 bits of entropy per sampled byte');
  });

  it('summarises shares and means, zero for a disk without new data', () => {
    expect(summarise(stats(0, 0, 0, 0))).toEqual({ newRawBytes: 0, highShare: 0, ratio: 0, entropy: 0 });
    expect(summarise(encrypted())).toMatchObject({ highShare: 1, ratio: 1, entropy: 7.95 });
    expect(DEFAULT_ANOMALY_THRESHOLDS.minHistory).toBeGreaterThanOrEqual(2);
  });
});
