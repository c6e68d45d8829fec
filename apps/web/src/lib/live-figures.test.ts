import { describe, expect, it } from 'vitest';
import { SPEED_WINDOW_S, STALL_MS, SpeedWindow, diskProgress, elapsedText, liveEta, showsBottleneck } from './live-figures.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** Feeds a window a tick every `stepMs` after `start` up to `toMs`, at `rate(t)` MiB/s in the step ending at t; the speed after each tick, in MiB/s. */
function feed(w: SpeedWindow, start: { t: number; read: number }, toMs: number, stepMs: number, rate: (t: number) => number) {
  const out: { t: number; mibps: number | null; read: number }[] = [];
  let read = start.read;
  for (let t = start.t + stepMs; t <= toMs; t += stepMs) {
    read += rate(t) * MiB * (stepMs / 1000);
    const s = w.push({ t, read });
    out.push({ t, mibps: s === null ? null : s / MiB, read });
  }
  return out;
}

describe('SpeedWindow', () => {
  it('smooths a jumpy series: 10 and 190 MiB in alternate seconds read at about 100 MiB/s', () => {
    const w = new SpeedWindow();
    w.push({ t: 0, read: 0 });
    const ticks = feed(w, { t: 0, read: 0 }, 30_000, 1000, (t) => ((t / 1000) % 2 === 1 ? 10 : 190));
    // Once the window is full, every figure is the mean, not the last second's 10 or 190.
    for (const { t, mibps } of ticks.filter((x) => x.t >= SPEED_WINDOW_S * 1000)) {
      expect(mibps, `at ${t} ms`).toBeGreaterThan(90);
      expect(mibps, `at ${t} ms`).toBeLessThan(110);
    }
  });

  it('follows a real change of speed within the window length', () => {
    const w = new SpeedWindow();
    w.push({ t: 0, read: 0 });
    // 100 MiB/s for 30 s, then 300 MiB/s; ticks every 250 ms as the Transporter sends them.
    const ticks = feed(w, { t: 0, read: 0 }, 30_000 + SPEED_WINDOW_S * 1000, 250, (t) => (t <= 30_000 ? 100 : 300));
    expect(ticks.find((x) => x.t === 30_000)!.mibps).toBeCloseTo(100, 0);
    // Half a window after the change: well on its way (the average since the start would still be about 129).
    expect(ticks.find((x) => x.t === 35_000)!.mibps).toBeGreaterThan(180);
    // A window after the change: the new speed (the average since the start would be 150).
    expect(ticks.at(-1)!.mibps).toBeCloseTo(300, 0);
  });

  it('says nothing until a second is covered', () => {
    const w = new SpeedWindow();
    expect(w.speed()).toBeNull();
    expect(w.push({ t: 10_000, read: 0 })).toBeNull();
    expect(w.push({ t: 10_400, read: 40 * MiB })).toBeNull();
    expect(w.push({ t: 10_999, read: 99 * MiB })).toBeNull();
    expect(w.push({ t: 11_000, read: 100 * MiB })! / MiB).toBeCloseTo(100, 5);
  });

  it('ignores a repeated tick (a re-render) instead of counting the time since as idle', () => {
    const w = new SpeedWindow();
    w.push({ t: 0, read: 0 });
    const speed = w.push({ t: 2000, read: 200 * MiB });
    expect(w.push({ t: 2500, read: 200 * MiB })).toBe(speed);
    expect(w.push({ t: 3000, read: 200 * MiB })).toBe(speed);
  });
});

describe('SpeedWindow on a stall', () => {
  it('slows down to 0 when no data comes, instead of showing the last speed', () => {
    const w = new SpeedWindow();
    w.push({ t: 0, read: 0 });
    feed(w, { t: 0, read: 0 }, 10_000, 1000, () => 100);
    expect(w.speed(10_000)! / MiB).toBeCloseTo(100, 5);
    // Within STALL_MS of the last tick: a tick is simply late.
    expect(w.push({ t: 10_000 + STALL_MS, read: 1000 * MiB })! / MiB).toBeCloseTo(100, 5);
    // Past it: the window ends now, the stalled seconds count as idle.
    const stalled = w.push({ t: 15_000, read: 1000 * MiB })! / MiB;
    expect(stalled).toBeLessThan(70);
    expect(stalled).toBeGreaterThan(40);
    expect(w.speed(10_000 + SPEED_WINDOW_S * 1000 + 1)).toBe(0);
    // Data again: the speed comes back from the new ticks.
    feed(w, { t: 30_000, read: 1000 * MiB }, 41_000, 1000, () => 50);
    expect(w.speed(41_000)! / MiB).toBeCloseTo(50, 5);
  });
});

describe('liveEta', () => {
  const live = { bytesTotal: 10 * GiB, bytesRead: 3 * GiB, bytesSkipped: 2 * GiB, verifyTotal: 0, etaSeconds: 999 };

  it('is what is left to read (total less read and skipped) at the windowed speed', () => {
    expect(liveEta(live, 100 * MiB)).toBe(Math.round((5 * GiB) / (100 * MiB)));
    expect(liveEta({ ...live, bytesRead: 8 * GiB }, 100 * MiB)).toBe(0);
  });

  it('is the Transporter’s while a verify pass is counted', () => {
    expect(liveEta({ ...live, verifyTotal: 10 * GiB }, 100 * MiB)).toBe(999);
  });

  it('is the Transporter’s until the window has a speed', () => {
    expect(liveEta(live, null)).toBe(999);
    expect(liveEta(live, 0)).toBe(999);
    expect(liveEta({ ...live, etaSeconds: null }, null)).toBeNull();
  });
});

describe('showsBottleneck', () => {
  const busy = { source: 0.2, processing: 0.3, target: 0.5 };

  it('names none before data moved, even when busy time was measured', () => {
    // A restore of an all-zero disk: its flush is timed before a byte was written.
    expect(showsBottleneck({ source: 0, processing: 0, target: 1 }, { read: 0, written: 0 })).toBe(false);
    expect(showsBottleneck(busy, { read: 0, written: 0 })).toBe(false);
  });

  it('names none before busy time was measured', () => {
    expect(showsBottleneck({ source: 0, processing: 0, target: 0 }, { read: MiB, written: MiB })).toBe(false);
    expect(showsBottleneck(null, { read: MiB, written: MiB })).toBe(false);
    expect(showsBottleneck(undefined, { read: MiB, written: MiB })).toBe(false);
  });

  it('names one once both are there', () => {
    expect(showsBottleneck(busy, { read: MiB, written: 0 })).toBe(true);
    expect(showsBottleneck(busy, { read: 0, written: MiB })).toBe(true);
  });
});

describe('elapsedText', () => {
  const started = '2026-01-02T10:00:00.000Z';
  const at = (s: number) => Date.parse(started) + s * 1000;

  it('ticks with `now` between events: the same run, later, shows more time', () => {
    expect(elapsedText(started, null, at(5))).toBe('5 s');
    expect(elapsedText(started, null, at(6))).toBe('6 s');
    expect(elapsedText(started, null, at(65))).toBe('1 min 5 s');
  });

  it('stops at finishedAt whatever the time now', () => {
    const finished = '2026-01-02T10:02:00.000Z';
    expect(elapsedText(started, finished, at(130))).toBe('2 min 0 s');
    expect(elapsedText(started, finished, at(9999))).toBe('2 min 0 s');
  });

  it('is nothing before the start, and never negative', () => {
    expect(elapsedText(null, null, at(5))).toBeNull();
    expect(elapsedText(started, null, at(-3))).toBe('0 s');
  });
});

describe('diskProgress', () => {
  it('counts a restore’s verify pass: written whole is half way, read back whole is done', () => {
    const disk = { capacityBytes: 8 * GiB, finishedAt: null };
    const written = { read: 6 * GiB, written: 6 * GiB, skipped: 2 * GiB, verified: 0 };
    expect(diskProgress(disk, written, true)).toEqual({ done: 8 * GiB, total: 16 * GiB });
    expect(diskProgress(disk, { ...written, verified: 4 * GiB }, true)).toEqual({ done: 12 * GiB, total: 16 * GiB });
    expect(diskProgress(disk, { ...written, verified: 8 * GiB }, true)).toEqual({ done: 16 * GiB, total: 16 * GiB });
  });

  it('measures a backup over what it has to read (skipped areas are not read)', () => {
    const disk = { capacityBytes: 10 * GiB, finishedAt: null };
    expect(diskProgress(disk, { read: 3 * GiB, skipped: 4 * GiB, written: GiB, verified: 0 }, false)).toEqual({ done: 3 * GiB, total: 6 * GiB });
    // Never past whole, should more be read than was expected.
    expect(diskProgress(disk, { read: 7 * GiB, skipped: 4 * GiB, written: GiB, verified: 0 }, false)).toEqual({ done: 7 * GiB, total: 7 * GiB });
  });

  it('is whole once the disk finished', () => {
    const disk = { capacityBytes: 10 * GiB, finishedAt: '2026-01-02T10:00:00.000Z' };
    for (const restore of [true, false]) expect(diskProgress(disk, { read: 0, skipped: 0, written: 0, verified: 0 }, restore)).toEqual({ done: 1, total: 1 });
  });
});
