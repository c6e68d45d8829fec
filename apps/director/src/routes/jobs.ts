import { JobCreateSchema, JobOptionsSchema, type Run } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { EventBus, WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { parse } from '../validate.ts';
import { startJobRun } from '../services/runs.ts';
import { cronProblem } from '../scheduler/scheduler.ts';

const Id = z.object({ id: z.uuid() });

type RunWithItems = Awaited<ReturnType<typeof loadRun>>;
async function loadRun(db: Db, id: string) {
  return db.jobRun.findUnique({ where: { id }, include: { vms: { include: { disks: { orderBy: { deviceKey: 'asc' } } }, orderBy: { vmName: 'asc' } } } });
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function runDto(r: NonNullable<RunWithItems>): Run {
  return {
    id: r.id,
    jobId: r.jobId,
    kind: r.kind,
    status: r.status,
    trigger: r.trigger,
    createdAt: r.createdAt.toISOString(),
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
    error: r.error,
    vms: r.vms.map((v) => ({
      id: v.id,
      vmMoref: v.vmMoref,
      vmName: v.vmName,
      status: v.status,
      phase: v.phase,
      transporterId: v.transporterId,
      quiesced: v.quiesced,
      startedAt: iso(v.startedAt),
      finishedAt: iso(v.finishedAt),
      error: v.error,
      log: Array.isArray(v.log) ? (v.log as { at: string; level: string; message: string }[]) : [],
      disks: v.disks.map((d) => ({
        id: d.id,
        deviceKey: d.deviceKey,
        label: d.label,
        capacityBytes: Number(d.capacityBytes),
        phase: d.phase,
        transport: d.transport,
        transportReason: Array.isArray(d.transportReason) ? (d.transportReason as string[]) : [],
        cbtUsed: d.cbtUsed,
        bytesRead: Number(d.bytesRead),
        bytesWritten: Number(d.bytesWritten),
        bytesSkipped: Number(d.bytesSkipped),
        startedAt: iso(d.startedAt),
        finishedAt: iso(d.finishedAt),
        error: d.error,
      })),
    })),
  };
}

export async function jobRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; queue: WorkQueue; events: EventBus }): Promise<void> {
  const { db, audit, queue } = deps;
  const operator = { config: { minRole: 'operator' as const } };

  app.get('/api/jobs', async () =>
    (await db.backupJob.findMany({ orderBy: { name: 'asc' } })).map((j) => ({ ...j, createdAt: j.createdAt.toISOString(), updatedAt: j.updatedAt.toISOString() })),
  );

  app.post('/api/jobs', operator, async (request, reply) => {
    const body = parse(JobCreateSchema, request.body);
    if (!(await db.vCenter.findUnique({ where: { id: body.vcenterId } }))) throw new AppError('bad_request', 'no such vCenter', [{ path: 'vcenterId', message: 'unknown' }]);
    if (!(await db.repository.findUnique({ where: { id: body.repositoryId } }))) throw new AppError('bad_request', 'no such repository', [{ path: 'repositoryId', message: 'unknown' }]);
    if (await db.backupJob.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a job named ${body.name} already exists`);
    const bad = body.schedule ? cronProblem(body.schedule) : null;
    if (bad) throw new AppError('bad_request', `schedule "${body.schedule}" is not a cron expression: ${bad}`, [{ path: 'schedule', message: bad }]);
    const job = await db.backupJob.create({
      data: { name: body.name, vcenterId: body.vcenterId, repositoryId: body.repositoryId, sources: body.sources, transportMode: body.transportMode, options: JobOptionsSchema.parse(body.options), schedule: body.schedule, enabled: body.enabled },
    });
    await audit.record({ actor: request.user!.username, action: 'job.create', subject: job.name, ip: request.ip });
    reply.code(201);
    return { ...job, createdAt: job.createdAt.toISOString(), updatedAt: job.updatedAt.toISOString() };
  });

  app.get('/api/jobs/:id', async (request) => {
    const { id } = parse(Id, request.params);
    const job = await db.backupJob.findUnique({ where: { id } });
    if (!job) throw new AppError('not_found', 'no such job');
    return { ...job, createdAt: job.createdAt.toISOString(), updatedAt: job.updatedAt.toISOString() };
  });

  app.delete('/api/jobs/:id', operator, async (request) => {
    const { id } = parse(Id, request.params);
    const job = await db.backupJob.findUnique({ where: { id } });
    if (!job) throw new AppError('not_found', 'no such job');
    await db.backupJob.delete({ where: { id } });
    await audit.record({ actor: request.user!.username, action: 'job.delete', subject: job.name, ip: request.ip });
    return { ok: true };
  });

  /** Run now: the run and one item per VM are rows first; the queue carries the item ids. */
  app.post('/api/jobs/:id/run', operator, async (request, reply) => {
    const { id } = parse(Id, request.params);
    const { job, run } = await startJobRun(db, queue, id, 'manual', request.user!.username);
    await audit.record({ actor: request.user!.username, action: 'job.run', subject: job.name, detail: { runId: run.id }, ip: request.ip });
    reply.code(202);
    return runDto((await loadRun(db, run.id))!);
  });

  app.get('/api/runs', async (request) => {
    const q = parse(z.object({ jobId: z.uuid().optional(), limit: z.coerce.number().int().min(1).max(500).default(50) }), request.query);
    const runs = await db.jobRun.findMany({ where: q.jobId ? { jobId: q.jobId } : {}, orderBy: { createdAt: 'desc' }, take: q.limit, include: { vms: { include: { disks: true } } } });
    return runs.map(runDto);
  });

  app.get('/api/runs/:id', async (request) => {
    const { id } = parse(Id, request.params);
    const run = await loadRun(db, id);
    if (!run) throw new AppError('not_found', 'no such run');
    return runDto(run);
  });

  app.post('/api/runs/:id/cancel', operator, async (request) => {
    const { id } = parse(Id, request.params);
    const run = await db.jobRun.findUnique({ where: { id } });
    if (!run) throw new AppError('not_found', 'no such run');
    if (!['queued', 'running'].includes(run.status)) throw new AppError('conflict', `run is already ${run.status}`);
    await db.jobRun.update({ where: { id }, data: { cancelRequested: true } });
    await deps.events.publish({ type: 'run.cancel', runId: id });
    await audit.record({ actor: request.user!.username, action: 'run.cancel', subject: id, ip: request.ip });
    return { ok: true };
  });
}
