/**
 * The live figures of a run's disks, as the run page shows them: the current speed over a window of ticks, the
 * time left, whether a bottleneck can be named yet, the elapsed clock and progress. Pure, so each rule is tested
 * on its own (live-figures.test.ts); the components only feed them ticks and the clock.
 */
import type { Bottleneck, DiskProgress } from '@vaultline/contracts';
import { formatDuration } from './format.ts';

/** Seconds of live ticks the current speed is averaged over. */
export const SPEED_WINDOW_S = 10;

/** Live ticks come about every second; no new data for longer than this is a stall. */
export const STALL_MS = 3000;

/** A live tick as the window keeps it: when it arrived (ms) and the bytes read by then. */
export interface SpeedTick {
  t: number;
  read: number;
}

/**
 * The read speed over the last SPEED_WINDOW_S seconds of live ticks. A tick's own figure is the average since the
 * disk started, which lags behind a change, and a single interval jumps about; the window does neither.
 */
export class SpeedWindow {
  private readonly ticks: SpeedTick[] = [];

  /**
   * Adds a tick and returns the speed in bytes per second, or null until a second is covered. A tick that read
   * nothing new is not kept (a re-render repeats the latest tick), but its time still counts: see speed().
   */
  push(tick: SpeedTick): number | null {
    if (this.ticks.at(-1)?.read !== tick.read) {
      this.ticks.push(tick);
      // Keep one tick older than the window, so the window is always covered once it can be.
      while (this.ticks.length > 2 && this.ticks[1]!.t <= tick.t - SPEED_WINDOW_S * 1000) this.ticks.shift();
    }
    return this.speed(tick.t);
  }

  /**
   * Bytes per second over the SPEED_WINDOW_S seconds ending at the newest tick, or at `now` once no data has come
   * for STALL_MS (so a stalled copy slows down to 0 instead of showing its last speed); over less while fewer
   * seconds have been seen; null until a second is covered.
   */
  speed(now?: number): number | null {
    const last = this.ticks.at(-1);
    if (!last) return null;
    const end = now !== undefined && now - last.t > STALL_MS ? now : last.t;
    const first = this.ticks[0]!;
    const start = end - SPEED_WINDOW_S * 1000;
    if (first.t >= start) return end - first.t < 1000 ? null : ((last.read - first.read) * 1000) / (end - first.t);
    // The window starts between two ticks (or after the last, on a long stall): what was read by then, interpolated.
    const i = this.ticks.findLastIndex((x) => x.t <= start);
    const a = this.ticks[i]!;
    const b = this.ticks[i + 1];
    const readAtStart = b ? a.read + ((b.read - a.read) * (start - a.t)) / (b.t - a.t) : a.read;
    return ((last.read - readAtStart) * 1000) / (end - start);
  }
}

/**
 * Seconds left on a live disk: what is left to read (the disk less what was read or skipped) at the windowed
 * speed; the Transporter's own estimate when a verify pass is counted (a restore reads the disk back, at a speed
 * only the Transporter measures) or no window speed is known yet.
 */
export function liveEta(live: Pick<DiskProgress, 'bytesTotal' | 'bytesRead' | 'bytesSkipped' | 'verifyTotal' | 'etaSeconds'>, windowSpeed: number | null): number | null {
  if (windowSpeed === null || windowSpeed <= 0 || live.verifyTotal > 0) return live.etaSeconds;
  return Math.round(Math.max(0, live.bytesTotal - live.bytesRead - live.bytesSkipped) / windowSpeed);
}

/**
 * Whether a bottleneck can be named: only once busy time was measured and data moved. Busy time alone is not
 * enough: a restore of an all-zero disk times its flush before any byte was written, and a tick then carries
 * busy time with nothing read or written (the Transporter keeps no bottleneck for such a disk either).
 */
export function showsBottleneck(busy: Bottleneck | null | undefined, moved: { read: number; written: number }): busy is Bottleneck {
  return !!busy && busy.source + busy.processing + busy.target > 0 && moved.read + moved.written > 0;
}

/**
 * How long something took, or has been running: from `startedAt` to `finishedAt`, or to `now` while it runs (so the
 * clock moves with `now`, between events too); null before it started.
 */
export function elapsedText(startedAt: string | null, finishedAt: string | null, now: number): string | null {
  if (!startedAt) return null;
  const end = finishedAt ? Date.parse(finishedAt) : now;
  return formatDuration(Math.max(0, (end - Date.parse(startedAt)) / 1000));
}

/** What a disk's progress bar shows. */
export interface DiskProgressFigures {
  read: number;
  skipped: number;
  written: number;
  /** Restores: bytes read back by the verify pass. */
  verified: number;
}

/**
 * A disk's progress as done over total. A finished disk is whole. A backup: what was read over what has to be read
 * (areas that are unallocated or unchanged are skipped). A restore: the whole disk written (zeros skipped count as
 * done) and then read back whole, so 2 × its capacity.
 */
export function diskProgress(disk: { capacityBytes: number; finishedAt: string | null }, f: DiskProgressFigures, restore: boolean): { done: number; total: number } {
  if (disk.finishedAt) return { done: 1, total: 1 };
  if (restore) return { done: f.written + f.skipped + f.verified, total: 2 * disk.capacityBytes };
  return { done: f.read, total: Math.max(f.read, disk.capacityBytes - f.skipped) };
}
