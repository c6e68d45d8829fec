/**
 * Backup copy jobs: a run copies a source repository's restore points (every one, or each VM's newest N)
 * into the target repository, carried out by a Transporter (apps/transporter/src/handlers/copy.ts) through
 * the maintenance queue. One run of a job at a time.
 */
import { RetentionSchema, type CopyJob } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import { AppError } from '../errors.ts';
import { startItemRun } from './runs.ts';

export async function startCopyRun(db: Db, queue: WorkQueue, copyJobId: string, trigger: 'manual' | 'schedule', requestedBy: string | null) {
  const job = await db.copyJob.findUnique({ where: { id: copyJobId } });
  if (!job) throw new AppError('not_found', 'no such copy job');
  const active = await db.jobRun.findFirst({ where: { kind: 'copy', status: { in: ['queued', 'running'] }, request: { path: ['copyJobId'], equals: job.id } } });
  if (active) throw new AppError('conflict', `copy job ${job.name} is already running (run ${active.id})`);
  const run = await startItemRun(db, (p) => queue.enqueueMaintenance(p), {
    kind: 'copy',
    trigger,
    requestedBy,
    request: { task: 'copy', repositoryId: job.targetRepositoryId, copyJobId: job.id },
    item: { name: job.name },
  });
  return { job, run };
}

/** Copy jobs as the API shows them, with the names of their repositories and how many copies each holds. */
export async function copyJobsWithCounts(db: Db, where: { id?: string } = {}): Promise<CopyJob[]> {
  const jobs = await db.copyJob.findMany({ where, orderBy: { name: 'asc' }, include: { source: { select: { id: true, name: true } }, target: { select: { id: true, name: true } }, _count: { select: { copies: true } } } });
  return jobs.map((j) => ({
    id: j.id,
    name: j.name,
    source: j.source,
    target: j.target,
    newest: j.newest,
    retention: RetentionSchema.parse(j.retention),
    schedule: j.schedule,
    enabled: j.enabled,
    copies: j._count.copies,
    createdAt: j.createdAt.toISOString(),
  }));
}
