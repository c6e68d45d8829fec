/**
 * The run lifecycle, as one port: every kind of work (backup, restore, maintenance) records its run item
 * the same way, so the rules live in one place instead of in each handler:
 * - start: the run is running from its first item's start; the item is running on this Transporter in a
 *   first phase, with no error and no lost-Transporter mark left from an earlier attempt;
 * - log lines are written one after the other, in the order given, and all of them before the item is
 *   finished or handed back for a retry (a reader never sees a finish before the lines that explain it);
 * - finish: the item's outcome, then `vm.finished`, then the run settles once none of its items is
 *   queued or running (settledRunStatus: failed over cancelled over warning over succeeded), with
 *   `run.finished`; a restore or maintenance run (one item) also carries that item's error.
 * The Transporter implements it over PostgreSQL and the event bus (adapters/pg-run-recorder.ts).
 */
import type { RunStatus } from '@vaultline/contracts';
import type { DiskUpdate, ProgressSink } from '../backup/progress.ts';

export type RunLogLevel = 'info' | 'warn' | 'error';

export interface RunRecorder {
  readonly runId: string;
  readonly itemId: string;
  /** The item starts (or starts again) on this Transporter, in `phase`. */
  start(phase: string): Promise<void>;
  /** A new phase, or what the same phase now waits on (`detail`: what a long phase waits on, shown under it). */
  phase(phase: string, detail?: string | null): Promise<void>;
  /** A run log line: written in order, after every line before it. */
  log(level: RunLogLevel, message: string): void;
  /** Resolves when every line logged so far is written. */
  flush(): Promise<void>;
  diskPhase(deviceKey: number, update: DiskUpdate): Promise<void>;
  readonly progress: ProgressSink;
  /** The item's outcome (after its log), then the run's when it was the last item still active. */
  finish(status: RunStatus, error: string | null, extra?: { vmMoref?: string }): Promise<void>;
  /** The attempt failed and the queue will try again: the item waits in phase `retrying` with the error. */
  retrying(error: string): Promise<void>;
}
