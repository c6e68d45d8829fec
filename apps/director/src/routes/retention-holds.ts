/**
 * Releasing the retention hold of a ransomware-suspect restore point (packages/core backup/anomaly.ts):
 * while one of a VM's points in a repository is suspect and unreleased, retention prunes nothing of that VM
 * there. An operator who has checked the VM (a planned re-encryption, a bulk import of compressed media)
 * releases it; the point keeps its flag and what was measured, and the release is audited with the reason.
 */
import { ReleaseHoldSchema, RepositoryRestorePointSchema, type RepositoryRestorePoint } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { currentUser, operator } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import { restorePointDtos } from '../services/restore-points.ts';
import { parse } from '../validate.ts';

const Id = z.object({ id: z.uuid() });

export async function retentionHoldRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog }): Promise<void> {
  const { db } = deps;

  app.post('/restore-points/:id/release-hold', { ...operator, schema: { params: Id, body: ReleaseHoldSchema, response: { 200: RepositoryRestorePointSchema } } }, async (request): Promise<RepositoryRestorePoint> => {
    const { id } = parse(Id, request.params);
    const { note } = parse(ReleaseHoldSchema, request.body);
    const user = currentUser(request);
    const point = await db.restorePoint.findUnique({ where: { id } });
    if (!point) throw new AppError('not_found', 'no such restore point');
    const what = `the restore point of ${point.vmName} taken ${point.createdAt.toISOString()}`;
    if (!point.ransomwareSuspect) throw new AppError('conflict', `${what} is not marked as a ransomware suspect: it holds no retention`);
    // Conditional, so two operators releasing at once are one release (and one audit entry).
    const released = await db.restorePoint.updateMany({ where: { id, ransomwareSuspect: true, holdReleasedAt: null }, data: { holdReleasedAt: new Date(), holdReleasedBy: user.username } });
    const after = await db.restorePoint.findUnique({ where: { id } });
    if (!after) throw new AppError('not_found', 'no such restore point');
    if (released.count !== 1) throw new AppError('conflict', `the hold of ${what} was already released by ${after.holdReleasedBy ?? 'someone'} at ${after.holdReleasedAt?.toISOString() ?? 'an unknown time'}`);
    await deps.audit.record({
      actor: user.username,
      action: 'restore-point.release-hold',
      subject: what,
      detail: { note, repositoryId: point.repositoryId, vmInstanceUuid: point.vmInstanceUuid, anomaly: point.anomaly },
      ip: request.ip,
    });
    const [dto] = await restorePointDtos(db, [after]);
    return dto!;
  });
}
