/**
 * The Director's entry point: config → logger → database (created and migrated:
 * the appliance upgrades itself) → TLS certificate → first admin → HTTPS + socket.io
 * → graceful close.
 */
import type { Socket } from 'node:net';
import path from 'node:path';
import { loadEnvOrExit } from '@vaultline/config';
import { applyMigrations, createDb, ensureDatabase, MIGRATIONS_DIR } from '@vaultline/db';
import { createLogger, stripUrlCredentials } from '@vaultline/logger';
import { connectRedis, EventBus, TransporterRegistry, WorkQueue } from '@vaultline/queue';
import { buildApp } from './app.ts';
import { attachRealtime } from './realtime/socket.ts';
import { loadSecretKey } from '@vaultline/appliance';
import { transporterBundle } from '@vaultline/remote';
import { loadTlsIdentity } from '@vaultline/tls';
import { ensureFirstAdmin, forgetFirstLogin } from './services/bootstrap.ts';
import { ensureDefaultRepository, registerVCenterFromEnv } from './services/env-bootstrap.ts';
import { recordRepositoryIdentities } from './services/repositories.ts';
import { vsphereConnector } from './services/vsphere-connector.ts';
import { startScheduler } from './scheduler/scheduler.ts';
import { startNotifier } from './notify/notifier.ts';
import { VERSION } from './version.ts';

/** After SIGTERM/SIGINT: requests still running this long are cut. */
const REQUEST_GRACE_MS = 3_000;
/** After SIGTERM/SIGINT, what has not closed by then is named in the log and the process exits with 1. */
const SHUTDOWN_DEADLINE_MS = 8_000;

async function main(): Promise<void> {
  const env = loadEnvOrExit('director');
  const log = createLogger({ name: 'director', level: env.VAULTLINE_LOG_LEVEL, pretty: process.stdout.isTTY, file: env.VAULTLINE_LOG_FILE });
  const dataDir = path.resolve(env.VAULTLINE_DATA_DIR);

  try {
    await ensureDatabase(env.DATABASE_URL);
    const migrated = await applyMigrations(env.DATABASE_URL, MIGRATIONS_DIR);
    if (migrated.applied.length) log.info({ applied: migrated.applied }, 'database migrated');
  } catch (err) {
    process.stderr.write(`vaultline director: cannot prepare the database at ${stripUrlCredentials(env.DATABASE_URL)}: ${stripUrlCredentials((err as Error).message)}\n`);
    process.exit(3);
  }

  // Before the first admin: the appliance console shows the fingerprint next to the one-time password.
  const tls = await loadTlsIdentity({ dataDir, certFile: env.VAULTLINE_TLS_CERT, keyFile: env.VAULTLINE_TLS_KEY, listenHost: env.VAULTLINE_HOST }).catch((err: unknown) => {
    process.stderr.write(`vaultline director: ${(err as Error).message}\n`);
    process.exit(2);
  });
  log.info({ certificate: tls.certFile, notAfter: tls.notAfter.toISOString(), generated: tls.generated }, `TLS certificate SHA-256 ${tls.fingerprint}`);

  const db = createDb(env.DATABASE_URL);
  const redis = connectRedis(env.REDIS_URL, { name: 'director' });
  const registry = new TransporterRegistry(redis, env.VAULTLINE_HEARTBEAT_MS, { namespace: env.VAULTLINE_REDIS_NAMESPACE });
  const secretKey = await loadSecretKey(dataDir, env.VAULTLINE_SECRET_KEY);
  const queue = new WorkQueue({ redisUrl: env.REDIS_URL, namespace: env.VAULTLINE_REDIS_NAMESPACE });
  const events = new EventBus(env.REDIS_URL, env.VAULTLINE_REDIS_NAMESPACE);
  const connector = vsphereConnector();
  const admin = await ensureFirstAdmin(db, dataDir);
  await registerVCenterFromEnv(env, db, connector, secretKey, log).catch((err: unknown) => log.error({ err }, 'registering the configured vCenter failed'));
  await ensureDefaultRepository(db, dataDir, log).catch((err: unknown) => log.error({ err }, 'creating the default repository failed'));
  void recordRepositoryIdentities(db, secretKey, log).catch((err: unknown) => log.warn({ err }, 'recording repository identities failed'));
  if (admin.created) log.info(`first admin created; credentials are in ${path.join(dataDir, 'first-login.txt')}`);

  const publicOrigin = env.VAULTLINE_PUBLIC_URL ? new URL(env.VAULTLINE_PUBLIC_URL).origin : null;
  const { fastify, health, inventory } = await buildApp({
    db,
    databaseUrl: env.DATABASE_URL,
    checkAnswers: env.NODE_ENV !== 'production',
    redis,
    registry,
    queue,
    events,
    connector,
    log,
    version: VERSION,
    secretKey,
    dataDir,
    tls,
    publicOrigin,
    webDist: env.VAULTLINE_WEB_DIST ?? path.resolve(import.meta.dirname, '../../web/dist'),
    onFirstPasswordChanged: () => forgetFirstLogin(dataDir),
    remote: {
      version: VERSION,
      // Built on first use from this appliance's own files and kept per content digest in the data dir.
      bundle: () => transporterBundle({ rootDir: path.resolve(import.meta.dirname, '../../..'), version: VERSION, cacheDir: path.join(dataDir, 'bundles') }),
      databaseUrl: env.DATABASE_URL,
      redisUrl: env.REDIS_URL,
      ...(env.VAULTLINE_TRANSPORTER_TLS_CA ? { tlsCaFile: env.VAULTLINE_TRANSPORTER_TLS_CA } : {}),
      namespace: env.VAULTLINE_REDIS_NAMESPACE,
      heartbeatMs: env.VAULTLINE_HEARTBEAT_MS,
      logLevel: env.VAULTLINE_LOG_LEVEL === 'silent' ? 'info' : env.VAULTLINE_LOG_LEVEL,
    },
    fileRestore: {
      idleMs: env.VAULTLINE_FLR_IDLE_MINUTES * 60_000,
      maxSessions: env.VAULTLINE_FLR_MAX_SESSIONS,
      maxPerUser: env.VAULTLINE_FLR_MAX_SESSIONS_PER_USER,
      maxLifetimeMs: env.VAULTLINE_FLR_MAX_HOURS * 3_600_000,
      ...(env.VAULTLINE_FLR_RUN_DIR ? { runDir: env.VAULTLINE_FLR_RUN_DIR } : {}),
    },
    sessionIdleMs: env.VAULTLINE_SESSION_IDLE_MINUTES * 60_000,
  });
  const realtime = attachRealtime(fastify.server, { db, health, log, events, sessionIdleMs: env.VAULTLINE_SESSION_IDLE_MINUTES * 60_000, publicOrigin });
  const scheduler = startScheduler({ db, queue, registry, log, publish: (e) => void events.publish(e), inventory: { inventory, secretKey } });
  const notifier = startNotifier({ db, secretKey, log, consoleUrl: env.VAULTLINE_PUBLIC_URL ?? null });
  await fastify.listen({ host: env.VAULTLINE_HOST, port: env.VAULTLINE_PORT });
  const connections = new Set<Socket>();
  fastify.server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });

  // SIGTERM always ends the process within 10 s: each part gets its turn, and at
  // the deadline whatever has not closed is named in the log and left behind.
  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    let pending = '';
    const force = setTimeout(() => {
      log.error({ signal, pending }, `shutdown: ${pending} did not close within ${SHUTDOWN_DEADLINE_MS / 1000} s; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    force.unref();
    const step = async (what: string, f: () => unknown) => {
      pending = what;
      try {
        await f();
      } catch (err) {
        log.warn({ err }, `shutdown: closing ${what} failed`);
      }
    };
    scheduler.stop();
    notifier.stop();
    await step('the live-event sockets and the HTTP server', async () => {
      // Requests get a moment to finish; what still runs then (a download can take hours) is cut.
      const cut = setTimeout(() => {
        log.warn({ connections: connections.size }, `shutdown: cutting the ${connections.size} connection(s) still busy after ${REQUEST_GRACE_MS / 1000} s`);
        fastify.server.closeAllConnections();
      }, REQUEST_GRACE_MS);
      try {
        await realtime.close(); // socket.io closes the HTTP server too, and waits for its connections
      } finally {
        clearTimeout(cut);
      }
    });
    await step('the file-restore sessions', () => fastify.close());
    await step('the work queue (Redis)', () => queue.close());
    await step('the live-event bus (Redis)', () => events.close());
    await step('the database connection', () => db.$disconnect());
    redis.disconnect();
    process.exit(0);
  };
  process.on('SIGINT', () => void close('SIGINT'));
  process.on('SIGTERM', () => void close('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`vaultline director: ${stripUrlCredentials((err as Error)?.message ?? String(err))}\n`);
  process.exit(1);
});
