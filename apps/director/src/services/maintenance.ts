/**
 * Repository maintenance runs: verify (full or sampled) and garbage collection,
 * carried out by a Transporter. One of each kind per repository at a time.
 */
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import { AppError } from '../errors.ts';
import { startItemRun } from './runs.ts';

export type MaintenanceTask = { task: 'verify'; sample: number } | { task: 'gc' };

export async function startMaintenanceRun(db: Db, queue: WorkQueue, repositoryId: string, what: MaintenanceTask, trigger: 'manual' | 'schedule', requestedBy: string | null) {
  const repo = await db.repository.findUnique({ where: { id: repositoryId } });
  if (!repo) throw new AppError('not_found', 'no such repository');
  const active = await db.jobRun.findFirst({ where: { kind: what.task, status: { in: ['queued', 'running'] }, request: { path: ['repositoryId'], equals: repositoryId } } });
  if (active) throw new AppError('conflict', `${what.task === 'gc' ? 'garbage collection' : 'a verify'} of ${repo.name} is already running (run ${active.id})`);
  const run = await startItemRun(db, (p) => queue.enqueueMaintenance(p), { kind: what.task, trigger, requestedBy, request: { ...what, repositoryId }, item: { name: repo.name } });
  return { repo, run };
}
