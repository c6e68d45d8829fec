import { DrillCreateSchema, DrillJobSchema, DrillRunsStartedSchema, DrillUpdateSchema, OkSchema } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { viewer, operator, currentUser } from '../auth/guard.ts';
import { cronProblem } from '../services/schedules.ts';
import type { AuditLog } from '../services/audit.ts';
import { drillDto, drillsWithResults, startDrillRuns } from '../services/drills.ts';
import { parse } from '../validate.ts';

const Id = z.object({ id: z.uuid() });

function checkSchedule(schedule: string | null | undefined): void {
  const bad = schedule ? cronProblem(schedule) : null;
  if (bad) throw new AppError('bad_request', `schedule "${schedule}" is not a cron expression: ${bad}`, [{ path: 'schedule', message: bad }]);
}

/** Restore drill jobs: list, create, change, delete, run now. */
export async function drillRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; queue: WorkQueue }): Promise<void> {
  const { db, audit } = deps;
  const load = async (id: string) => {
    const drill = await db.drillJob.findUnique({ where: { id } });
    if (!drill) throw new AppError('not_found', 'no such drill');
    return drill;
  };

  app.get('/drills', { ...viewer, schema: { response: { 200: z.array(DrillJobSchema) } } }, async () => drillsWithResults(db));

  app.get('/drills/:id', { ...viewer, schema: { params: Id, response: { 200: DrillJobSchema } } }, async (request) => {
    const [drill] = await drillsWithResults(db, { id: parse(Id, request.params).id });
    if (!drill) throw new AppError('not_found', 'no such drill');
    return drill;
  });

  app.post('/drills', { ...operator, schema: { body: DrillCreateSchema, response: { 201: DrillJobSchema } } }, async (request, reply) => {
    const body = parse(DrillCreateSchema, request.body);
    if (!(await db.vCenter.findUnique({ where: { id: body.vcenterId } }))) throw new AppError('bad_request', 'no such vCenter', [{ path: 'vcenterId', message: 'unknown' }]);
    if (await db.drillJob.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a drill named ${body.name} already exists`);
    checkSchedule(body.schedule);
    const drill = await db.drillJob.create({ data: body });
    await audit.record({ actor: currentUser(request).username, action: 'drill.create', subject: drill.name, ip: request.ip });
    reply.code(201);
    return drillDto(drill);
  });

  app.patch('/drills/:id', { ...operator, schema: { params: Id, body: DrillUpdateSchema, response: { 200: DrillJobSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const body = parse(DrillUpdateSchema, request.body);
    await load(id);
    checkSchedule(body.schedule);
    const drill = await db.drillJob.update({ where: { id }, data: body });
    await audit.record({ actor: currentUser(request).username, action: 'drill.update', subject: drill.name, detail: body, ip: request.ip });
    return (await drillsWithResults(db, { id: drill.id }))[0]!;
  });

  app.delete('/drills/:id', { ...operator, schema: { params: Id, response: { 200: OkSchema } } }, async (request) => {
    const drill = await load(parse(Id, request.params).id);
    await db.drillJob.delete({ where: { id: drill.id } });
    await audit.record({ actor: currentUser(request).username, action: 'drill.delete', subject: drill.name, ip: request.ip });
    return { ok: true };
  });

  app.post('/drills/:id/run', { ...operator, schema: { params: Id, response: { 202: DrillRunsStartedSchema } } }, async (request, reply) => {
    const { drill, runIds } = await startDrillRuns(db, deps.queue, parse(Id, request.params).id, 'manual', currentUser(request).username);
    await audit.record({ actor: currentUser(request).username, action: 'drill.run', subject: drill.name, detail: { runIds }, ip: request.ip });
    reply.code(202);
    return { runIds };
  });
}
