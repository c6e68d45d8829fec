/**
 * Throughput samples of a run's disks (run_disk_samples): the counters at a progress tick, at most one
 * per `everyMs` per disk (and at every phase change), for the run page's chart after a reload. A disk
 * keeps at most `max` samples: on reaching it, every other one is deleted and the interval doubles, so a
 * long run keeps its whole curve at a coarser step.
 */
import type { DiskProgress } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';

export interface SampleLimits {
  everyMs: number;
  max: number;
}

/** The meter ticks at most 4 times a second: a short lab backup still draws a curve. */
export const SAMPLE_LIMITS: SampleLimits = { everyMs: 250, max: 1200 };

export function diskSamples(db: Db, limits: SampleLimits = SAMPLE_LIMITS) {
  const disks = new Map<number, { at: number; phase: string; moved: number; every: number; count: number }>();
  return {
    /** Whether this tick is to be stored; when it is, records it as taken. */
    due(p: DiskProgress, now = Date.now()): boolean {
      const moved = p.bytesRead + p.bytesWritten;
      const last = disks.get(p.deviceKey);
      if (last && (moved === last.moved || (now - last.at < last.every && p.phase === last.phase))) return false;
      disks.set(p.deviceKey, { at: now, phase: p.phase, moved, every: last?.every ?? limits.everyMs, count: last?.count ?? 0 });
      return true;
    },
    /** Stores a tick `due` accepted as a sample of the disk's row `runDiskId`, thinning its samples when they reach the limit. */
    async write(runDiskId: string, p: DiskProgress, at = new Date()): Promise<void> {
      const state = disks.get(p.deviceKey);
      if (!state) return;
      await db.runDiskSample.create({ data: { runDiskId, at, bytesRead: BigInt(p.bytesRead), bytesWritten: BigInt(p.bytesWritten) } });
      state.count += 1;
      if (state.count < limits.max) return;
      const deleted = await db.$executeRaw`
        DELETE FROM run_disk_samples WHERE id IN (
          SELECT s.id FROM (
            SELECT id, row_number() OVER (ORDER BY at, id) AS n FROM run_disk_samples WHERE run_disk_id = ${runDiskId}::uuid
          ) s WHERE s.n % 2 = 0)`;
      state.count -= deleted;
      state.every *= 2;
    },
  };
}
