/**
 * Starts scheduled runs of backup jobs, restore drills and repository
 * maintenance (GC, verify). Every tick, each
 * enabled job with a cron schedule is
 * checked for an occurrence since the one it last ran for; the claim is a
 * conditional update, so several Directors (or a restart mid-tick) start each
 * occurrence once. Occurrences missed while the appliance was down are not
 * replayed one by one: the latest one runs, once.
 */
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { WorkQueue } from '@vaultline/queue';
import { startCopyRun } from '../services/copy-jobs.ts';
import { startDrillRuns } from '../services/drills.ts';
import { startMaintenanceRun } from '../services/maintenance.ts';
import { startJobRun, type RunInventory } from '../services/runs.ts';
import { previousOccurrence } from '../services/schedules.ts';
import { reconcileTick, type ReconcileDeps } from './reconciler.ts';

/** The most recent occurrence of `schedule` at or before `now`, or null for an invalid expression. */
/** The occurrence a job is due for now, or null (none since the one it last ran for, or a bad expression). */
function dueOccurrence(job: { schedule: string | null; lastScheduledAt: Date | null; createdAt: Date }, now: Date): Date | null {
  const due = job.schedule ? previousOccurrence(job.schedule, now) : null;
  return due && due > (job.lastScheduledAt ?? job.createdAt) ? due : null;
}

/** Only claimed when nobody has claimed this occurrence (or a later one) yet. */
const unclaimed = (id: string, due: Date) => ({ id, OR: [{ lastScheduledAt: null }, { lastScheduledAt: { lt: due } }] });

/** `inventory`: how a job with container sources reads its vCenter when its run starts (without it, they fail). */
export async function scheduleTick(deps: { db: Db; queue: WorkQueue; log: Logger; now?: Date; inventory?: RunInventory }): Promise<string[]> {
  const { db, log } = deps;
  const now = deps.now ?? new Date();
  const started: string[] = [];
  const attempt = async (what: string, due: Date, start: () => Promise<string[]>) => {
    try {
      const runIds = await start();
      started.push(...runIds);
      log.info({ job: what, runIds, occurrence: due.toISOString() }, 'scheduled run started');
    } catch (err) {
      log.warn({ job: what, err: (err as Error).message }, 'scheduled run not started');
    }
  };
  for (const job of await db.backupJob.findMany({ where: { enabled: true, schedule: { not: null } } })) {
    const due = dueOccurrence(job, now);
    if (!due || (await db.backupJob.updateMany({ where: unclaimed(job.id, due), data: { lastScheduledAt: due } })).count !== 1) continue;
    await attempt(job.name, due, async () => [(await startJobRun(db, deps.queue, job.id, 'schedule', null, deps.inventory)).run.id]);
  }
  for (const drill of await db.drillJob.findMany({ where: { enabled: true, schedule: { not: null } } })) {
    const due = dueOccurrence(drill, now);
    if (!due || (await db.drillJob.updateMany({ where: unclaimed(drill.id, due), data: { lastScheduledAt: due } })).count !== 1) continue;
    await attempt(`drill ${drill.name}`, due, async () => (await startDrillRuns(db, deps.queue, drill.id, 'schedule', null, now)).runIds);
  }
  for (const job of await db.copyJob.findMany({ where: { enabled: true, schedule: { not: null } } })) {
    const due = dueOccurrence(job, now);
    if (!due || (await db.copyJob.updateMany({ where: unclaimed(job.id, due), data: { lastScheduledAt: due } })).count !== 1) continue;
    await attempt(`copy job ${job.name}`, due, async () => [(await startCopyRun(db, deps.queue, job.id, 'schedule', null)).run.id]);
  }
  for (const repo of await db.repository.findMany({ where: { OR: [{ gcSchedule: { not: null } }, { verifySchedule: { not: null } }] } })) {
    const gcDue = dueOccurrence({ schedule: repo.gcSchedule, lastScheduledAt: repo.lastGcScheduledAt, createdAt: repo.createdAt }, now);
    if (gcDue && (await db.repository.updateMany({ where: { id: repo.id, OR: [{ lastGcScheduledAt: null }, { lastGcScheduledAt: { lt: gcDue } }] }, data: { lastGcScheduledAt: gcDue } })).count === 1) {
      await attempt(`gc of ${repo.name}`, gcDue, async () => [(await startMaintenanceRun(db, deps.queue, repo.id, { task: 'gc' }, 'schedule', null)).run.id]);
    }
    const verifyDue = dueOccurrence({ schedule: repo.verifySchedule, lastScheduledAt: repo.lastVerifyScheduledAt, createdAt: repo.createdAt }, now);
    if (verifyDue && (await db.repository.updateMany({ where: { id: repo.id, OR: [{ lastVerifyScheduledAt: null }, { lastVerifyScheduledAt: { lt: verifyDue } }] }, data: { lastVerifyScheduledAt: verifyDue } })).count === 1) {
      await attempt(`verify of ${repo.name}`, verifyDue, async () => [(await startMaintenanceRun(db, deps.queue, repo.id, { task: 'verify', sample: repo.verifySample }, 'schedule', null)).run.id]);
    }
  }
  return started;
}

export function startScheduler(deps: ReconcileDeps & { intervalMs?: number; inventory?: RunInventory }): { stop(): void } {
  const timer = setInterval(() => {
    void scheduleTick(deps).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'scheduler tick failed'));
    void reconcileTick(deps).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'run reconciliation failed'));
  }, deps.intervalMs ?? 20_000);
  return { stop: () => clearInterval(timer) };
}
