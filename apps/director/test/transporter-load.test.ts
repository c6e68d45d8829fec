import { describe, expect, it } from 'vitest';
import type { TransporterLoadHistory } from '@vaultline/contracts';
import { signedInDirector, signInAs } from './helpers.ts';

describe("a Transporter's load over time, for the Transporters page (real Postgres)", () => {
  const ctx = signedInDirector();

  it('needs a session; a viewer gets the samples of the last N hours oldest first, column by column', async () => {
    const db = ctx.d.db;
    await db.transporter.create({ data: { id: 'load-test-01', name: 'load-test-01', host: 'h', version: '1' } });
    const now = Date.now();
    const hour = 3_600_000;
    await db.transporterSample.createMany({
      data: [2, 30, 0.5, 1].map((h, i) => ({ transporterId: 'load-test-01', at: new Date(now - h * hour), activeDisks: i, cpuPercent: 10 * i, load1: i / 2, rssBytes: BigInt(i) << 32n })),
    });
    const url = (q = '') => `/api/transporters/load-test-01/load${q}`;
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: url() })).statusCode).toBe(401);

    const viewer = await signInAs(ctx.d, ctx.cookie, 'load-viewer', 'viewer');
    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: url(), headers: { cookie: viewer } });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as TransporterLoadHistory;
    // 24 hours by default: the sample of 30 hours ago is left out.
    expect(body).toEqual({
      transporterId: 'load-test-01',
      hours: 24,
      at: [now - 2 * hour, now - hour, now - 0.5 * hour],
      activeDisks: [0, 3, 2],
      cpuPercent: [0, 30, 20],
      load1: [0, 1.5, 1],
      rssBytes: [0, 3 * 2 ** 32, 2 * 2 ** 32],
    });
    const one = (await ctx.d.app.fastify.inject({ method: 'GET', url: url('?hours=1'), headers: { cookie: viewer } })).json() as TransporterLoadHistory;
    expect(one.activeDisks).toEqual([2]);
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: url('?hours=1000'), headers: { cookie: viewer } })).statusCode).toBe(400);
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/transporters/nobody-here/load', headers: { cookie: viewer } })).statusCode).toBe(404);
  });
});
