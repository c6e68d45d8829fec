import { describe, expect, it } from 'vitest';
import type { RepositoryCapacity } from '@vaultline/contracts';
import { signedInDirector, signInAs } from './helpers.ts';

const GiB = 1024 ** 3;

describe("a repository's capacity over time, for the repository page's chart (real Postgres)", () => {
  const ctx = signedInDirector();

  it('needs a session; a viewer gets the samples of the last N days oldest first, and the newest figures with their ratios', async () => {
    const db = ctx.d.db;
    const repo = await db.repository.create({ data: { name: 'capacity-repo', location: '/tmp/vaultline-capacity-test' } });
    const day = 86_400_000;
    const now = Date.now();
    // Written out of order, one of them long ago; sizes past 2^32 bytes.
    const rows = [
      { ago: 1 * day, stored: 4 * GiB, logical: 20 * GiB, unique: 8 * GiB, points: 2 },
      { ago: 40 * day, stored: 1 * GiB, logical: 10 * GiB, unique: 2 * GiB, points: 1 },
      { ago: 0.5 * day, stored: 6 * GiB, logical: 30 * GiB, unique: 12 * GiB, points: 3 },
      { ago: 3 * day, stored: 3 * GiB, logical: 15 * GiB, unique: 6 * GiB, points: 2 },
    ];
    await db.repositorySample.createMany({
      data: rows.map((r) => ({ repositoryId: repo.id, at: new Date(now - r.ago), storedBytes: BigInt(r.stored), logicalBytes: BigInt(r.logical), uniqueBytes: BigInt(r.unique), restorePoints: r.points, chunks: r.points * 100 })),
    });
    const url = (q = '') => `/api/repositories/${repo.id}/capacity${q}`;

    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: url() })).statusCode).toBe(401);

    const viewer = await signInAs(ctx.d, ctx.cookie, 'capacity-viewer', 'viewer');
    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: url(), headers: { cookie: viewer } });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as RepositoryCapacity;
    // 30 days by default: the sample of 40 days ago is left out.
    expect(body.days).toBe(30);
    expect(body.samples.map((s) => s.storedBytes)).toEqual([3 * GiB, 4 * GiB, 6 * GiB]);
    expect(body.samples[0]).toEqual({ at: new Date(now - 3 * day).toISOString(), storedBytes: 3 * GiB, logicalBytes: 15 * GiB, uniqueBytes: 6 * GiB, restorePoints: 2, chunks: 200 });
    expect(body.current).toMatchObject({ storedBytes: 6 * GiB, logicalBytes: 30 * GiB, restorePoints: 3, dedupRatio: 2.5, compressionRatio: 2 });

    const two = (await ctx.d.app.fastify.inject({ method: 'GET', url: url('?days=2'), headers: { cookie: viewer } })).json() as RepositoryCapacity;
    expect(two.samples.map((s) => s.logicalBytes)).toEqual([20 * GiB, 30 * GiB]);
    const all = (await ctx.d.app.fastify.inject({ method: 'GET', url: url('?days=365'), headers: { cookie: viewer } })).json() as RepositoryCapacity;
    expect(all.samples).toHaveLength(4);

    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: url('?days=0'), headers: { cookie: viewer } })).statusCode).toBe(400);
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/repositories/00000000-0000-4000-8000-000000000000/capacity`, headers: { cookie: viewer } })).statusCode).toBe(404);
  });

  it('answers no samples and no current figures for a repository never backed up into', async () => {
    const repo = await ctx.d.db.repository.create({ data: { name: 'capacity-empty', location: '/tmp/vaultline-capacity-empty' } });
    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/repositories/${repo.id}/capacity?days=7`, headers: { cookie: ctx.cookie } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ repositoryId: repo.id, days: 7, samples: [], current: null });
  });
});
