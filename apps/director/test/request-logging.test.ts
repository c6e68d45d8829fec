import { describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

describe('request logging (real Postgres/Redis)', () => {
  const ctx = signedInDirector();

  it('logs each request once, at debug, with its status and duration; nothing about it at info', async () => {
    const before = ctx.d.logs.length;
    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/jobs', headers: { cookie: ctx.cookie } });
    expect(res.statusCode).toBe(200);
    const lines = ctx.d.logs.slice(before).map((l) => JSON.parse(l) as { level: number; msg: string; url?: string; statusCode?: number; ms?: number });
    const about = lines.filter((l) => l.url === '/api/jobs' || /request/.test(l.msg));
    expect(about).toHaveLength(1);
    expect(about[0]).toMatchObject({ level: 20, msg: 'request completed', url: '/api/jobs', statusCode: 200 });
    expect(about[0]!.ms).toBeGreaterThanOrEqual(0);
    expect(lines.filter((l) => l.level === 30 && /incoming request|request completed/.test(l.msg))).toEqual([]);
  });
});
