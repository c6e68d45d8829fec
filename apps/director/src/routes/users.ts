import { CreateUserRequestSchema, OkSchema, ReauthSchema, UserSchema } from '@vaultline/contracts';
import type { FastifyInstance } from 'fastify';
import type { Db } from '@vaultline/db';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { admin, currentUser } from '../auth/guard.ts';
import type { Credentials } from '../auth/credentials.ts';
import { parse } from '../validate.ts';
import type { AuditLog } from '../services/audit.ts';

const Id = z.object({ id: z.uuid() });

export async function userRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; credentials: Credentials }): Promise<void> {
  const { db, audit } = deps;

  app.get('/users', { ...admin, schema: { response: { 200: z.array(UserSchema) } } }, async () => {
    const users = await db.user.findMany({ orderBy: { username: 'asc' } });
    return users.map((u) => ({ id: u.id, username: u.username, role: u.role, mustChangePassword: u.mustChangePassword, totpEnabled: u.totpEnabledAt !== null, lastLoginAt: u.lastLoginAt }));
  });

  app.post('/users', { ...admin, schema: { body: CreateUserRequestSchema, response: { 201: UserSchema.omit({ lastLoginAt: true }) } } }, async (request, reply) => {
    const body = parse(CreateUserRequestSchema, request.body);
    if (await db.user.findUnique({ where: { username: body.username } })) throw new AppError('conflict', `user ${body.username} already exists`);
    const user = await db.user.create({
      data: { username: body.username, role: body.role, passwordHash: await deps.credentials.hash(body.password), mustChangePassword: true },
    });
    await audit.record({ actor: currentUser(request).username, action: 'user.create', subject: user.username, detail: { role: user.role }, ip: request.ip });
    reply.code(201);
    return { id: user.id, username: user.username, role: user.role, mustChangePassword: true, totpEnabled: false };
  });

  app.delete('/users/:id', { ...admin, schema: { params: Id, body: ReauthSchema, response: { 200: OkSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    if (id === currentUser(request).id) throw new AppError('conflict', 'you cannot delete your own account');
    const user = await db.user.findUnique({ where: { id } });
    if (!user) throw new AppError('not_found', 'no such user');
    if (user.role === 'admin' && (await db.user.count({ where: { role: 'admin' } })) <= 1) {
      throw new AppError('conflict', 'the last admin cannot be deleted');
    }
    await deps.credentials.reauthenticate(request, 'user.delete', user.username);
    await db.user.delete({ where: { id } });
    await audit.record({ actor: currentUser(request).username, action: 'user.delete', subject: user.username, ip: request.ip });
    return { ok: true };
  });
}
