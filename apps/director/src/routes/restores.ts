import { RestoreRequestSchema, RunStartedSchema } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors.ts';
import { currentUser } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import { VCenterProblem, type VCenterConnector } from '../services/vcenter-connector.ts';
import { startItemRun } from '../services/runs.ts';
import { parse } from '../validate.ts';
import { connectionOf } from './vcenters.ts';

/**
 * A restore (full VM, drill, replace, one disk into an existing VM, or onto KVM/Proxmox): a run
 * of kind 'restore' or 'drill' with one item, carried out by a Transporter.
 * What can be refused here is refused before the run exists: an unknown
 * restore point or vCenter, a name in use without a confirmed replace, a
 * replace of a VM that is not there, SAN as the write transport. The
 * Transporter checks all of it again (and the placement) before it creates
 * anything.
 */
export async function restoreRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; queue: WorkQueue; connector: VCenterConnector; secretKey: Buffer }): Promise<void> {
  const { db } = deps;
  app.post('/restores', { config: { minRole: 'operator' }, schema: { body: RestoreRequestSchema, response: { 202: RunStartedSchema } } }, async (request, reply) => {
    const body = parse(RestoreRequestSchema, request.body);
    const point = await db.restorePoint.findUnique({ where: { id: body.restorePointId } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    // Onto KVM/Proxmox: no vCenter is involved; the Transporter refuses a folder that is not new or empty.
    if (body.kvm) {
      const run = await startItemRun(db, (p) => deps.queue.enqueueRestore(p), {
        kind: 'restore',
        trigger: 'manual',
        requestedBy: currentUser(request).username,
        request: body,
        item: { name: body.name, instanceUuid: point.vmInstanceUuid, log: [] },
      });
      await deps.audit.record({ actor: currentUser(request).username, action: 'restore.kvm', subject: body.name, detail: { restorePointId: point.id, from: point.vmName, folder: body.kvm.folder, format: body.kvm.format }, ip: request.ip });
      reply.code(202);
      return { runId: run.id };
    }
    // The vCenter the VM was backed up from, unless the operator names another.
    const origin = point.runVmId ? await db.runVm.findUnique({ where: { id: point.runVmId }, include: { run: { include: { job: true } } } }) : null;
    const vcenterId = body.vcenterId ?? origin?.run.job?.vcenterId;
    if (!vcenterId) throw new AppError('bad_request', 'the backup job of this restore point is gone: name the target vCenter (vcenterId)', [{ path: 'vcenterId', message: 'required' }]);
    const vc = await db.vCenter.findUnique({ where: { id: vcenterId } });
    if (!vc) throw new AppError('bad_request', 'no such vCenter', [{ path: 'vcenterId', message: 'unknown' }]);
    if (body.transport === 'san') {
      throw new AppError('bad_request', "restores never write through SAN: writing into a VMFS LUN needs VDDK's private block-allocation lease; choose automatic, hotadd, nbdssl or nbd", [
        { path: 'transport', message: 'SAN is not a write transport' },
      ]);
    }

    // The name, checked against the target vCenter now (the Transporter checks again before it creates anything).
    const notes: { at: string; level: string; message: string }[] = [];
    if (!body.disk) {
      let names: string[] | null = null;
      try {
        names = (await deps.connector.listVms(connectionOf(vc, deps.secretKey))).map((v) => v.name);
      } catch (err) {
        const why = err instanceof VCenterProblem ? err.message : `its connection settings cannot be used: ${(err as Error).message}`;
        notes.push({ at: new Date().toISOString(), level: 'warn', message: `the Director could not check the name in ${vc.name} (${why}); the Transporter checks it before creating anything` });
      }
      const taken = names?.includes(body.name);
      if (taken && !body.replace) {
        throw new AppError('conflict', `a VM named ${body.name} already exists in ${vc.name}; choose another name, or replace it by sending replace: { confirm: "${body.name}" } (the original is then kept, powered off and renamed)`, [
          { path: 'name', message: 'in use' },
        ]);
      }
      if (names && !taken && body.replace) throw new AppError('bad_request', `there is no VM named ${body.name} in ${vc.name} to replace`, [{ path: 'replace', message: 'nothing to replace' }]);
    }

    const run = await startItemRun(db, (p) => deps.queue.enqueueRestore(p), {
      kind: body.drill ? 'drill' : 'restore',
      trigger: 'manual',
      requestedBy: currentUser(request).username,
      request: { ...body, vcenterId },
      item: { name: body.name, instanceUuid: point.vmInstanceUuid, log: notes },
    });
    const action = body.drill ? 'restore.drill' : body.replace ? 'restore.replace' : 'restore.start';
    await deps.audit.record({ actor: currentUser(request).username, action, subject: body.name, detail: { restorePointId: point.id, from: point.vmName, transport: body.transport }, ip: request.ip });
    reply.code(202);
    return { runId: run.id };
  });
}
