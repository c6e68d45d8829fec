import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, pingRedis, redisReady, TransporterRegistry } from '../src/index.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('TransporterRegistry against real Redis', () => {
  const redis = connectRedis(REDIS_URL);
  beforeAll(async () => {
    await redisReady(redis);
  });
  afterAll(async () => {
    redis.disconnect();
  });

  it('answers ping', async () => {
    expect(await pingRedis(redis)).toBeNull();
  });

  it('marks a Transporter offline after it misses heartbeats', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const registry = new TransporterRegistry(redis, 1000, { namespace: `test-${randomUUID()}`, now: () => now });
    const id = `test-${randomUUID()}`;
    await registry.heartbeat({
      id,
      name: id,
      host: 'h',
      version: '0',
      pid: 1,
      startedAt: now.toISOString(),
      capabilities: { transports: ['nbdssl'], maxDiskTasks: 6 },
    });
    expect((await registry.list()).find((t) => t.id === id)?.online).toBe(true);
    now = new Date(now.getTime() + 3500);
    expect((await registry.list()).find((t) => t.id === id)?.online).toBe(false);
    await registry.remove(id);
    expect((await registry.list()).find((t) => t.id === id)).toBeUndefined();
  });

  it('reports an unreachable Redis with a reason instead of hanging', async () => {
    const dead = connectRedis('redis://127.0.0.1:1');
    try {
      const reason = await pingRedis(dead, 1000);
      expect(reason).toBeTruthy();
    } finally {
      dead.disconnect();
    }
  });
});
