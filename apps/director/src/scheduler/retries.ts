/**
 * A job's automatic retries (`options.retries`): a backup run of the job that ended failed gets a run of only
 * its failed VMs `delayMinutes` after it finished, up to `count` retries in a row (a retry that fails again is
 * retried in turn until the count is spent). Runs that finished more than a day before they became due are left
 * alone (turning the option on does not retry old failures), as are runs of disabled jobs. A job with a backup
 * window is retried only inside it (a retry due outside waits for it to open). A run is retried at most once,
 * even with several Directors (the retry's unique `retry_of_id`).
 */
import { JobOptionsSchema } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { WorkQueue } from '@vaultline/queue';
import { AppError } from '../errors.ts';
import { retryDepth, startRetryRun, type RunInventory } from '../services/runs.ts';
import { applianceTimeZone } from '../services/schedules.ts';
import { insideWindow } from './backup-window.ts';

const DAY_MS = 24 * 60 * 60_000;

export async function retryTick(deps: { db: Db; queue: WorkQueue; log: Logger; now?: Date; inventory?: RunInventory; timeZone?: string }): Promise<string[]> {
  const { db, log } = deps;
  const now = deps.now ?? new Date();
  const timeZone = deps.timeZone ?? applianceTimeZone();
  const started: string[] = [];
  const candidates = await db.jobRun.findMany({
    where: { kind: 'backup', status: 'failed', finishedAt: { gte: new Date(now.getTime() - 2 * DAY_MS) }, retriedBy: { is: null }, job: { enabled: true } },
    select: { id: true, finishedAt: true, job: { select: { name: true, options: true } } },
    orderBy: { finishedAt: 'asc' },
    take: 200,
  });
  for (const run of candidates) {
    const options = JobOptionsSchema.safeParse(run.job?.options ?? {}).data;
    const retries = options?.retries;
    if (!run.job || !retries || retries.count === 0) continue;
    if (options.window && !insideWindow(options.window, now, timeZone)) continue;
    const due = run.finishedAt!.getTime() + retries.delayMinutes * 60_000;
    if (due > now.getTime() || now.getTime() - due > DAY_MS) continue;
    const depth = await retryDepth(db, run.id);
    if (depth >= retries.count) continue;
    try {
      const { run: retry } = await startRetryRun(db, deps.queue, run.id, { trigger: 'auto-retry', requestedBy: null, ...(deps.inventory ? { inv: deps.inventory } : {}), now });
      started.push(retry.id);
      log.info({ job: run.job.name, runId: retry.id, retryOf: run.id, retry: depth + 1, of: retries.count }, 'automatic retry of failed VMs started');
    } catch (err) {
      // The job is running (a scheduled run began meanwhile): the next tick tries again. Anything else is logged.
      if (err instanceof AppError && err.code === 'conflict') log.info({ job: run.job.name, retryOf: run.id, why: err.message }, 'automatic retry waits');
      else log.warn({ job: run.job.name, retryOf: run.id, err: (err as Error).message }, 'automatic retry not started');
    }
  }
  return started;
}
