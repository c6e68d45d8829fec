import { TransporterEndpointsSchema, TransporterEndpointsViewSchema, type TransporterEndpointsView } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { FastifyInstance } from 'fastify';
import { admin, currentUser } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import { ENDPOINTS_SETTING, requireRemoteConfig, transporterEndpoints, urlForTransporters, type RemoteTransporterConfig } from '../services/remote-transporter-env.ts';
import { parse } from '../validate.ts';

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

  app.put('/settings/transporter-endpoints', { ...admin, schema: { body: TransporterEndpointsSchema, response: { 200: TransporterEndpointsSchema } } }, async (request) => {
    const body = parse(TransporterEndpointsSchema, request.body);
    await db.setting.upsert({ where: { key: ENDPOINTS_SETTING }, create: { key: ENDPOINTS_SETTING, value: body }, update: { value: body } });
    await audit.record({ actor: currentUser(request).username, action: 'settings.transporter-endpoints', detail: body, ip: request.ip });
    return body;
  });
}
