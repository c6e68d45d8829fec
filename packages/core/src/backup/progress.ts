/**
 * Per-disk progress: bytes read / written / skipped, speed, ETA and where the
 * time goes (busy time of source reads, processing and repository writes),
 * emitted at most 4 times a second per disk.
 */
import type { DiskProgress } from '@vaultline/contracts';

/** Seconds since `t0` (a performance.now() reading), to a tenth: how long a step the run log names took. */
export const secondsSince = (t0: number): string => ((performance.now() - t0) / 1000).toFixed(1);

/** "712 MiB" (whole MiB, thousands separated; below 1 MiB in KiB). */
export function mib(bytes: number): string {
  if (bytes > 0 && bytes < 2 ** 20) return `${Math.ceil(bytes / 1024).toLocaleString('en-US')} KiB`;
  return `${Math.round(bytes / 2 ** 20).toLocaleString('en-US')} MiB`;
}

export interface ProgressSink {
  disk(p: DiskProgress): void;
}

/** A change of one disk's run row (its phase, and what is known by then), as backups and restores report it. */
export interface DiskUpdate {
  phase: string;
  label?: string;
  capacityBytes?: number;
  transport?: string;
  reasons?: string[];
  cbtUsed?: boolean;
  /** Backups: `changed` when only the CBT areas since the parent point are read (an incremental), else `full`. */
  readMode?: 'changed' | 'full';
  bytesRead?: number;
  bytesWritten?: number;
  bytesSkipped?: number;
  /** Restores: bytes read back by the verify pass. */
  bytesVerified?: number;
  startedAt?: Date;
  finishedAt?: Date;
  error?: string | null;
}

export class DiskMeter {
  bytesRead = 0;
  bytesWritten = 0;
  bytesSkipped = 0;
  /** Restores: what the verify pass has read back so far, and what it reads in all (0: no verify pass). */
  bytesVerified = 0;
  verifyTotal = 0;
  private verifyStartedAt: number | null = null;
  phase = 'queued';
  transport: string | null = null;
  private readonly busy = { source: 0, processing: 0, target: 0 };
  private readonly startedAt: number;
  private lastEmit = 0;
  /** The fastest second so far, and the window being measured (from `windowAt`, `windowBytes` read then). */
  private peak = 0;
  private windowAt: number;
  private windowBytes = 0;

  constructor(
    private readonly base: { runId: string; runVmId: string; deviceKey: number; bytesTotal: number },
    private readonly sink: ProgressSink,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.startedAt = now();
    this.windowAt = this.startedAt;
  }

  /** Times an async step into one of the three busy buckets. */
  async time<T>(bucket: 'source' | 'processing' | 'target', fn: () => Promise<T>): Promise<T> {
    const t0 = this.now();
    try {
      return await fn();
    } finally {
      this.busy[bucket] += this.now() - t0;
    }
  }

  /** Times a synchronous step (hashing, zero detection) into one of the three busy buckets. */
  timeSync<T>(bucket: 'source' | 'processing' | 'target', fn: () => T): T {
    const t0 = this.now();
    try {
      return fn();
    } finally {
      this.busy[bucket] += this.now() - t0;
    }
  }

  /** Adds busy time measured by the caller (e.g. reads done inside a repository writer's callback). */
  addBusy(bucket: 'source' | 'processing' | 'target', ms: number): void {
    this.busy[bucket] += ms;
  }

  setPhase(phase: string): void {
    this.phase = phase;
    if (phase === 'verifying') this.verifyStartedAt ??= this.now();
    this.emit(true);
  }

  /**
   * Seconds left: while verifying, what is left to read back at the verify pass's own speed; before, what is
   * left to move at the speed so far, plus the verify pass at that speed too (it reads every byte, the writes
   * skip zeros, so this errs long).
   */
  private eta(t: number, speed: number): number | null {
    const verifyLeft = Math.max(0, this.verifyTotal - this.bytesVerified);
    if (this.verifyStartedAt !== null) {
      const verifySpeed = this.bytesVerified / (Math.max(1, t - this.verifyStartedAt) / 1000);
      return verifySpeed > 0 ? Math.round(verifyLeft / verifySpeed) : null;
    }
    const left = Math.max(0, this.base.bytesTotal - this.bytesRead - this.bytesSkipped) + verifyLeft;
    return speed > 0 ? Math.round(left / Math.max(speed, 1)) : null;
  }

  /** Folds the current window into the peak once it spans a second (or, on a forced tick, any span while no second was measured yet). */
  private measure(t: number, force: boolean): void {
    const span = t - this.windowAt;
    if (span >= 1000 || (force && this.peak === 0 && span > 0 && this.bytesRead > this.windowBytes)) {
      this.peak = Math.max(this.peak, ((this.bytesRead - this.windowBytes) * 1000) / span);
      this.windowAt = t;
      this.windowBytes = this.bytesRead;
    }
  }

  emit(force = false): void {
    const t = this.now();
    this.measure(t, force);
    if (!force && t - this.lastEmit < 250) return;
    this.lastEmit = t;
    const elapsed = Math.max(1, t - this.startedAt) / 1000;
    const speed = this.bytesRead / elapsed;
    const total = this.busy.source + this.busy.processing + this.busy.target || 1;
    this.sink.disk({
      ...this.base,
      phase: this.phase,
      transport: this.transport,
      bytesRead: this.bytesRead,
      bytesWritten: this.bytesWritten,
      bytesSkipped: this.bytesSkipped,
      bytesVerified: this.bytesVerified,
      verifyTotal: this.verifyTotal,
      bytesPerSecond: Math.round(speed),
      peakBytesPerSecond: Math.round(Math.max(this.peak, speed)),
      etaSeconds: this.eta(t, speed),
      bottleneck: {
        source: round(this.busy.source / total),
        processing: round(this.busy.processing / total),
        target: round(this.busy.target / total),
      },
    });
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
