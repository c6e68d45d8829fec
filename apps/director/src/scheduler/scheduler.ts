/**
 * Starts scheduled runs. Every tick, each enabled job with a cron schedule is
 * checked for an occurrence since the one it last ran for; the claim is a
 * conditional update, so several Directors (or a restart mid-tick) start each
 * occurrence once. Occurrences missed while the appliance was down are not
 * replayed one by one: the latest one runs, once.
 */
import cronParser from 'cron-parser';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { WorkQueue } from '@vaultline/queue';
import { startJobRun } from '../services/runs.ts';

/** The most recent occurrence of `schedule` at or before `now`, or null for an invalid expression. */
export function previousOccurrence(schedule: string, now: Date): Date | null {
  try {
    return cronParser.parseExpression(schedule, { currentDate: new Date(now.getTime() + 1) }).prev().toDate();
  } catch {
    return null;
  }
}

export function cronProblem(schedule: string): string | null {
  try {
    cronParser.parseExpression(schedule);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export async function scheduleTick(deps: { db: Db; queue: WorkQueue; log: Logger; now?: Date }): Promise<string[]> {
  const now = deps.now ?? new Date();
  const started: string[] = [];
  const jobs = await deps.db.backupJob.findMany({ where: { enabled: true, schedule: { not: null } } });
  for (const job of jobs) {
    const due = previousOccurrence(job.schedule!, now);
    if (!due) continue;
    const since = job.lastScheduledAt ?? job.createdAt;
    if (due <= since) continue;
    const claimed = await deps.db.backupJob.updateMany({
      where: { id: job.id, OR: [{ lastScheduledAt: null }, { lastScheduledAt: { lt: due } }] },
      data: { lastScheduledAt: due },
    });
    if (claimed.count !== 1) continue;
    try {
      const { run } = await startJobRun(deps.db, deps.queue, job.id, 'schedule', null);
      started.push(run.id);
      deps.log.info({ job: job.name, runId: run.id, occurrence: due.toISOString() }, 'scheduled run started');
    } catch (err) {
      deps.log.warn({ job: job.name, err: (err as Error).message }, 'scheduled run not started');
    }
  }
  return started;
}

export function startScheduler(deps: { db: Db; queue: WorkQueue; log: Logger; intervalMs?: number }): { stop(): void } {
  const timer = setInterval(() => {
    void scheduleTick(deps).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'scheduler tick failed'));
  }, deps.intervalMs ?? 20_000);
  return { stop: () => clearInterval(timer) };
}
