import { CopyJobInputSchema, CopyJobSchema, OkSchema, RunStartedSchema } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { currentUser, operator, viewer } from '../auth/guard.ts';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { copyJobsWithCounts, startCopyRun } from '../services/copy-jobs.ts';
import { cronProblem } from '../services/schedules.ts';
import { parse } from '../validate.ts';

const Id = z.object({ id: z.uuid() });

/** Backup copy jobs: list, create, delete, run now. */
export async function copyJobRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; queue: WorkQueue }): Promise<void> {
  const { db, audit } = deps;

  app.get('/copy-jobs', { ...viewer, schema: { response: { 200: z.array(CopyJobSchema) } } }, async () => copyJobsWithCounts(db));

  app.post('/copy-jobs', { ...operator, schema: { body: CopyJobInputSchema, response: { 201: CopyJobSchema } } }, async (request, reply) => {
    const body = parse(CopyJobInputSchema, request.body);
    const [source, target] = await Promise.all([db.repository.findUnique({ where: { id: body.sourceRepositoryId } }), db.repository.findUnique({ where: { id: body.targetRepositoryId } })]);
    if (!source) throw new AppError('bad_request', 'no such source repository', [{ path: 'sourceRepositoryId', message: 'unknown' }]);
    if (!target) throw new AppError('bad_request', 'no such target repository', [{ path: 'targetRepositoryId', message: 'unknown' }]);
    const bad = body.schedule ? cronProblem(body.schedule) : null;
    if (bad) throw new AppError('bad_request', `schedule "${body.schedule}" is not a cron expression: ${bad}`, [{ path: 'schedule', message: bad }]);
    if (await db.copyJob.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a copy job named ${body.name} already exists`);
    const same = await db.copyJob.findFirst({ where: { sourceRepositoryId: source.id, targetRepositoryId: target.id } });
    if (same) throw new AppError('conflict', `copy job ${same.name} already copies ${source.name} into ${target.name}`);
    const job = await db.copyJob.create({ data: { ...body, retention: body.retention } });
    await audit.record({ actor: currentUser(request).username, action: 'copy-job.create', subject: job.name, detail: { source: source.name, target: target.name }, ip: request.ip });
    reply.code(201);
    return (await copyJobsWithCounts(db, { id: job.id }))[0]!;
  });

  app.delete('/copy-jobs/:id', { ...operator, schema: { params: Id, response: { 200: OkSchema } } }, async (request) => {
    const job = await db.copyJob.findUnique({ where: { id: parse(Id, request.params).id } });
    if (!job) throw new AppError('not_found', 'no such copy job');
    // Its copies stay (restore points like any other); they are no longer pruned by its retention.
    await db.copyJob.delete({ where: { id: job.id } });
    await audit.record({ actor: currentUser(request).username, action: 'copy-job.delete', subject: job.name, ip: request.ip });
    return { ok: true };
  });

  app.post('/copy-jobs/:id/run', { ...operator, schema: { params: Id, response: { 202: RunStartedSchema } } }, async (request, reply) => {
    const { job, run } = await startCopyRun(db, deps.queue, parse(Id, request.params).id, 'manual', currentUser(request).username);
    await audit.record({ actor: currentUser(request).username, action: 'copy-job.run', subject: job.name, detail: { runId: run.id }, ip: request.ip });
    reply.code(202);
    return { runId: run.id };
  });
}
