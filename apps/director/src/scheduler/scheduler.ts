/**
 * Starts scheduled runs of backup jobs, restore drills and repository
 * maintenance (GC, verify). Every tick, each
 * enabled job with a cron schedule is
 * checked for an occurrence since the one it last ran for; the claim is a
 * conditional update, so several Directors (or a restart mid-tick) start each
 * occurrence once. Occurrences missed while the appliance was down are not
 * replayed one by one: the latest one runs, once.
 *
 * A backup job with a backup window (options.window) starts a scheduled run
 * only inside it; an occurrence outside it is claimed all the same and
 * recorded as a run that ended `cancelled` without items, its error saying
 * why, so the job's runs show it. When the window closes, the VMs its
 * scheduled runs (and automatic retries) have not started yet are ended
 * `cancelled` and taken out of the queue; VMs being copied finish. Run now is
 * never restricted.
 */
import { JobOptionsSchema, settledRunStatus, type RunEvent } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { WorkQueue } from '@vaultline/queue';
import { startCopyRun } from '../services/copy-jobs.ts';
import { startDrillRuns } from '../services/drills.ts';
import { startMaintenanceRun } from '../services/maintenance.ts';
import { startJobRun, type RunInventory } from '../services/runs.ts';
import { applianceTimeZone, previousOccurrence } from '../services/schedules.ts';
import { insideWindow, notStartedInWindow, windowSkipReason, type BackupWindow } from './backup-window.ts';
import { reconcileTick, type ReconcileDeps } from './reconciler.ts';
import { retryTick } from './retries.ts';

/** The occurrence a job is due for now, or null (none since the one it last ran for, or a bad expression). */
function dueOccurrence(job: { schedule: string | null; lastScheduledAt: Date | null; createdAt: Date }, now: Date): Date | null {
  const due = job.schedule ? previousOccurrence(job.schedule, now) : null;
  return due && due > (job.lastScheduledAt ?? job.createdAt) ? due : null;
}

/** Only claimed when nobody has claimed this occurrence (or a later one) yet. */
const unclaimed = (id: string, due: Date) => ({ id, OR: [{ lastScheduledAt: null }, { lastScheduledAt: { lt: due } }] });

/**
 * Runs a backup window holds: those the appliance starts by itself (a schedule, an automatic retry). Runs an
 * operator starts (Run now, a retry by hand) are never held back by it.
 */
const WINDOWED_TRIGGERS = ['schedule', 'auto-retry'];

/** A job's backup window, or null (none, or options that do not read: those never held one the scheduler could honour). */
function jobWindow(options: unknown): BackupWindow | null {
  const parsed = JobOptionsSchema.safeParse(options ?? {});
  return parsed.success ? parsed.data.window : null;
}

/**
 * `inventory`: how a job with container sources reads its vCenter when its run starts (without it, they fail).
 * `timeZone`: the wall clock backup windows are read on (default the appliance's, as cron expressions are).
 */
export async function scheduleTick(deps: { db: Db; queue: WorkQueue; log: Logger; now?: Date; inventory?: RunInventory; timeZone?: string }): Promise<string[]> {
  const { db, log } = deps;
  const now = deps.now ?? new Date();
  const timeZone = deps.timeZone ?? applianceTimeZone();
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
    const window = jobWindow(job.options);
    const skipped = window && windowSkipReason(window, due, now, timeZone);
    if (skipped) {
      // A run that never started, so the job's list and page show the skip and the run's page says why.
      const run = await db.jobRun.create({ data: { jobId: job.id, kind: 'backup', trigger: 'schedule', status: 'cancelled', finishedAt: now, error: skipped } });
      log.info({ job: job.name, runId: run.id, occurrence: due.toISOString() }, skipped);
      continue;
    }
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

/**
 * Ends the VMs that scheduled runs have not started yet, of each job whose backup window is closed `now`:
 * each is taken out of the queue first, and one a Transporter holds already (BullMQ keeps a running job) is
 * left to run, as are VMs being copied. A run whose items are then all over gets its final status. Only
 * WINDOWED_TRIGGERS runs are ended here. Returns the ended items' ids.
 */
export async function backupWindowTick(deps: { db: Db; queue: Pick<WorkQueue, 'remove'>; log: Logger; publish?: (event: RunEvent) => void; now?: Date; timeZone?: string }): Promise<string[]> {
  const { db, log } = deps;
  const now = deps.now ?? new Date();
  const timeZone = deps.timeZone ?? applianceTimeZone();
  const ended: string[] = [];
  const scheduledRun = { kind: 'backup' as const, trigger: { in: WINDOWED_TRIGGERS }, status: { in: ['queued' as const, 'running' as const] } };
  for (const job of await db.backupJob.findMany({ where: { runs: { some: scheduledRun } }, select: { id: true, name: true, options: true } })) {
    const window = jobWindow(job.options);
    if (!window || insideWindow(window, now, timeZone)) continue;
    const message = notStartedInWindow(window);
    const runs = new Set<string>();
    for (const item of await db.runVm.findMany({ where: { status: 'queued', startedAt: null, run: { jobId: job.id, ...scheduledRun } }, select: { id: true, runId: true, vmName: true } })) {
      if (!(await deps.queue.remove(item.id))) continue;
      // Only if nothing started it meanwhile (the queue no longer has it, so nothing will).
      const { count } = await db.runVm.updateMany({ where: { id: item.id, status: 'queued', startedAt: null }, data: { status: 'cancelled', phase: 'cancelled', error: message, finishedAt: now } });
      if (count !== 1) continue;
      ended.push(item.id);
      runs.add(item.runId);
      log.info({ job: job.name, runId: item.runId, runVmId: item.id, vm: item.vmName }, message);
      deps.publish?.({ type: 'vm.finished', runId: item.runId, runVmId: item.id, status: 'cancelled', error: message });
    }
    for (const runId of runs) {
      const status = settledRunStatus((await db.runVm.findMany({ where: { runId }, select: { status: true } })).map((i) => i.status));
      if (!status) continue;
      const { count } = await db.jobRun.updateMany({ where: { id: runId, finishedAt: null }, data: { status, finishedAt: now, ...(status === 'cancelled' ? { error: message } : {}) } });
      if (count === 1) deps.publish?.({ type: 'run.finished', runId, status });
    }
  }
  return ended;
}

export function startScheduler(deps: ReconcileDeps & { intervalMs?: number; inventory?: RunInventory }): { stop(): void } {
  const timer = setInterval(() => {
    void scheduleTick(deps).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'scheduler tick failed'));
    void reconcileTick(deps).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'run reconciliation failed'));
    void backupWindowTick(deps).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'backup window check failed'));
    void retryTick(deps).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'automatic retries failed'));
  }, deps.intervalMs ?? 20_000);
  return { stop: () => clearInterval(timer) };
}
