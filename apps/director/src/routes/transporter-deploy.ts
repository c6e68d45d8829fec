/**
 * Remote Transporters over SSH (admin only, audited): the routes of services/remote-transporters.ts.
 * The addresses they are given are routes/transporter-settings.ts.
 */
import {
  ApiErrorSchema,
  HostKeyConfirmationSchema,
  HostKeyConfirmSchema,
  ReauthSchema,
  RemoteAddResultSchema,
  RemoteDeployResultSchema,
  RemoteRemoveQuerySchema,
  RemoteRemoveResultSchema,
  RemoteRestartResultSchema,
  RemoteTransporterCreateSchema,
  RemoteTransporterSchema,
  RemoteTransporterStatusSchema,
} from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Redis, TransporterRegistry } from '@vaultline/queue';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { admin, currentUser } from '../auth/guard.ts';
import type { Credentials } from '../auth/credentials.ts';
import type { AuditLog } from '../services/audit.ts';
import type { RemoteTransporterConfig } from '../services/remote-transporter-env.ts';
import { RemoteTransporters, type Requester } from '../services/remote-transporters.ts';
import { parse } from '../validate.ts';

const Id = z.object({ id: z.string().min(1) });

export async function transporterDeployRoutes(
  app: FastifyInstance,
  deps: { db: Db; redis: Redis; audit: AuditLog; credentials: Credentials; secretKey: Buffer; registry: TransporterRegistry; remote?: RemoteTransporterConfig },
): Promise<void> {
  const remotes = new RemoteTransporters(deps);
  const who = (request: FastifyRequest): Requester => ({ actor: currentUser(request).username, ip: request.ip });
  const idOf = (request: FastifyRequest) => parse(Id, request.params).id;

  app.get('/transporters/remote', { ...admin, schema: { response: { 200: z.array(RemoteTransporterSchema) } } }, async () => remotes.list());

  app.post('/transporters/remote', { ...admin, schema: { body: RemoteTransporterCreateSchema, response: { 201: RemoteAddResultSchema, 409: z.union([HostKeyConfirmationSchema, ApiErrorSchema]) } } }, async (request, reply) => {
    const { status, body } = await remotes.add(parse(RemoteTransporterCreateSchema, request.body), who(request));
    reply.code(status);
    return body;
  });

  app.get('/transporters/remote/:id', { ...admin, schema: { params: Id, response: { 200: RemoteTransporterStatusSchema } } }, async (request) => remotes.status(idOf(request)));

  app.post('/transporters/remote/:id/deploy', { ...admin, schema: { params: Id, response: { 200: RemoteDeployResultSchema } } }, async (request) => remotes.deploy(idOf(request), who(request)));

  app.post('/transporters/remote/:id/upgrade', { ...admin, schema: { params: Id, response: { 200: RemoteDeployResultSchema } } }, async (request) => remotes.upgrade(idOf(request), who(request)));

  app.post('/transporters/remote/:id/restart', { ...admin, schema: { params: Id, response: { 200: RemoteRestartResultSchema } } }, async (request) => remotes.restart(idOf(request), who(request)));

  app.post('/transporters/remote/:id/host-key', { ...admin, schema: { params: Id, body: HostKeyConfirmSchema, response: { 200: RemoteTransporterSchema, 409: z.union([HostKeyConfirmationSchema, ApiErrorSchema]) } } }, async (request, reply) => {
    const id = idOf(request);
    const { status, body } = await remotes.repinHostKey(id, parse(HostKeyConfirmSchema, request.body).hostKeySha256, who(request));
    reply.code(status);
    return body;
  });

  app.delete('/transporters/remote/:id', { ...admin, schema: { params: Id, querystring: RemoteRemoveQuerySchema, body: ReauthSchema, response: { 200: RemoteRemoveResultSchema } } }, async (request) => {
    const id = idOf(request);
    const { force } = parse(RemoteRemoveQuerySchema, request.query);
    return remotes.remove(id, force, who(request), (name) => deps.credentials.reauthenticate(request, 'transporter.remote.remove', name));
  });
}
