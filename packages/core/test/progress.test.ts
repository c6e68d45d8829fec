/**
 * DiskMeter's speed figures with a clock the test moves: the average since the start and the fastest
 * second. Pure arithmetic, so no lab is needed.
 */
import type { DiskProgress } from '@vaultline/contracts';
import { describe, expect, it } from 'vitest';
import { DiskMeter } from '../src/backup/progress.ts';

const MiB = 1024 * 1024;

function meter() {
  let now = 0;
  const ticks: DiskProgress[] = [];
  const m = new DiskMeter({ runId: 'r', runVmId: 'v', deviceKey: 2000, bytesTotal: 100 * MiB }, { disk: (p) => ticks.push(p) }, () => now);
  return { m, ticks, at: (ms: number) => (now = ms), last: () => ticks.at(-1)! };
}

describe('DiskMeter speed', () => {
  it('keeps the fastest second apart from the average: 10 MiB in the first second, 40 MiB in the next, 10 MiB in a third', async () => {
    const { m, at, last } = meter();
    for (const [t, read] of [
      [1000, 10],
      [2000, 50],
      [3000, 60],
    ] as const) {
      at(t);
      m.bytesRead = read * MiB;
      m.emit();
    }
    expect(last().bytesPerSecond).toBe(20 * MiB);
    expect(last().peakBytesPerSecond).toBe(40 * MiB);
    // A slower stretch later does not lower the peak.
    at(5000);
    m.bytesRead = 61 * MiB;
    m.setPhase('done');
    expect(last().peakBytesPerSecond).toBe(40 * MiB);
    expect(last().bytesPerSecond).toBe(Math.round((61 * MiB) / 5));
  });

  it('a disk done in less than a second gets its whole time as its peak (never below its average)', () => {
    const { m, at, last } = meter();
    at(300);
    m.bytesRead = 6 * MiB;
    m.emit();
    at(400);
    m.setPhase('done');
    expect(last().bytesPerSecond).toBe(15 * MiB);
    expect(last().peakBytesPerSecond).toBe(15 * MiB);
  });

  it('reports 0 for both before any byte is read', () => {
    const { m, at, last } = meter();
    at(2000);
    m.setPhase('snapshot');
    expect(last()).toMatchObject({ bytesPerSecond: 0, peakBytesPerSecond: 0 });
  });
});

describe('DiskMeter with a verify pass (restores)', () => {
  it('counts the read-back in the ETA: while writing, what is left to write and the whole verify at the speed so far; while verifying, what is left at its own speed', () => {
    const { m, at, last } = meter();
    m.verifyTotal = 100 * MiB;
    at(1000);
    m.bytesRead = 20 * MiB;
    m.bytesSkipped = 30 * MiB;
    m.emit(true);
    // 50 MiB left to write and 100 MiB to read back, at 20 MiB/s.
    expect(last()).toMatchObject({ etaSeconds: 8, bytesVerified: 0, verifyTotal: 100 * MiB });
    at(2000);
    m.bytesRead = 70 * MiB;
    m.setPhase('verifying');
    expect(last().etaSeconds).toBeNull();
    at(3000);
    m.bytesVerified = 50 * MiB;
    m.emit(true);
    // Reading back at 50 MiB/s, 50 MiB left.
    expect(last()).toMatchObject({ phase: 'verifying', bytesVerified: 50 * MiB, etaSeconds: 1 });
    at(3500);
    m.bytesVerified = 100 * MiB;
    m.setPhase('done');
    expect(last()).toMatchObject({ bytesVerified: 100 * MiB, etaSeconds: 0 });
  });

  it('without a verify pass (backups) the ETA is what is left to read, as before', () => {
    const { m, at, last } = meter();
    at(2000);
    m.bytesRead = 40 * MiB;
    m.bytesSkipped = 20 * MiB;
    m.emit(true);
    expect(last()).toMatchObject({ etaSeconds: 2, bytesVerified: 0, verifyTotal: 0 });
  });
});
