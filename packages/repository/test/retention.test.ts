import { describe, expect, it } from 'vitest';
import { planRetention } from '../src/index.ts';

const day = 86_400_000;
const now = new Date('2026-11-25T12:00:00Z');
function daily(n: number): Array<{ id: string; time: Date; lockedUntil?: Date | null }> {
  // one point per day at 01:00 UTC, newest first = yesterday
  return Array.from({ length: n }, (_, i) => ({ id: `p${i}`, time: new Date(Date.UTC(2026, 10, 24, 1) - i * day) }));
}

describe('GFS retention policy (pure, injected clock)', () => {
  it('keep-last keeps the N newest', () => {
    const d = planRetention(daily(10), { keepLast: 3 }, now);
    expect(d.keep.map((k) => k.point.id)).toEqual(['p0', 'p1', 'p2']);
    expect(d.prune).toHaveLength(7);
  });

  it('keep-daily keeps the newest point of each of the last N days', () => {
    const pts = [...daily(5), { id: 'p0-early', time: new Date(Date.UTC(2026, 10, 24, 0, 30)) }];
    const d = planRetention(pts, { keepDaily: 2 }, now);
    expect(d.keep.map((k) => k.point.id)).toEqual(['p0', 'p1']);
    expect(d.prune.map((p) => p.id)).toContain('p0-early');
  });

  it('weekly, monthly and yearly keep one per ISO week / month / year, and reasons accumulate', () => {
    const pts = daily(800);
    const d = planRetention(pts, { keepLast: 1, keepWeekly: 4, keepMonthly: 3, keepYearly: 3 }, now);
    const byId = new Map(d.keep.map((k) => [k.point.id, k.reasons]));
    expect(byId.get('p0')).toEqual(['last', 'weekly', 'monthly', 'yearly']);
    const weekly = d.keep.filter((k) => k.reasons.includes('weekly'));
    expect(weekly).toHaveLength(4);
    // 2026-11-24 is a Tuesday; the previous weekly keepers are Sundays (end of ISO week).
    expect(weekly.slice(1).every((k) => k.point.time.getUTCDay() === 0)).toBe(true);
    const monthly = d.keep.filter((k) => k.reasons.includes('monthly')).map((k) => k.point.time.toISOString().slice(0, 10));
    expect(monthly).toEqual(['2026-11-24', '2026-10-31', '2026-09-30']);
    const yearly = d.keep.filter((k) => k.reasons.includes('yearly')).map((k) => k.point.time.toISOString().slice(0, 10));
    expect(yearly).toEqual(['2026-11-24', '2025-12-31', '2024-12-31']);
    expect(d.keep.length + d.prune.length).toBe(800);
  });

  it('immutable points are kept regardless of policy until their lock date (the clock decides)', () => {
    const pts = daily(5);
    pts[4]!.lockedUntil = new Date(now.getTime() + day);
    const d = planRetention(pts, { keepLast: 1 }, now);
    expect(d.keep.map((k) => k.point.id)).toEqual(['p0', 'p4']);
    expect(d.keep[1]!.reasons).toEqual(['immutable']);
    const later = planRetention(pts, { keepLast: 1 }, new Date(now.getTime() + 2 * day));
    expect(later.keep.map((k) => k.point.id)).toEqual(['p0']);
  });

  it('an empty policy keeps everything; invalid counts are rejected', () => {
    expect(planRetention(daily(3), {}, now).prune).toEqual([]);
    expect(() => planRetention(daily(3), { keepLast: -1 }, now)).toThrow(RangeError);
  });
});
