import { describe, expect, it } from 'vitest';
import { complement, normaliseAreas, pieces, sampleBlocks } from '../src/backup/areas.ts';

describe('changed-area arithmetic', () => {
  it('sorts, clips and merges touching areas', () => {
    expect(normaliseAreas([{ start: 100, length: 50 }, { start: 0, length: 100 }, { start: 900, length: 500 }, { start: 2000, length: 1 }], 1000)).toEqual([
      { start: 0, length: 150 },
      { start: 900, length: 100 },
    ]);
  });

  it('cuts areas into bounded reads covering exactly the same bytes', () => {
    expect([...pieces([{ start: 10, length: 25 }], 10)]).toEqual([
      { start: 10, length: 10 },
      { start: 20, length: 10 },
      { start: 30, length: 5 },
    ]);
  });

  it('complements areas within the disk', () => {
    expect(complement([{ start: 10, length: 10 }, { start: 50, length: 50 }], 120)).toEqual([
      { start: 0, length: 10 },
      { start: 20, length: 30 },
      { start: 100, length: 20 },
    ]);
  });

  it('samples aligned blocks inside the given areas only, deterministically per seed', () => {
    const areas = [{ start: 0, length: 65536 * 4 }, { start: 65536 * 10, length: 65536 * 2 }];
    const a = sampleBlocks(areas, 65536, 3, 42);
    expect(a).toEqual(sampleBlocks(areas, 65536, 3, 42));
    expect(a).toHaveLength(3);
    for (const s of a) expect(s.start % 65536 === 0 && (s.start < 65536 * 4 || (s.start >= 65536 * 10 && s.start < 65536 * 12))).toBe(true);
  });
});
