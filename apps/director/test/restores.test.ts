import { describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

describe('starting a restore through the API (real Postgres/Redis)', () => {
  const ctx = signedInDirector();
  const post = (payload: object) => ctx.d.app.fastify.inject({ method: 'POST', url: '/api/restores', headers: { cookie: ctx.cookie }, payload });

  it('writes the restore run first, then queues it for a Transporter', async () => {
    const vc = await ctx.d.db.vCenter.create({ data: { name: 'vc', url: 'https://vc/sdk', username: 'u', passwordSealed: 'x' } });
    const repo = await ctx.d.db.repository.create({ data: { name: 'r', location: '/tmp/none' } });
    const point = await ctx.d.db.restorePoint.create({ data: { repositoryId: repo.id, repoPointId: 'p1', vmInstanceUuid: 'u1', vmName: 'app', createdAt: new Date(), logicalBytes: 1n } });
    const missingVc = await post({ restorePointId: point.id, name: 'app-copy' });
    expect(missingVc.statusCode).toBe(400);
    expect(missingVc.json().details[0].path).toBe('vcenterId');
    const res = await post({ restorePointId: point.id, name: 'app-copy', vcenterId: vc.id });
    expect(res.statusCode).toBe(202);
    const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: res.json().runId }, include: { vms: true } });
    expect(run.kind).toBe('restore');
    expect(run.request).toMatchObject({ restorePointId: point.id, name: 'app-copy', powerOn: false, vcenterId: vc.id });
    expect(run.vms[0]!.vmName).toBe('app-copy');
    // Restores are queued ahead of waiting backups.
    expect((await ctx.d.queue.counts()).prioritized).toBe(1);
  });

  it('names an unknown restore point', async () => {
    const res = await post({ restorePointId: '00000000-0000-4000-8000-000000000000', name: 'x' });
    expect(res.statusCode).toBe(404);
  });
});
