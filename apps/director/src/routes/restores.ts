import { RestoreRequestSchema } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { parse } from '../validate.ts';

/** A full VM restore: a run of kind 'restore' with one item, carried out by a Transporter. */
export async function restoreRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; queue: WorkQueue }): Promise<void> {
  const { db } = deps;
  app.post('/api/restores', { config: { minRole: 'operator' } }, async (request, reply) => {
    const body = parse(RestoreRequestSchema.extend({ vcenterId: z.uuid().optional() }), request.body);
    const point = await db.restorePoint.findUnique({ where: { id: body.restorePointId } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    // The vCenter the VM was backed up from, unless the operator names another.
    const origin = point.runVmId ? await db.runVm.findUnique({ where: { id: point.runVmId }, include: { run: { include: { job: true } } } }) : null;
    const vcenterId = body.vcenterId ?? origin?.run.job?.vcenterId;
    if (!vcenterId) throw new AppError('bad_request', 'the backup job of this restore point is gone: name the target vCenter (vcenterId)', [{ path: 'vcenterId', message: 'required' }]);
    if (!(await db.vCenter.findUnique({ where: { id: vcenterId } }))) throw new AppError('bad_request', 'no such vCenter', [{ path: 'vcenterId', message: 'unknown' }]);
    const run = await db.jobRun.create({
      data: {
        kind: body.drill ? 'drill' : 'restore',
        trigger: 'manual',
        requestedBy: request.user!.username,
        request: { ...body, vcenterId },
        vms: { create: [{ vmMoref: '', vmName: body.name, vmInstanceUuid: point.vmInstanceUuid }] },
      },
      include: { vms: true },
    });
    await deps.queue.enqueueRestore({ runVmId: run.vms[0]!.id });
    await deps.audit.record({ actor: request.user!.username, action: body.drill ? 'restore.drill' : 'restore.start', subject: body.name, detail: { restorePointId: point.id, from: point.vmName }, ip: request.ip });
    reply.code(202);
    return { runId: run.id };
  });
}
