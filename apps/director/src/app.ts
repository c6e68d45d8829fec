/**
 * buildApp() assembles the Director without listening, so tests drive it with
 * inject() against real Postgres and Redis. Its server is HTTPS (with plain HTTP
 * on the same port answered by a redirect only): listen() serves that. server.ts
 * adds socket.io and graceful shutdown.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { EventBus, Redis, TransporterRegistry, WorkQueue } from '@vaultline/queue';
import { apiPlugin, decorateAuth, type ApiRoute } from './auth/guard.ts';
import { acceptPlainHttpOn, addSecurityHeaders, httpsRedirectServer } from './https.ts';
import { apiErrorOf } from './domain-errors.ts';
import { HealthMonitor } from './health/monitor.ts';
import { authRoutes } from './routes/auth.ts';
import { healthRoutes } from './routes/health.ts';
import { userRoutes } from './routes/users.ts';
import { vcenterRoutes } from './routes/vcenters.ts';
import { repositoryRoutes } from './routes/repositories.ts';
import { jobRoutes } from './routes/jobs.ts';
import { retentionHoldRoutes } from './routes/retention-holds.ts';
import { restorePointRoutes } from './routes/restore-points.ts';
import { restoreRoutes } from './routes/restores.ts';
import { backupRoutes } from './routes/backups.ts';
import { copyJobRoutes } from './routes/copy-jobs.ts';
import { drillRoutes } from './routes/drills.ts';
import { instantRecoveryRoutes } from './routes/instant-recoveries.ts';
import { maintenanceRoutes } from './routes/maintenance.ts';
import { notificationRoutes } from './routes/notifications.ts';
import { transporterDeployRoutes } from './routes/transporter-deploy.ts';
import { transporterSettingsRoutes } from './routes/transporter-settings.ts';
import type { RemoteTransporterConfig } from './services/remote-transporter-env.ts';
import { fileRestoreRoutes, type FileRestoreOptions } from './routes/file-restore.ts';
import { docsRoutes } from './routes/docs.ts';
import { overviewRoutes } from './routes/overview.ts';
import type { VCenterConnector } from './services/vcenter-connector.ts';
import { createAuditLog } from './services/audit.ts';
import type { PasswordCost } from './auth/passwords.ts';
import { Credentials } from './auth/credentials.ts';
import { RepositoryCache } from './services/repository-cache.ts';
import { startTransferCa } from './services/transfer-ca.ts';
import { InventoryCache, type InventoryCacheOptions } from './services/inventory-cache.ts';

export interface AppDeps {
  db: Db;
  databaseUrl: string;
  redis: Redis;
  registry: TransporterRegistry;
  queue: WorkQueue;
  events: EventBus;
  connector: VCenterConnector;
  log: Logger;
  version: string;
  secretKey: Buffer;
  dataDir: string;
  webDist?: string;
  /** The certificate and key served (PEM): the operator's own or the self-signed one (@vaultline/tls). */
  tls: { cert: string; key: string };
  /** The origin of VAULTLINE_PUBLIC_URL: besides https://<Host>, the one origin whose browsers may change state. */
  publicOrigin?: string | null;
  onFirstPasswordChanged?: () => Promise<void>;
  /** Remote Transporters over SSH: the bundle and the addresses handed to them. */
  remote?: RemoteTransporterConfig;
  /** File-level restore: idle timeout, session limits, mount folder. */
  fileRestore?: FileRestoreOptions;
  /** Sessions end after this long without a request (default 30 min). */
  sessionIdleMs?: number;
  /** scrypt cost for new hashes; tests pass a cheap one, the Director never sets it. */
  passwordCost?: PasswordCost;
  /** Overrides of HTTP_TIMEOUTS (tests). */
  httpTimeouts?: Partial<typeof HTTP_TIMEOUTS>;
  /** Overrides of how long vCenter inventories are kept and waited for (tests). */
  inventoryCache?: Partial<InventoryCacheOptions>;
  /** Check every answer against its route's declared schema (development and tests; schemas.ts). */
  checkAnswers?: boolean;
}

/**
 * No client holds a connection by being slow. A request (headers and its body of
 * at most 1 MiB) must have arrived within 30 s; a connection on which nothing
 * moved either way for 10 min is closed, so a download is never cut while it
 * flows, however long it takes, but one whose client stopped reading is; an idle
 * keep-alive connection is closed after 65 s (after the 60 s proxies in front
 * usually keep theirs, so they close first).
 */
export const HTTP_TIMEOUTS = { requestTimeout: 30_000, connectionTimeout: 10 * 60_000, keepAliveTimeout: 65_000 };

export interface App {
  fastify: FastifyInstance;
  health: HealthMonitor;
  /** Every API route with the access it declares (the route-access test calls each one). */
  routes: ApiRoute[];
  /** Repositories opened for requests, kept open between them. */
  repositories: RepositoryCache;
  /** The vCenters' inventories, kept for a while (the scheduler's run starts read through it too). */
  inventory: InventoryCache;
}

/**
 * Fastify logs two lines per request at info, which drowned the terminal: one line per request at debug
 * instead (in the log file, not on screen), and errors as before.
 */
class QuietRequestLog extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) return super.requestCompleted(error, request, reply);
    request.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request completed');
  }
}

function isDatabaseDown(err: unknown): boolean {
  const text = `${(err as Error)?.name ?? ''} ${(err as Error)?.message ?? ''} ${(err as { code?: string })?.code ?? ''}`;
  return /ECONNREFUSED|ETIMEDOUT|ENOTFOUND|Connection terminated|connect|DatabaseNotReachable|P1001|P1017|timeout exceeded when trying to connect/i.test(text);
}

export async function buildApp(deps: AppDeps): Promise<App> {
  // Typed as Fastify's default (http) instance, as the route plugins are; nothing in them depends on which.
  const fastify = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    https: { cert: deps.tls.cert, key: deps.tls.key },
    trustProxy: false,
    bodyLimit: 1024 * 1024,
    logController: new QuietRequestLog(),
    ...HTTP_TIMEOUTS,
    ...deps.httpTimeouts,
  }) as unknown as FastifyInstance;
  acceptPlainHttpOn(fastify.server, httpsRedirectServer());
  addSecurityHeaders(fastify);
  const health = new HealthMonitor({ databaseUrl: deps.databaseUrl, db: deps.db, redis: deps.redis, registry: deps.registry, version: deps.version, log: deps.log });
  const audit = createAuditLog(deps.db, deps.log);
  const credentials = new Credentials(deps.db, audit, deps.secretKey, deps.passwordCost);
  const repositories = new RepositoryCache(deps.db, deps.secretKey);
  const inventory = new InventoryCache(deps.connector, deps.inventoryCache);
  fastify.addHook('onClose', () => repositories.close());
  // Signs the Transporters' certificate requests and gives the Director its own, for repositories other Transporters serve.
  const transferCa = startTransferCa({ db: deps.db, secretKey: deps.secretKey, dataDir: deps.dataDir, log: deps.log });
  fastify.addHook('onClose', async () => transferCa.stop());

  await fastify.register(fastifyCookie);
  decorateAuth(fastify);

  fastify.setErrorHandler((err: Error, request, reply) => {
    // An AppError, or a package's error answered by the one table (domain-errors.ts).
    const api = apiErrorOf(err);
    if (api) {
      if (api.retryAfterSeconds !== undefined) void reply.header('retry-after', String(api.retryAfterSeconds));
      return reply.code(api.status).send({ code: api.code, message: api.message, ...(api.details ? { details: api.details } : {}) });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      return reply.code(status).send({ code: 'bad_request', message: err.message });
    }
    if (isDatabaseDown(err)) {
      request.log.warn({ err }, 'database unavailable');
      return reply.code(503).send({ code: 'service_unavailable', message: 'the database is not reachable right now; see /api/health' });
    }
    request.log.error({ err }, 'request failed');
    return reply.code(500).send({ code: 'internal', message: 'internal error; see the Director log' });
  });

  // Every API route lives in this one context: its hooks decide access for the route matched.
  const routes = async (api: FastifyInstance) => {
    await api.register(healthRoutes, { health, db: deps.db });
    await api.register(authRoutes, { db: deps.db, audit, credentials, onFirstPasswordChanged: deps.onFirstPasswordChanged });
    await api.register(userRoutes, { db: deps.db, audit, credentials });
    await api.register(vcenterRoutes, { db: deps.db, audit, credentials, secretKey: deps.secretKey, connector: deps.connector, inventory });
    await api.register(repositoryRoutes, { db: deps.db, audit, secretKey: deps.secretKey, repositories });
    await api.register(jobRoutes, { db: deps.db, audit, credentials, queue: deps.queue, events: deps.events, inventory, secretKey: deps.secretKey });
    await api.register(backupRoutes, { db: deps.db, audit, queue: deps.queue, inventory, secretKey: deps.secretKey });
    await api.register(restorePointRoutes, { db: deps.db, audit, credentials, repositories });
    await api.register(retentionHoldRoutes, { db: deps.db, audit });
    await api.register(restoreRoutes, { db: deps.db, audit, queue: deps.queue, connector: deps.connector, secretKey: deps.secretKey });
    await api.register(overviewRoutes, { db: deps.db, secretKey: deps.secretKey, inventory });
    await api.register(drillRoutes, { db: deps.db, audit, queue: deps.queue });
    await api.register(instantRecoveryRoutes, { db: deps.db, audit, registry: deps.registry, events: deps.events });
    await api.register(copyJobRoutes, { db: deps.db, audit, queue: deps.queue });
    await api.register(maintenanceRoutes, { db: deps.db, audit, queue: deps.queue });
    await api.register(notificationRoutes, { db: deps.db, audit, secretKey: deps.secretKey });
    await api.register(transporterDeployRoutes, { db: deps.db, redis: deps.redis, audit, credentials, secretKey: deps.secretKey, registry: deps.registry, remote: deps.remote });
    await api.register(transporterSettingsRoutes, { db: deps.db, audit, remote: deps.remote });
    await api.register(fileRestoreRoutes, { db: deps.db, audit, secretKey: deps.secretKey, repositories, dataDir: deps.dataDir, log: deps.log, ...(deps.fileRestore ? { options: deps.fileRestore } : {}) });
    await api.register(docsRoutes, { routes: table, version: deps.version });
  };
  const table: ApiRoute[] = [];
  await fastify.register(apiPlugin(deps.db, routes, table, { sessionIdleMs: deps.sessionIdleMs, publicOrigin: deps.publicOrigin ?? null, checkAnswers: deps.checkAnswers ?? false }), { prefix: '/api' });

  const webDist = deps.webDist ? path.resolve(deps.webDist) : undefined;
  if (webDist && existsSync(path.join(webDist, 'index.html'))) {
    await fastify.register(fastifyStatic, { root: webDist, wildcard: false });
    fastify.setNotFoundHandler((request, reply) => {
      if (request.method === 'GET' && !request.url.startsWith('/api/') && !request.url.startsWith('/socket.io')) {
        return reply.sendFile('index.html');
      }
      return reply.code(404).send({ code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
    });
  } else {
    fastify.setNotFoundHandler((request, reply) =>
      reply.code(404).send({ code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
    );
  }

  return { fastify, health, routes: table, repositories, inventory };
}
