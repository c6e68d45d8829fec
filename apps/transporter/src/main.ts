/**
 * The Transporter: a worker with no listening port. For now it registers and
 * heartbeats; backup and restore handlers arrive with the [Transporter] issue.
 */
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { ConfigError, loadEnv } from '@vaultline/config';
import { createLogger } from '@vaultline/logger';
import { connectRedis, TransporterRegistry } from '@vaultline/queue';
import { Heartbeat } from './heartbeat.ts';
import { transporterId } from './identity.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function main(): Promise<void> {
  let env;
  try {
    env = loadEnv();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vaultline transporter: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ name: 'transporter', level: env.VAULTLINE_LOG_LEVEL, pretty: process.stdout.isTTY });
  const dataDir = path.resolve(env.VAULTLINE_DATA_DIR);
  const id = await transporterId(dataDir, env.VAULTLINE_TRANSPORTER_ID);
  const redis = connectRedis(env.REDIS_URL, { name: `transporter:${id}` });
  const registry = new TransporterRegistry(redis, env.VAULTLINE_HEARTBEAT_MS, { namespace: env.VAULTLINE_REDIS_NAMESPACE });
  const heartbeat = new Heartbeat(
    registry,
    {
      id,
      name: env.VAULTLINE_TRANSPORTER_NAME ?? id,
      host: os.hostname(),
      version: VERSION,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      capabilities: {
        transports: ['nbdssl', 'nbd'],
        maxDiskTasks: env.VAULTLINE_MAX_DISK_TASKS,
        ...(env.VAULTLINE_PROXY_VM_UUID ? { proxyVmUuid: env.VAULTLINE_PROXY_VM_UUID } : {}),
      },
    },
    env.VAULTLINE_HEARTBEAT_MS,
    log,
  );
  // Beat as soon as Redis is (again) ready, then on the interval.
  redis.on('ready', () => void heartbeat.beat());
  redis.once('ready', () => log.info({ id }, 'transporter registered'));
  heartbeat.start();

  const close = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await heartbeat.stop();
    redis.disconnect();
    process.exit(0);
  };
  process.on('SIGINT', () => void close('SIGINT'));
  process.on('SIGTERM', () => void close('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`vaultline transporter: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
