import { InstantRecoveryCreateSchema, InstantRecoveryMigrateSchema, InstantRecoverySchema } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { EventBus, TransporterRegistry } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { viewer, operator, currentUser } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import { createInstantRecovery, getInstantRecovery, listInstantRecoveries, requestInstantAction } from '../services/instant-recoveries.ts';
import { parse } from '../validate.ts';

const Id = z.object({ id: z.uuid() });

/**
 * Instant recovery to vSphere: list, request, migrate, discard. Requests and actions are rows a Transporter
 * carries out (services/instant-recoveries.ts), so each answer is the row as it stands; the event only saves the
 * Transporter its next poll.
 */
export async function instantRecoveryRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; registry: TransporterRegistry; events: EventBus }): Promise<void> {
  const { db, audit } = deps;
  const nudge = (id: string) => void deps.events.publish({ type: 'instant-recovery.requested', id });

  app.get('/instant-recoveries', { ...viewer, schema: { response: { 200: z.array(InstantRecoverySchema) } } }, async () => listInstantRecoveries(db));

  app.get('/instant-recoveries/:id', { ...viewer, schema: { params: Id, response: { 200: InstantRecoverySchema } } }, async (request) => getInstantRecovery(db, parse(Id, request.params).id));

  app.post('/instant-recoveries', { ...operator, schema: { body: InstantRecoveryCreateSchema, response: { 201: InstantRecoverySchema } } }, async (request, reply) => {
    const body = parse(InstantRecoveryCreateSchema, request.body);
    const { id, sourceVm } = await createInstantRecovery(db, await deps.registry.list(), body, currentUser(request).username);
    await audit.record({ actor: currentUser(request).username, action: 'instant-recovery.start', subject: body.name, detail: { id, restorePointId: body.restorePointId, from: sourceVm, host: body.host }, ip: request.ip });
    nudge(id);
    reply.code(201);
    return getInstantRecovery(db, id);
  });

  app.post('/instant-recoveries/:id/migrate', { ...operator, schema: { params: Id, body: InstantRecoveryMigrateSchema, response: { 202: InstantRecoverySchema } } }, async (request, reply) => {
    const { id } = parse(Id, request.params);
    const { datastore } = parse(InstantRecoveryMigrateSchema, request.body);
    const row = await requestInstantAction(db, id, { kind: 'migrate', datastore });
    await audit.record({ actor: currentUser(request).username, action: 'instant-recovery.migrate', subject: row.name, detail: { id, datastore }, ip: request.ip });
    nudge(id);
    reply.code(202);
    return row;
  });

  app.post('/instant-recoveries/:id/discard', { ...operator, schema: { params: Id, response: { 202: InstantRecoverySchema } } }, async (request, reply) => {
    const { id } = parse(Id, request.params);
    const row = await requestInstantAction(db, id, { kind: 'discard' });
    await audit.record({ actor: currentUser(request).username, action: 'instant-recovery.discard', subject: row.name, detail: { id }, ip: request.ip });
    nudge(id);
    reply.code(202);
    return row;
  });
}
