import { SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import {
  EmailSettingsSchema,
  NotificationCreateSchema,
  NotificationDeliverySchema,
  NotificationEventsSchema,
  NotificationTargetSchema,
  NotificationUpdateSchema,
  OkSchema,
  type NotificationDelivery,
  type NotificationTargetDto,
} from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { operator, admin, currentUser } from '../auth/guard.ts';
import { testMessage } from '../notify/messages.ts';
import { deliver } from '../notify/senders.ts';
import { targetOf } from '../notify/notifier.ts';
import type { AuditLog } from '../services/audit.ts';
import { parse } from '../validate.ts';

const Id = z.object({ id: z.uuid() });
type Row = NonNullable<Awaited<ReturnType<Db['notificationTarget']['findUnique']>>>;

const dto = (r: Row): NotificationTargetDto => ({
  id: r.id,
  name: r.name,
  kind: r.kind === 'email' ? 'email' : 'webhook',
  url: r.url,
  email: r.email ? EmailSettingsSchema.parse(r.email) : null,
  hasSecret: r.secretSealed !== null,
  events: NotificationEventsSchema.parse(r.events),
  enabled: r.enabled,
  createdAt: r.createdAt.toISOString(),
});

/** Notification targets (admins change them; operators see them) and their recent deliveries. */
export async function notificationRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; secretKey: Buffer }): Promise<void> {
  const { db, audit } = deps;
  const load = async (id: string) => {
    const row = await db.notificationTarget.findUnique({ where: { id } });
    if (!row) throw new AppError('not_found', 'no such notification target');
    return row;
  };

  app.get('/notifications', { ...operator, schema: { response: { 200: z.array(NotificationTargetSchema) } } }, async () => (await db.notificationTarget.findMany({ orderBy: { name: 'asc' } })).map(dto));

  app.post('/notifications', { ...admin, schema: { body: NotificationCreateSchema, response: { 201: NotificationTargetSchema } } }, async (request, reply) => {
    const body = parse(NotificationCreateSchema, request.body);
    if (await db.notificationTarget.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a notification target named ${body.name} already exists`);
    const secret = body.kind === 'webhook' ? body.secret : body.password;
    const row = await db.notificationTarget.create({
      data: {
        name: body.name,
        kind: body.kind,
        url: body.kind === 'webhook' ? body.url : null,
        email: body.kind === 'email' ? body.email : undefined,
        secretSealed: secret ? sealSecret(deps.secretKey, SECRET_LABELS.notificationSecret, secret) : null,
        events: body.events,
        enabled: body.enabled,
      },
    });
    await audit.record({ actor: currentUser(request).username, action: 'notification.create', subject: row.name, detail: { kind: row.kind, events: row.events }, ip: request.ip });
    reply.code(201);
    return dto(row);
  });

  app.patch('/notifications/:id', { ...admin, schema: { params: Id, body: NotificationUpdateSchema, response: { 200: NotificationTargetSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const body = parse(NotificationUpdateSchema, request.body);
    await load(id);
    const row = await db.notificationTarget.update({ where: { id }, data: body });
    await audit.record({ actor: currentUser(request).username, action: 'notification.update', subject: row.name, detail: body, ip: request.ip });
    return dto(row);
  });

  app.delete('/notifications/:id', { ...admin, schema: { params: Id, response: { 200: OkSchema } } }, async (request) => {
    const row = await load(parse(Id, request.params).id);
    await db.notificationTarget.delete({ where: { id: row.id } });
    await audit.record({ actor: currentUser(request).username, action: 'notification.delete', subject: row.name, ip: request.ip });
    return { ok: true };
  });

  /** Sends a test message now and answers with the outcome (502 with the cause when it fails). */
  app.post('/notifications/:id/test', { ...admin, schema: { params: Id, response: { 200: OkSchema } } }, async (request) => {
    const row = await load(parse(Id, request.params).id);
    try {
      await deliver(targetOf(row, deps.secretKey), testMessage(row.name), `test-${Date.now()}`);
    } catch (err) {
      throw new AppError('bad_gateway', (err as Error).message);
    }
    await audit.record({ actor: currentUser(request).username, action: 'notification.test', subject: row.name, ip: request.ip });
    return { ok: true };
  });

  app.get('/notifications/:id/deliveries', { ...operator, schema: { params: Id, response: { 200: z.array(NotificationDeliverySchema) } } }, async (request): Promise<NotificationDelivery[]> => {
    const row = await load(parse(Id, request.params).id);
    const list = await db.notificationDelivery.findMany({ where: { targetId: row.id }, orderBy: { createdAt: 'desc' }, take: 100 });
    return list.map((d) => ({ id: d.id, kind: d.kind, subjectId: d.subjectId, status: d.status, attempts: d.attempts, lastError: d.lastError, createdAt: d.createdAt.toISOString(), sentAt: d.sentAt?.toISOString() ?? null }));
  });
}
