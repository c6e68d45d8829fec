/**
 * GFS retention as a pure function (no I/O; the clock is a parameter).
 *
 * Points are walked newest first. keep-last keeps the N newest; each of
 * daily/weekly/monthly/yearly keeps the newest point of each of its N most
 * recent distinct periods (UTC day, ISO week, month, year) that contain a
 * point. A point is kept if any rule keeps it; reasons say which. Points with
 * `lockedUntil` in the future are always kept ('immutable'), whatever the policy.
 * An empty policy keeps everything (refuses to prune all by accident).
 */
export interface RetentionPolicy {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

export interface RetentionCandidate {
  id: string;
  time: Date;
  lockedUntil?: Date | null;
}

export type KeepReason = 'last' | 'daily' | 'weekly' | 'monthly' | 'yearly' | 'immutable' | 'no-policy';

export interface RetentionDecision<T extends RetentionCandidate> {
  keep: Array<{ point: T; reasons: KeepReason[] }>;
  prune: T[];
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

const periods: Array<[keyof RetentionPolicy, KeepReason, (d: Date) => string]> = [
  ['keepDaily', 'daily', (d) => d.toISOString().slice(0, 10)],
  ['keepWeekly', 'weekly', isoWeek],
  ['keepMonthly', 'monthly', (d) => d.toISOString().slice(0, 7)],
  ['keepYearly', 'yearly', (d) => d.toISOString().slice(0, 4)],
];

export function planRetention<T extends RetentionCandidate>(points: readonly T[], policy: RetentionPolicy, now: Date): RetentionDecision<T> {
  for (const [k, v] of Object.entries(policy)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new RangeError(`${k} must be a non-negative integer`);
  }
  const sorted = [...points].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1));
  const reasons = new Map<T, KeepReason[]>();
  const add = (p: T, r: KeepReason) => {
    const l = reasons.get(p) ?? [];
    l.push(r);
    reasons.set(p, l);
  };
  const anyRule = Object.values(policy).some((v) => (v ?? 0) > 0);
  if (!anyRule) for (const p of sorted) add(p, 'no-policy');
  sorted.slice(0, policy.keepLast ?? 0).forEach((p) => add(p, 'last'));
  for (const [key, reason, bucket] of periods) {
    const n = policy[key] ?? 0;
    const seen = new Set<string>();
    for (const p of sorted) {
      if (seen.size >= n) break;
      const b = bucket(p.time);
      if (seen.has(b)) continue;
      seen.add(b);
      add(p, reason);
    }
  }
  for (const p of sorted) if (p.lockedUntil && p.lockedUntil.getTime() > now.getTime()) add(p, 'immutable');
  const keep: RetentionDecision<T>['keep'] = [];
  const prune: T[] = [];
  for (const p of sorted) {
    const r = reasons.get(p);
    if (r) keep.push({ point: p, reasons: r });
    else prune.push(p);
  }
  return { keep, prune };
}
