/**
 * vm_latest_backups (migration 20261206210000): the trigger on run_vms keeps each VM's latest finished backup
 * item as items are inserted or finish, whoever writes them; the overview reads it instead of every item.
 */
import { describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

describe('each VM’s latest finished backup, kept as items finish (real PostgreSQL)', () => {
  const ctx = signedInDirector();
  const latest = async () =>
    Object.fromEntries((await ctx.d.db.vmLatestBackup.findMany({ include: { runVm: { select: { vmName: true, status: true } } } })).map((l) => [l.vmKey, `${l.runVm.vmName} ${l.runVm.status} ${l.at.toISOString()}`]));

  it('follows items as they finish, keeps the newest by finish time, keys VMs without an instance UUID by vCenter and moref, and ignores restores', async () => {
    const db = ctx.d.db;
    const vc = await db.vCenter.create({ data: { name: 'latest-vc', url: 'https://vc.invalid/sdk', username: 'u', passwordSealed: 'x', isLab: true } });
    const repo = await db.repository.create({ data: { name: 'latest-repo', location: '/tmp/latest-repo' } });
    const job = await db.backupJob.create({ data: { name: 'latest-job', vcenterId: vc.id, repositoryId: repo.id, sources: [{ moref: 'vm-1', name: 'a', instanceUuid: 'uuid-a' }, { moref: 'vm-2', name: 'b' }] } });
    const run = (vms: { vmName: string; vmMoref: string; vmInstanceUuid?: string | null; status?: 'queued' | 'succeeded' | 'failed'; finishedAt?: Date }[], kind: 'backup' | 'restore' = 'backup') =>
      db.jobRun.create({ data: { jobId: kind === 'backup' ? job.id : null, kind, vms: { create: vms.map((v) => ({ vmInstanceUuid: null, ...v })) } }, include: { vms: true } });
    const t = (s: string) => new Date(`2026-12-01T${s}Z`);

    const first = await run([{ vmName: 'a', vmMoref: 'vm-1', vmInstanceUuid: 'uuid-a', status: 'succeeded', finishedAt: t('01:00:00') }]);
    expect(await latest()).toEqual({ 'uuid-a': `a succeeded ${t('01:00:00').toISOString()}` });

    // A queued item is not a backup yet; once it fails, it is the latest.
    const second = await run([
      { vmName: 'a', vmMoref: 'vm-1', vmInstanceUuid: 'uuid-a' },
      { vmName: 'b', vmMoref: 'vm-2' },
    ]);
    expect(Object.keys(await latest())).toEqual(['uuid-a']);
    await db.runVm.update({ where: { id: second.vms[0]!.id }, data: { status: 'failed', finishedAt: t('02:00:00'), error: 'boom' } });
    await db.runVm.update({ where: { id: second.vms[1]!.id }, data: { status: 'succeeded', finishedAt: t('02:05:00') } });
    expect(await latest()).toEqual({ 'uuid-a': `a failed ${t('02:00:00').toISOString()}`, [`${vc.id}/vm-2`]: `b succeeded ${t('02:05:00').toISOString()}` });

    // An item finishing later with an earlier time (a slow Transporter's report) does not replace a newer one.
    const late = await run([{ vmName: 'a', vmMoref: 'vm-1', vmInstanceUuid: 'uuid-a' }]);
    await db.runVm.update({ where: { id: late.vms[0]!.id }, data: { status: 'succeeded', finishedAt: t('01:30:00') } });
    expect((await latest())['uuid-a']).toBe(`a failed ${t('02:00:00').toISOString()}`);

    // Restores of the VM are not backups.
    await run([{ vmName: 'a', vmMoref: 'vm-1', vmInstanceUuid: 'uuid-a', status: 'succeeded', finishedAt: t('03:00:00') }], 'restore');
    expect((await latest())['uuid-a']).toBe(`a failed ${t('02:00:00').toISOString()}`);

    // The overview shows exactly these; the vCenter (whose password here does not unseal) is named as a problem.
    const o = await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/overview/protection?limit=200', headers: { cookie: ctx.cookie } });
    expect(o.statusCode, o.body).toBe(200);
    expect(o.json().inventoryProblems.map((p: { vcenterName: string }) => p.vcenterName)).toEqual(['latest-vc']);
    const last = Object.fromEntries((o.json().vms as { key: string; lastBackup: { status: string; error: string | null } | null }[]).filter((v) => v.lastBackup).map((v) => [v.key, v.lastBackup!.status]));
    expect(last).toMatchObject({ 'uuid-a': 'failed', [`${vc.id}/vm-2`]: 'succeeded' });
    expect(first.vms[0]!.id).not.toBe(second.vms[0]!.id);
  });
});
