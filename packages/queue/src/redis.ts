import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';

export type { Redis } from 'ioredis';

/**
 * A Redis URL as ioredis takes it, and its TLS options: rediss:// connects over TLS
 * and verifies the server's certificate and name; `?tls_ca_file=<path>` names the
 * CA (PEM) to verify it with instead of the system's (a remote Transporter's
 * install folder has the appliance's).
 */
export function redisEndpoint(url: string): { url: string; options: Pick<RedisOptions, 'tls'> } {
  const u = new URL(url);
  const caFile = u.searchParams.get('tls_ca_file');
  if (caFile === null) return { url, options: {} };
  if (u.protocol !== 'rediss:') throw new Error('tls_ca_file needs a rediss:// URL');
  u.searchParams.delete('tls_ca_file');
  return { url: u.href, options: { tls: { ca: readFileSync(caFile, 'utf8') } } };
}

/**
 * A connection that fails fast instead of queueing commands while Redis is
 * down (so health and API calls answer at once), and reconnects forever.
 */
export function connectRedis(url: string, opts: { name?: string } = {}): Redis {
  const endpoint = redisEndpoint(url);
  const redis = new Redis(endpoint.url, {
    ...endpoint.options,
    connectionName: opts.name,
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(200 * times, 2_000),
  });
  // Errors are reported through health; an unhandled 'error' event would crash the process.
  redis.on('error', () => undefined);
  return redis;
}

/** Resolves to null when Redis answers PING, or to the reason it does not. */
export async function pingRedis(redis: Redis, timeoutMs = 2_000): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = await Promise.race([
      redis.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return answer === 'PONG' ? null : `unexpected answer ${String(answer)}`;
  } catch (err) {
    const message = (err as Error).message;
    if (/Stream isn't writeable|enableOfflineQueue/.test(message)) return `not connected (status ${redis.status})`;
    return message;
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until the connection is ready (or rejects after timeoutMs). */
export async function redisReady(redis: Redis, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`Redis not ready within ${timeoutMs} ms (status ${redis.status})`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}
