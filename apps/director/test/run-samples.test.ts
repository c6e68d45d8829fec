import { describe, expect, it } from 'vitest';
import type { RunDetail } from '@vaultline/contracts';
import { signedInDirector } from './helpers.ts';

describe('a run with its throughput samples, per disk, for the run page (real Postgres)', () => {
  const ctx = signedInDirector();

  it('returns the stored samples of each disk oldest first, and none for a disk without', async () => {
    const db = ctx.d.db;
    const run = await db.jobRun.create({ data: { kind: 'backup', status: 'succeeded', vms: { create: [{ vmMoref: 'vm-1', vmName: 'app01', status: 'succeeded' }] } }, include: { vms: true } });
    const runVmId = run.vms[0]!.id;
    const [d1, d2] = await Promise.all([
      db.runDisk.create({ data: { runVmId, deviceKey: 2000, label: 'Hard disk 1', capacityBytes: 1n << 30n } }),
      db.runDisk.create({ data: { runVmId, deviceKey: 2001, label: 'Hard disk 2', capacityBytes: 1n << 30n } }),
    ]);
    const t0 = Date.parse('2026-12-06T12:00:00Z');
    // Written out of order: the API sorts by time.
    await db.runDiskSample.createMany({ data: [3, 0, 2, 1].map((i) => ({ runDiskId: d1.id, at: new Date(t0 + i * 1000), bytesRead: BigInt(i * 5_000_000), bytesWritten: BigInt(i * 1_000_000) })) });

    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/runs/${run.id}`, headers: { cookie: ctx.cookie } });
    expect(res.statusCode, res.body).toBe(200);
    const detail = res.json() as RunDetail;
    expect(detail.vms[0]!.disks.map((d) => d.id)).toEqual([d1.id, d2.id]);
    expect(detail.samples).toEqual([{ runDiskId: d1.id, at: [0, 1, 2, 3].map((i) => t0 + i * 1000), bytesRead: [0, 5e6, 10e6, 15e6], bytesWritten: [0, 1e6, 2e6, 3e6] }]);

    // The list stays light: no samples there.
    const list = (await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/runs', headers: { cookie: ctx.cookie } })).json() as object[];
    expect(list[0]).not.toHaveProperty('samples');
  });
});
