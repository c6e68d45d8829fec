/**
 * Backups that are not a job's scheduled run: a one-off backup of one VM ("Back up now", no job made or kept),
 * and retrying the failed VMs of a finished backup run.
 */
import { OneOffBackupSchema, RunStartedSchema, type RunStarted, type VmSource } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { currentUser, operator } from '../auth/guard.ts';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import type { InventoryCache } from '../services/inventory-cache.ts';
import { startOneOffBackup, startRetryRun } from '../services/runs.ts';
import { parse } from '../validate.ts';
import { checkJobSources } from './jobs.ts';

const Id = z.object({ id: z.uuid() });

export async function backupRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; queue: WorkQueue; inventory: InventoryCache; secretKey: Buffer }): Promise<void> {
  const { db, audit } = deps;

  /** One VM, once, now: its point goes into the repository like a job's, and no job is created. */
  app.post('/backups', { ...operator, schema: { body: OneOffBackupSchema, response: { 202: RunStartedSchema } } }, async (request, reply): Promise<RunStarted> => {
    const body = parse(OneOffBackupSchema, request.body);
    const [vcenter, repository] = await Promise.all([db.vCenter.findUnique({ where: { id: body.vcenterId } }), db.repository.findUnique({ where: { id: body.repositoryId } })]);
    if (!vcenter) throw new AppError('bad_request', 'no such vCenter', [{ path: 'vcenterId', message: 'unknown' }]);
    if (!repository) throw new AppError('bad_request', 'no such repository', [{ path: 'repositoryId', message: 'unknown' }]);
    // The VM as the vCenter has it now, under the name it has there (the same check as a job's sources).
    const [vm] = (await checkJobSources(deps.inventory, vcenter, deps.secretKey, [body.vm])) as [VmSource];
    const run = await startOneOffBackup(db, deps.queue, { ...body, vm: { ...vm, ...(body.vm.excludeDisks ? { excludeDisks: body.vm.excludeDisks } : {}) } }, currentUser(request).username);
    await audit.record({ actor: currentUser(request).username, action: 'backup.one-off', subject: vm.name, detail: { runId: run.id, repository: repository.name }, ip: request.ip });
    reply.code(202);
    return { runId: run.id };
  });

  /** The failed VMs of a finished backup run, backed up again in a new run of the same job (or one-off request). */
  app.post('/runs/:id/retry', { ...operator, schema: { params: Id, response: { 202: RunStartedSchema } } }, async (request, reply): Promise<RunStarted> => {
    const { id } = parse(Id, request.params);
    const { run, job } = await startRetryRun(db, deps.queue, id, { trigger: 'retry', requestedBy: currentUser(request).username, inv: { inventory: deps.inventory, secretKey: deps.secretKey } });
    await audit.record({ actor: currentUser(request).username, action: 'run.retry', subject: job?.name ?? id, detail: { runId: run.id, retryOf: id }, ip: request.ip });
    reply.code(202);
    return { runId: run.id };
  });
}
