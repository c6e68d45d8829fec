import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

describe('the Transporter list: status and what each is working on (real Postgres/Redis)', () => {
  const ctx = signedInDirector();
  const busy = () => `busy-${ctx.d.database.name}`;
  const idle = () => `idle-${ctx.d.database.name}`;
  beforeAll(async () => {
    for (const id of [busy(), idle()]) {
      await ctx.d.registry.heartbeat({
        id,
        name: id,
        host: 'localhost',
        version: '1.2.3',
        pid: process.pid,
        startedAt: new Date().toISOString(),
        capabilities: { transports: ['hotadd', 'nbdssl'], maxDiskTasks: 6 },
      });
    }
  });
  afterAll(async () => {
    for (const id of [busy(), idle()]) await ctx.d.registry.remove(id).catch(() => undefined);
  });

  it('counts running VMs and the disks being copied, per Transporter', async () => {
    const db = ctx.d.db;
    const run = await db.jobRun.create({ data: { status: 'running' } });
    const vm = (status: 'running' | 'succeeded', transporterId: string) => db.runVm.create({ data: { runId: run.id, vmMoref: 'vm-1', vmName: 'a', status, transporterId } });
    const v1 = await vm('running', busy());
    const v2 = await vm('running', busy());
    const done = await vm('succeeded', idle());
    const disk = (runVmId: string, deviceKey: number, phase: string, finished = false) =>
      db.runDisk.create({ data: { runVmId, deviceKey, label: `disk ${deviceKey}`, capacityBytes: 1n, phase, ...(finished ? { finishedAt: new Date() } : {}) } });
    await disk(v1.id, 2000, 'reading');
    await disk(v1.id, 2001, 'opening');
    await disk(v1.id, 2002, 'done', true);
    await disk(v2.id, 2000, 'queued');
    await disk(done.id, 2000, 'reading');

    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/transporters', headers: { cookie: ctx.cookie } });
    expect(res.statusCode, res.body).toBe(200);
    const list = res.json() as { id: string; online: boolean; version: string; lastHeartbeat: string; runningVms: number; runningDisks: number }[];
    expect(list.find((t) => t.id === busy())).toMatchObject({ online: true, version: '1.2.3', runningVms: 2, runningDisks: 2 });
    expect(list.find((t) => t.id === idle())).toMatchObject({ online: true, runningVms: 0, runningDisks: 0, serves: null });
    expect(Date.parse(list[0]!.lastHeartbeat)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('needs a signed-in user', async () => {
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/transporters' })).statusCode).toBe(401);
  });
});
