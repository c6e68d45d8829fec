import { MaintenanceSettingsSchema, MaintenanceStateSchema, RunStartedSchema, VerifyStartSchema, type MaintenanceSettings, type MaintenanceState } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { viewer, currentUser } from '../auth/guard.ts';
import { cronProblem } from '../services/schedules.ts';
import type { AuditLog } from '../services/audit.ts';
import { startMaintenanceRun } from '../services/maintenance.ts';
import { parse } from '../validate.ts';

const Id = z.object({ id: z.uuid() });

/** Verify and garbage collection of a repository, on demand and on a schedule. */
export async function maintenanceRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; queue: WorkQueue }): Promise<void> {
  const { db, audit } = deps;
  const settingsOf = (r: MaintenanceSettings): MaintenanceSettings => ({ gcSchedule: r.gcSchedule, verifySchedule: r.verifySchedule, verifySample: r.verifySample });

  app.get('/repositories/:id/maintenance', { ...viewer, schema: { params: Id, response: { 200: MaintenanceStateSchema } } }, async (request): Promise<MaintenanceState> => {
    const repo = await db.repository.findUnique({ where: { id: parse(Id, request.params).id } });
    if (!repo) throw new AppError('not_found', 'no such repository');
    const damaged = await db.restorePoint.count({ where: { repositoryId: repo.id, damaged: true } });
    const lastVerified = await db.restorePoint.findFirst({ where: { repositoryId: repo.id, verifiedAt: { not: null } }, orderBy: { verifiedAt: 'desc' }, select: { verifiedAt: true } });
    return { ...settingsOf(repo), damagedRestorePoints: damaged, lastFullVerifyAt: lastVerified?.verifiedAt?.toISOString() ?? null };
  });

  app.put('/repositories/:id/maintenance', { config: { minRole: 'admin' }, schema: { params: Id, body: MaintenanceSettingsSchema, response: { 200: MaintenanceSettingsSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const body = parse(MaintenanceSettingsSchema, request.body);
    for (const field of ['gcSchedule', 'verifySchedule'] as const) {
      const bad = body[field] ? cronProblem(body[field]) : null;
      if (bad) throw new AppError('bad_request', `${field} "${body[field]}" is not a cron expression: ${bad}`, [{ path: field, message: bad }]);
    }
    if (!(await db.repository.findUnique({ where: { id } }))) throw new AppError('not_found', 'no such repository');
    const repo = await db.repository.update({ where: { id }, data: body });
    await audit.record({ actor: currentUser(request).username, action: 'repository.maintenance', subject: repo.name, detail: body, ip: request.ip });
    return settingsOf(repo);
  });

  app.post('/repositories/:id/verify', { config: { minRole: 'operator' }, schema: { params: Id, body: VerifyStartSchema, response: { 202: RunStartedSchema } } }, async (request, reply) => {
    const { sample } = parse(VerifyStartSchema, request.body);
    const { repo, run } = await startMaintenanceRun(db, deps.queue, parse(Id, request.params).id, { task: 'verify', sample }, 'manual', currentUser(request).username);
    await audit.record({ actor: currentUser(request).username, action: 'repository.verify', subject: repo.name, detail: { runId: run.id, sample }, ip: request.ip });
    reply.code(202);
    return { runId: run.id };
  });

  app.post('/repositories/:id/gc', { config: { minRole: 'operator' }, schema: { params: Id, response: { 202: RunStartedSchema } } }, async (request, reply) => {
    const { repo, run } = await startMaintenanceRun(db, deps.queue, parse(Id, request.params).id, { task: 'gc' }, 'manual', currentUser(request).username);
    await audit.record({ actor: currentUser(request).username, action: 'repository.gc', subject: repo.name, detail: { runId: run.id }, ip: request.ip });
    reply.code(202);
    return { runId: run.id };
  });
}
