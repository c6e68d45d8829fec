/**
 * A ransomware-suspect restore point (the Transporter's signal, packages/core backup/anomaly.ts) as the
 * Director handles it, on real Postgres and a real repository: it is listed with its flag and what was
 * measured, notified once to every target, holds retention of its VM, and only an operator releases the hold
 * (with a reason, audited); after that, retention prunes again.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { applianceKeyUnsealer, applyRetention, openRepository } from '@vaultline/appliance';
import { RestorePointWriter } from '@vaultline/repository';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyTick } from '../src/notify/notifier.ts';
import { signedInDirector, signInAs } from './helpers.ts';
import { createRestorePoint } from './restore-point-fixture.ts';

const MiB = 1024 * 1024;
const ANOMALY = 'disk Hard disk 1: 100 % of 24 MiB of new data is high-entropy (mean 7.95 bits/byte) and it compressed to 100 % of its size, against 0 % high-entropy (4.90 bits/byte) compressing to 21 % over the last 2 restore point(s) (medians)';

describe('retention holds of ransomware-suspect restore points (real Postgres and repository)', () => {
  const ctx = signedInDirector();
  let dir = '';
  let operatorCookie = '';
  let viewerCookie = '';
  let older = '';
  let suspect = '';
  const hooks: { event: string; subject: string; restorePoint: { id: string; held: boolean; anomaly: string } }[] = [];
  const hook: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      hooks.push(JSON.parse(raw) as (typeof hooks)[number]);
      res.writeHead(204).end();
    });
  });
  const release = (id: string, cookie: string, payload: unknown) => ctx.d.app.fastify.inject({ method: 'POST', url: `/api/restore-points/${id}/release-hold`, headers: { cookie }, payload: payload as object });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-holds-'));
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    operatorCookie = await signInAs(ctx.d, ctx.cookie, 'oncall', 'operator');
    viewerCookie = await signInAs(ctx.d, ctx.cookie, 'auditor', 'viewer');
    // Two points of one VM in one repository (the fixture makes a repository per VM uuid, so the second is written there too).
    older = await createRestorePoint(ctx.d, dir, { name: 'files01', uuid: 'uuid-files01' }, [{ key: '2000', image: Buffer.alloc(MiB, 1), controller: 'pvscsi' }]);
    const first = await ctx.d.db.restorePoint.findUniqueOrThrow({ where: { id: older }, include: { repository: true } });
    const repo = await openRepository(first.repository, applianceKeyUnsealer(Buffer.alloc(32, 3)));
    const w = await RestorePointWriter.open(repo, { vmId: 'uuid-files01', parent: { vmId: 'uuid-files01', id: first.repoPointId }, vm: { name: 'files01' } });
    const d = await w.openDisk({ key: '2000', capacity: MiB });
    await d.write(0, Buffer.alloc(MiB, 2));
    const m = await w.commit();
    await repo.close();
    await ctx.d.db.restorePoint.update({ where: { id: older }, data: { createdAt: new Date(Date.now() - 86_400_000) } });
    suspect = (
      await ctx.d.db.restorePoint.create({
        data: { repositoryId: first.repositoryId, repoPointId: m.id, vmInstanceUuid: 'uuid-files01', vmName: 'files01', createdAt: new Date(), logicalBytes: BigInt(MiB), ransomwareSuspect: true, anomaly: ANOMALY },
      })
    ).id;
  });
  afterAll(async () => {
    await new Promise((r) => hook.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the point with its flag, what was measured, and its hold', async () => {
    const res = await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/restore-points?vm=files01', headers: { cookie: viewerCookie } });
    expect(res.statusCode).toBe(200);
    const byId = new Map((res.json() as { id: string }[]).map((p) => [p.id, p]));
    expect(byId.get(suspect)).toMatchObject({ ransomwareSuspect: true, suspect: false, anomaly: ANOMALY, holdReleasedAt: null, holdReleasedBy: null });
    expect(byId.get(older)).toMatchObject({ ransomwareSuspect: false, anomaly: null });
  });

  it('notifies every enabled target once, with what was measured and that retention is held', async () => {
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    // A target that only wants failures still hears about it: it is not a run status.
    await ctx.d.db.notificationTarget.create({ data: { name: 'soc', kind: 'webhook', url, events: 'failures', createdAt: new Date(Date.now() - 60_000) } });
    const tick = () => notifyTick({ db: ctx.d.db, secretKey: Buffer.alloc(32, 3), log: memoryLogger('notify').log, consoleUrl: 'https://vaultline.example.com' });
    expect(await tick()).toEqual({ sent: 1, failed: 0 });
    expect(await tick()).toEqual({ sent: 0, failed: 0 });
    expect(hooks).toHaveLength(1);
    expect(hooks[0]).toMatchObject({ event: 'restore-point.anomaly', subject: "[Vaultline] possible ransomware: files01's new data turned high-entropy", restorePoint: { id: suspect, held: true, anomaly: ANOMALY } });
  });

  it('holds retention of the VM in that repository until released by an operator (audited); then retention prunes again', async () => {
    const point = await ctx.d.db.restorePoint.findUniqueOrThrow({ where: { id: older }, include: { repository: true } });
    // Retention only prunes a job's own points: attribute both to one job's run.
    const vcenter = await ctx.d.db.vCenter.create({ data: { name: 'vc-holds', url: 'https://vc.invalid/sdk', username: 'u', passwordSealed: 'x' } });
    const backupJob = await ctx.d.db.backupJob.create({ data: { name: 'files', vcenterId: vcenter.id, repositoryId: point.repositoryId, sources: [], options: {} } });
    const run = await ctx.d.db.jobRun.create({ data: { jobId: backupJob.id, vms: { create: [{ vmMoref: 'vm-1', vmName: 'files01' }, { vmMoref: 'vm-1', vmName: 'files01' }] } }, include: { vms: true } });
    await ctx.d.db.restorePoint.update({ where: { id: older }, data: { runVmId: run.vms[0]!.id } });
    await ctx.d.db.restorePoint.update({ where: { id: suspect }, data: { runVmId: run.vms[1]!.id } });
    const retain = async () => {
      const repo = await openRepository(point.repository, applianceKeyUnsealer(Buffer.alloc(32, 3)));
      try {
        return await applyRetention(ctx.d.db, repo, { repositoryId: point.repositoryId, jobId: backupJob.id, vmInstanceUuid: 'uuid-files01' }, { keepLast: 1 });
      } finally {
        await repo.close();
      }
    };
    const held = await retain();
    expect(held.pruned).toEqual([]);
    expect(held.heldBy.map((h) => h.repoPointId)).toEqual([(await ctx.d.db.restorePoint.findUniqueOrThrow({ where: { id: suspect } })).repoPointId]);
    expect(await ctx.d.db.restorePoint.count({ where: { vmInstanceUuid: 'uuid-files01' } })).toBe(2);

    // A viewer may not; a reason is required; a point without the flag holds nothing.
    expect((await release(suspect, viewerCookie, { note: 'checked' })).statusCode).toBe(403);
    const noNote = await release(suspect, operatorCookie, { note: '  ' });
    expect(noNote.statusCode).toBe(400);
    expect(noNote.body).toContain('say why the hold is released');
    const notFlagged = await release(older, operatorCookie, { note: 'checked' });
    expect(notFlagged.statusCode).toBe(409);
    expect(notFlagged.json()).toMatchObject({ message: expect.stringContaining('is not marked as a ransomware suspect') as unknown });
    expect((await release('00000000-0000-4000-8000-000000000000', operatorCookie, { note: 'checked' })).statusCode).toBe(404);

    const ok = await release(suspect, operatorCookie, { note: 'planned re-encryption of the archive share' });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ id: suspect, ransomwareSuspect: true, anomaly: ANOMALY, holdReleasedBy: 'oncall', holdReleasedAt: expect.any(String) as unknown });
    const again = await release(suspect, operatorCookie, { note: 'again' });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ message: expect.stringContaining('already released by oncall') as unknown });
    const audit = await ctx.d.db.auditEvent.findMany({ where: { action: 'restore-point.release-hold' } });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'oncall', detail: { note: 'planned re-encryption of the archive share', vmInstanceUuid: 'uuid-files01', anomaly: ANOMALY } });

    const after = await retain();
    expect(after.heldBy).toEqual([]);
    expect(after.pruned.map((p) => p.repoPointId)).toEqual([point.repoPointId]);
    expect(await ctx.d.db.restorePoint.findMany({ where: { vmInstanceUuid: 'uuid-files01' }, select: { id: true } })).toEqual([{ id: suspect }]);
  });
});
