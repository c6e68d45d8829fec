/**
 * The Director's entry point: config → logger → database (created and migrated:
 * the appliance upgrades itself) → first admin → HTTP + socket.io → graceful close.
 */
import path from 'node:path';
import { loadEnvOrExit } from '@vaultline/config';
import { applyMigrations, createDb, ensureDatabase, MIGRATIONS_DIR } from '@vaultline/db';
import { createLogger, stripUrlCredentials } from '@vaultline/logger';
import { connectRedis, EventBus, TransporterRegistry, WorkQueue } from '@vaultline/queue';
import { buildApp } from './app.ts';
import { attachRealtime } from './realtime/socket.ts';
import { loadSecretKey } from '@vaultline/appliance';
import { transporterBundle } from '@vaultline/remote';
import { ensureFirstAdmin, forgetFirstLogin } from './services/bootstrap.ts';
import { ensureDefaultRepository, registerVCenterFromEnv } from './services/env-bootstrap.ts';
import { recordRepositoryIdentities } from './services/repositories.ts';
import { vsphereConnector } from './services/vsphere-connector.ts';
import { startScheduler } from './scheduler/scheduler.ts';
import { startNotifier } from './notify/notifier.ts';
import { VERSION } from './version.ts';

async function main(): Promise<void> {
  const env = loadEnvOrExit('director');
  const log = createLogger({ name: 'director', level: env.VAULTLINE_LOG_LEVEL, pretty: process.stdout.isTTY });
  const dataDir = path.resolve(env.VAULTLINE_DATA_DIR);

  try {
    await ensureDatabase(env.DATABASE_URL);
    const migrated = await applyMigrations(env.DATABASE_URL, MIGRATIONS_DIR);
    if (migrated.applied.length) log.info({ applied: migrated.applied }, 'database migrated');
  } catch (err) {
    process.stderr.write(`vaultline director: cannot prepare the database at ${stripUrlCredentials(env.DATABASE_URL)}: ${stripUrlCredentials((err as Error).message)}\n`);
    process.exit(3);
  }

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

  const { fastify, health } = await buildApp({
    db,
    databaseUrl: env.DATABASE_URL,
    redis,
    registry,
    queue,
    events,
    connector,
    log,
    version: VERSION,
    secretKey,
    dataDir,
    webDist: env.VAULTLINE_WEB_DIST ?? path.resolve(import.meta.dirname, '../../web/dist'),
    onFirstPasswordChanged: () => forgetFirstLogin(dataDir),
    remote: {
      version: VERSION,
      // Built on first use from this appliance's own files and kept per content digest in the data dir.
      bundle: () => transporterBundle({ rootDir: path.resolve(import.meta.dirname, '../../..'), version: VERSION, cacheDir: path.join(dataDir, 'bundles') }),
      databaseUrl: env.DATABASE_URL,
      redisUrl: env.REDIS_URL,
      namespace: env.VAULTLINE_REDIS_NAMESPACE,
      heartbeatMs: env.VAULTLINE_HEARTBEAT_MS,
      logLevel: env.VAULTLINE_LOG_LEVEL === 'silent' ? 'info' : env.VAULTLINE_LOG_LEVEL,
    },
    fileRestore: { idleMs: env.VAULTLINE_FLR_IDLE_MINUTES * 60_000, maxSessions: env.VAULTLINE_FLR_MAX_SESSIONS },
  });
  const realtime = attachRealtime(fastify.server, { db, health, log, events });
  const scheduler = startScheduler({ db, queue, log });
  const notifier = startNotifier({ db, secretKey, log, consoleUrl: env.VAULTLINE_PUBLIC_URL ?? null });
  await fastify.listen({ host: env.VAULTLINE_HOST, port: env.VAULTLINE_PORT });

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    scheduler.stop();
    notifier.stop();
    await realtime.close().catch(() => undefined);
    await fastify.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    await events.close().catch(() => undefined);
    await db.$disconnect().catch(() => undefined);
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
