import { TransporterEndpointsSchema, TransporterEndpointsViewSchema, TransporterLoadHistorySchema, TransporterLoadQuerySchema, type TransporterEndpointsView, type TransporterLoadHistory } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { FastifyInstance } from 'fastify';
import { admin, currentUser, viewer } from '../auth/guard.ts';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { ENDPOINTS_SETTING, requireRemoteConfig, transporterEndpoints, urlForTransporters, type RemoteTransporterConfig } from '../services/remote-transporter-env.ts';
import { parse } from '../validate.ts';
import { z } from 'zod';

const TransporterId = z.object({ id: z.string().min(1).max(64) });

/** The addresses remote Transporters reach PostgreSQL and Redis at (admin only, audited); used at their next deploy. */
export async function transporterSettingsRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; remote?: RemoteTransporterConfig }): Promise<void> {
  const { db, audit } = deps;

  app.get('/settings/transporter-endpoints', { ...admin, schema: { response: { 200: TransporterEndpointsViewSchema } } }, async (): Promise<TransporterEndpointsView> => {
    const c = requireRemoteConfig(deps.remote);
    const ep = await transporterEndpoints(db);
    // The URLs as remote Transporters get them, without credentials.
    const shown = (u: string) => {
      const x = new URL(u);
      x.username = x.username ? '***' : '';
      x.password = '';
      return x.href;
    };
    return { ...ep, databaseUrl: shown(urlForTransporters(c.databaseUrl, ep.databaseAddress)), redisUrl: shown(urlForTransporters(c.redisUrl, ep.redisAddress)) };
  });

  /** A Transporter's load over the last `hours` (samples its heartbeat stored), oldest first. */
  app.get('/transporters/:id/load', { ...viewer, schema: { params: TransporterId, querystring: TransporterLoadQuerySchema, response: { 200: TransporterLoadHistorySchema } } }, async (request): Promise<TransporterLoadHistory> => {
    const { id } = parse(TransporterId, request.params);
    const { hours } = parse(TransporterLoadQuerySchema, request.query);
    if (!(await db.transporter.findUnique({ where: { id }, select: { id: true } }))) throw new AppError('not_found', 'no such Transporter');
    const rows = await db.transporterSample.findMany({ where: { transporterId: id, at: { gte: new Date(Date.now() - hours * 3_600_000) } }, orderBy: [{ at: 'asc' }, { id: 'asc' }] });
    return {
      transporterId: id,
      hours,
      at: rows.map((r) => r.at.getTime()),
      activeDisks: rows.map((r) => r.activeDisks),
      cpuPercent: rows.map((r) => r.cpuPercent),
      load1: rows.map((r) => r.load1),
      rssBytes: rows.map((r) => Number(r.rssBytes)),
    };
  });

  app.put('/settings/transporter-endpoints', { ...admin, schema: { body: TransporterEndpointsSchema, response: { 200: TransporterEndpointsSchema } } }, async (request) => {
    const body = parse(TransporterEndpointsSchema, request.body);
    await db.setting.upsert({ where: { key: ENDPOINTS_SETTING }, create: { key: ENDPOINTS_SETTING, value: body }, update: { value: body } });
    await audit.record({ actor: currentUser(request).username, action: 'settings.transporter-endpoints', detail: body, ip: request.ip });
    return body;
  });
}
