import { randomUUID } from 'node:crypto';
import type { InjectOptions } from 'fastify';
import type { JobHistory, JobsHistory } from '@vaultline/contracts';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { signedInDirector, signInAs } from './helpers.ts';

describe('job history: a job’s latest runs with durations, and every job’s bars in one answer (real Postgres)', () => {
  const ctx = signedInDirector();
  let viewer: string;
  let jobId: string;
  let otherJobId: string;
  let idleJobId: string;
  /** Ids of the runs of `jobId`, oldest first. */
  const runIds: string[] = [];
  const t0 = Date.parse('2026-12-05T14:00:00Z');
  const at = (minutes: number, seconds = 0) => new Date(t0 + minutes * 60_000 + seconds * 1000);

  beforeAll(async () => {
    const db = ctx.d.db;
    viewer = await signInAs(ctx.d, ctx.cookie, 'hilda', 'viewer');
    const vc = await db.vCenter.create({ data: { name: 'vc', url: 'https://vc/sdk', username: 'u', passwordSealed: 'x' } });
    const repo = await db.repository.create({ data: { name: 'r', location: '/tmp/none' } });
    const job = (name: string) => db.backupJob.create({ data: { name, vcenterId: vc.id, repositoryId: repo.id, sources: [{ moref: 'vm-1', name: 'app01' }] } });
    [jobId, otherJobId, idleJobId] = (await Promise.all([job('nightly'), job('hourly'), job('never run')])).map((j) => j.id) as [string, string, string];

    // 35 runs an hour apart, written newest first (the API orders them): each took (i + 1) × 10 s and read
    // 1 MiB per disk per step; the 3rd is a warning, the 5th failed, the 6th cancelled while queued.
    for (let i = 34; i >= 0; i--) {
      const status = i === 34 ? 'running' : i === 2 ? 'warning' : i === 4 ? 'failed' : i === 5 ? 'cancelled' : 'succeeded';
      const started = i === 5 ? null : at(i * 60);
      const finished = i === 34 ? null : i === 5 ? at(i * 60, 1) : at(i * 60, (i + 1) * 10);
      const run = await db.jobRun.create({
        data: {
          jobId,
          status,
          trigger: i % 2 ? 'manual' : 'schedule',
          createdAt: at(i * 60, -1),
          startedAt: started,
          finishedAt: finished,
          vms: { create: [{ vmMoref: 'vm-1', vmName: 'app01', status, disks: { create: [2000, 2001].map((deviceKey) => ({ deviceKey, label: `disk ${deviceKey}`, capacityBytes: 1n << 30n, bytesRead: BigInt((i + 1) << 20), bytesWritten: BigInt((i + 1) << 19) })) } }] },
        },
      });
      runIds[i] = run.id;
    }
    await db.jobRun.create({ data: { jobId: otherJobId, status: 'succeeded', createdAt: at(10), startedAt: at(10), finishedAt: at(11) } });
    // Runs of no job (a restore) are in no history.
    await db.jobRun.create({ data: { kind: 'restore', status: 'succeeded', createdAt: at(12), startedAt: at(12), finishedAt: at(13) } });
  });

  const get = (url: string, cookie: string | null = viewer, o: Partial<InjectOptions> = {}) =>
    ctx.d.app.fastify.inject({ method: 'GET', url, ...(cookie ? { headers: { cookie } } : {}), ...o });

  it('answers a viewer with the latest 30 runs by default, oldest first, with durations, bytes, kind and trigger', async () => {
    const res = await get(`/api/jobs/${jobId}/history`);
    expect(res.statusCode, res.body).toBe(200);
    const history = res.json() as JobHistory;
    expect(history.jobId).toBe(jobId);
    expect(history.runs.map((r) => r.id)).toEqual(runIds.slice(5));
    const [cancelled, ...rest] = history.runs;
    // Cancelled before it started: no time spent.
    expect(cancelled).toMatchObject({ status: 'cancelled', startedAt: null, durationSeconds: 0 });
    expect(rest[0]).toEqual({
      id: runIds[6],
      status: 'succeeded',
      kind: 'backup',
      trigger: 'schedule',
      createdAt: at(360, -1).toISOString(),
      startedAt: at(360).toISOString(),
      finishedAt: at(360, 70).toISOString(),
      durationSeconds: 70,
      bytesRead: 2 * (7 << 20),
      bytesWritten: 2 * (7 << 19),
    });
    // Still running: no duration yet.
    expect(history.runs.at(-1)).toMatchObject({ id: runIds[34], status: 'running', finishedAt: null, durationSeconds: null });
    expect(history.runs.slice(1, -1).map((r) => r.durationSeconds)).toEqual(Array.from({ length: 28 }, (_, k) => (k + 7) * 10));
  });

  it('takes a limit of 1 to 200', async () => {
    const few = (await get(`/api/jobs/${jobId}/history?limit=5`)).json() as JobHistory;
    expect(few.runs.map((r) => r.id)).toEqual(runIds.slice(30));
    const all = (await get(`/api/jobs/${jobId}/history?limit=200`)).json() as JobHistory;
    expect(all.runs.map((r) => r.id)).toEqual(runIds);
    expect(all.runs.slice(0, 6).map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'warning', 'succeeded', 'failed', 'cancelled']);
    for (const limit of ['0', '201', 'x', '1.5']) expect((await get(`/api/jobs/${jobId}/history?limit=${limit}`)).statusCode, limit).toBe(400);
  });

  it('answers an empty history for a job never run', async () => {
    const res = await get(`/api/jobs/${idleJobId}/history`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ jobId: idleJobId, runs: [] });
  });

  it('refuses without a session (401), and names an unknown job (404) or a malformed id (400)', async () => {
    expect((await get(`/api/jobs/${jobId}/history`, null)).statusCode).toBe(401);
    expect((await get('/api/jobs/history', null)).statusCode).toBe(401);
    const unknown = await get(`/api/jobs/${randomUUID()}/history`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'not_found' });
    expect((await get('/api/jobs/not-a-uuid/history')).statusCode).toBe(400);
  });

  it('lists every job’s latest runs (12 by default) for the Jobs list, in one answer, a job never run with none', async () => {
    const res = await get('/api/jobs/history');
    expect(res.statusCode, res.body).toBe(200);
    const all = res.json() as JobsHistory;
    // Jobs by name, as the list shows them.
    expect(all.map((h) => h.jobId)).toEqual([otherJobId, idleJobId, jobId]);
    const mine = all.find((h) => h.jobId === jobId)!;
    expect(mine.runs.map((r) => r.id)).toEqual(runIds.slice(23));
    expect(mine.runs[0]).toEqual({ id: runIds[23], status: 'succeeded', createdAt: at(23 * 60, -1).toISOString(), startedAt: at(23 * 60).toISOString(), durationSeconds: 240 });
    expect(mine.runs.at(-1)).toMatchObject({ status: 'running', durationSeconds: null });
    expect(all.find((h) => h.jobId === otherJobId)!.runs).toEqual([expect.objectContaining({ status: 'succeeded', durationSeconds: 60 })]);
    expect(all.find((h) => h.jobId === idleJobId)!.runs).toEqual([]);
    const three = (await get('/api/jobs/history?limit=3')).json() as JobsHistory;
    expect(three.find((h) => h.jobId === jobId)!.runs.map((r) => r.id)).toEqual(runIds.slice(32));
    expect((await get('/api/jobs/history?limit=51')).statusCode).toBe(400);
  });

  it('reads the bars of all jobs in one query, however many jobs there are', async () => {
    const db = ctx.d.db;
    const vc = await db.vCenter.findFirstOrThrow();
    const repo = await db.repository.findFirstOrThrow();
    await db.backupJob.createMany({ data: Array.from({ length: 20 }, (_, i) => ({ name: `extra ${i}`, vcenterId: vc.id, repositoryId: repo.id, sources: [] })) });
    const raw = vi.spyOn(db, '$queryRaw');
    try {
      const res = await get('/api/jobs/history');
      expect(res.statusCode).toBe(200);
      expect((res.json() as JobsHistory).length).toBe(23);
      // The session's own lookup does not use raw SQL: this one call is the runs of all 23 jobs.
      expect(raw).toHaveBeenCalledTimes(1);
    } finally {
      raw.mockRestore();
    }
  });
});
