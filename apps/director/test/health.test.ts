import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TcpProxy } from './tcp-proxy.ts';
import { PG_SERVER, REDIS_URL, signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';

const pgTarget = new URL(PG_SERVER);
const redisTarget = new URL(REDIS_URL);

async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T = await fn();
  while (!ok(last)) {
    if (Date.now() > end) return last;
    await new Promise((r) => setTimeout(r, 300));
    last = await fn();
  }
  return last;
}

describe('health while Postgres and Redis go away and come back', () => {
  const pgProxy = new TcpProxy(pgTarget.hostname, Number(pgTarget.port || 5432));
  const redisProxy = new TcpProxy(redisTarget.hostname, Number(redisTarget.port || 6379));
  let d: TestDirector;
  let cookie: string;

  beforeAll(async () => {
    await pgProxy.up();
    await redisProxy.up();
    d = await startTestDirector({
      databaseUrl: (url) => {
        const u = new URL(url);
        u.hostname = '127.0.0.1';
        u.port = String(pgProxy.port);
        return u.toString();
      },
      redisUrl: `redis://127.0.0.1:${redisProxy.port}`,
    });
    cookie = await signInAdmin(d);
    await d.registry.heartbeat({
      id: `t-${d.database.name}`,
      name: 'local-transporter',
      host: 'localhost',
      version: 'test',
      pid: process.pid,
      startedAt: new Date().toISOString(),
      capabilities: { transports: ['nbdssl', 'nbd'], maxDiskTasks: 6 },
    });
  });
  afterAll(async () => {
    await d?.registry.remove(`t-${d.database.name}`).catch(() => undefined);
    await d?.close();
    await pgProxy.down();
    await redisProxy.down();
  });

  const health = async () => {
    const res = await d.app.fastify.inject({ method: 'GET', url: '/api/health', headers: { cookie } });
    return { status: res.statusCode, body: res.json() };
  };

  it('is all green with a registered Transporter', async () => {
    const h = await eventually(health, (h) => h.body.ok === true);
    expect(h.status).toBe(200);
    expect(h.body.postgres.ok).toBe(true);
    expect(h.body.redis.ok).toBe(true);
    expect(h.body.transporters[0]).toMatchObject({ name: 'local-transporter', online: true });
    expect(h.body.transporters[0].lastHeartbeat).toBeTruthy();
  });

  it('without a session shows only the lights, no details', async () => {
    const res = await d.app.fastify.inject({ method: 'GET', url: '/api/health' });
    expect(res.json()).toMatchObject({ postgres: { ok: true }, redis: { ok: true }, transporters: { online: 1, total: 1 } });
    expect(JSON.stringify(res.json())).not.toContain('localhost');
  });

  it('reports Postgres red with the reason, keeps answering, and recovers by itself', async () => {
    await pgProxy.down();
    const started = Date.now();
    const down = await eventually(health, (h) => h.body.postgres?.ok === false);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(down.status).toBe(503);
    expect(down.body.postgres.reason).toMatch(/PostgreSQL/);
    expect(down.body.redis.ok).toBe(true);
    // Other routes answer with a clear 503 instead of hanging or crashing.
    const users = await d.app.fastify.inject({ method: 'GET', url: '/api/users', headers: { cookie } });
    expect([401, 503]).toContain(users.statusCode);
    await pgProxy.up();
    const back = await eventually(health, (h) => h.body.postgres?.ok === true);
    expect(back.body.postgres.ok).toBe(true);
    const again = await eventually(
      async () => (await d.app.fastify.inject({ method: 'GET', url: '/api/users', headers: { cookie } })).statusCode,
      (s) => s === 200,
    );
    expect(again).toBe(200);
  });

  it('reports Redis red with the reason and recovers by itself', async () => {
    await redisProxy.down();
    const down = await eventually(health, (h) => h.body.redis?.ok === false);
    expect(down.status).toBe(503);
    expect(down.body.redis.reason).toMatch(/Redis/);
    expect(down.body.postgres.ok).toBe(true);
    await redisProxy.up();
    const back = await eventually(health, (h) => h.body.redis?.ok === true, 20_000);
    expect(back.body.redis.ok).toBe(true);
  });

  it('shows a Transporter that stopped heartbeating as offline', async () => {
    const h = await eventually(health, (h) => h.body.transporters?.[0]?.online === false, 10_000);
    expect(h.body.transporters[0]).toMatchObject({ name: 'local-transporter', online: false });
  });
});
