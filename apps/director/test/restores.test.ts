import { sealSecret } from '@vaultline/config';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VCENTER_PASSWORD_LABEL } from '../src/routes/vcenters.ts';
import { sessionCookie, signedInDirector } from './helpers.ts';

describe('starting a restore through the API (real Postgres/Redis, the lab vCenter for name checks)', () => {
  const ctx = signedInDirector();
  let lab: Lab;
  let labVc: { id: string };
  let point: { id: string };
  beforeAll(async () => {
    lab = await startLab({ port: 0 });
    await lab.createVm({ name: 'app01', disks: [{ capacityBytes: 1024 * 1024 }] });
    labVc = await ctx.d.db.vCenter.create({
      data: { name: 'lab', url: lab.url, username: lab.username, passwordSealed: sealSecret(Buffer.alloc(32, 3), VCENTER_PASSWORD_LABEL, lab.password), thumbprintSha256: lab.thumbprintSha256 },
    });
    const repo = await ctx.d.db.repository.create({ data: { name: 'r', location: '/tmp/none' } });
    point = await ctx.d.db.restorePoint.create({ data: { repositoryId: repo.id, repoPointId: 'p1', vmInstanceUuid: 'u1', vmName: 'app01', createdAt: new Date(), logicalBytes: 1n } });
  });
  afterAll(async () => {
    await lab?.stop();
  });
  const post = (payload: object, cookie = ctx.cookie) => ctx.d.app.fastify.inject({ method: 'POST', url: '/api/restores', headers: { cookie }, payload });
  const runs = () => ctx.d.db.jobRun.count();

  it('writes the restore run first, then queues it for a Transporter', async () => {
    const missingVc = await post({ restorePointId: point.id, name: 'app-copy' });
    expect(missingVc.statusCode).toBe(400);
    expect(missingVc.json().details[0].path).toBe('vcenterId');
    const res = await post({ restorePointId: point.id, name: 'app-copy', vcenterId: labVc.id });
    expect(res.statusCode, res.body).toBe(202);
    const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: res.json().runId }, include: { vms: true } });
    expect(run.kind).toBe('restore');
    expect(run.request).toMatchObject({ restorePointId: point.id, name: 'app-copy', powerOn: false, vcenterId: labVc.id, transport: 'automatic', failoverToNetwork: true });
    expect(run.vms[0]!.vmName).toBe('app-copy');
    expect(run.vms[0]!.log).toEqual([]);
    // Restores are queued ahead of waiting backups.
    expect((await ctx.d.queue.counts()).prioritized).toBe(1);
  });

  it('accepts the write transport, placement, network map and a confirmed replace, and stores them on the run', async () => {
    const res = await post({
      restorePointId: point.id,
      name: 'app-placed',
      vcenterId: labVc.id,
      transport: 'hotadd',
      failoverToNetwork: false,
      host: 'DC0_C0_H1',
      folder: 'vm/Restores',
      resourcePool: 'Resources',
      datastore: 'datastore2',
      networkMap: { 'VM Network': 'DC0_DVPG0' },
    });
    expect(res.statusCode, res.body).toBe(202);
    const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: res.json().runId } });
    expect(run.request).toMatchObject({ transport: 'hotadd', failoverToNetwork: false, host: 'DC0_C0_H1', folder: 'vm/Restores', resourcePool: 'Resources', datastore: 'datastore2', networkMap: { 'VM Network': 'DC0_DVPG0' } });

    const replace = await post({ restorePointId: point.id, name: 'app01', vcenterId: labVc.id, replace: { confirm: 'app01' }, powerOn: true });
    expect(replace.statusCode, replace.body).toBe(202);
    const r = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: replace.json().runId } });
    expect(r.request).toMatchObject({ name: 'app01', replace: { confirm: 'app01' } });
    expect(await ctx.d.db.auditEvent.count({ where: { action: 'restore.replace', subject: 'app01' } })).toBe(1);
  });

  it('refuses before any run exists: a name in use without replace, a wrong confirmation, nothing to replace, SAN, a drill that replaces, a bad network map', async () => {
    const before = await runs();
    const taken = await post({ restorePointId: point.id, name: 'app01', vcenterId: labVc.id });
    expect(taken.statusCode).toBe(409);
    expect(taken.json().message).toBe('a VM named app01 already exists in lab; choose another name, or replace it by sending replace: { confirm: "app01" } (the original is then kept, powered off and renamed)');
    const wrong = await post({ restorePointId: point.id, name: 'app01', vcenterId: labVc.id, replace: { confirm: 'App01' } });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().details).toEqual([{ path: 'replace.confirm', message: 'to replace a VM, confirm with its exact name (app01)' }]);
    const nothing = await post({ restorePointId: point.id, name: 'app99', vcenterId: labVc.id, replace: { confirm: 'app99' } });
    expect(nothing.statusCode).toBe(400);
    expect(nothing.json().message).toBe('there is no VM named app99 in lab to replace');
    const san = await post({ restorePointId: point.id, name: 'app-san', vcenterId: labVc.id, transport: 'san' });
    expect(san.statusCode).toBe(400);
    expect(san.json().details).toEqual([{ path: 'transport', message: 'SAN is not a write transport' }]);
    const drill = await post({ restorePointId: point.id, name: 'app01', vcenterId: labVc.id, drill: true, replace: { confirm: 'app01' } });
    expect(drill.statusCode).toBe(400);
    expect(drill.json().details).toContainEqual({ path: 'replace', message: 'a drill never replaces a VM' });
    const badMap = await post({ restorePointId: point.id, name: 'app-net', vcenterId: labVc.id, networkMap: ['VM Network'] });
    expect(badMap.statusCode).toBe(400);
    expect(badMap.json().details[0].path).toBe('networkMap');
    const badTransport = await post({ restorePointId: point.id, name: 'app-x', vcenterId: labVc.id, transport: 'floppy' });
    expect(badTransport.statusCode).toBe(400);
    expect(await runs()).toBe(before);
  });

  it('onto KVM/Proxmox: queued without a vCenter (even with a VM of that name there), with the target on the run; a path, a replace or a drill is refused', async () => {
    const res = await post({ restorePointId: point.id, name: 'app01', kvm: { folder: 'app01-kvm', format: 'raw', proxmox: { vmid: 120, storage: 'local-lvm' } } });
    expect(res.statusCode, res.body).toBe(202);
    const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: res.json().runId } });
    expect(run.kind).toBe('restore');
    expect(run.request).toMatchObject({ name: 'app01', kvm: { folder: 'app01-kvm', format: 'raw', networks: {}, defaultNetwork: { network: 'default' }, proxmox: { vmid: 120, storage: 'local-lvm', storageType: 'block', defaultBridge: 'vmbr0' } } });
    expect(run.request).not.toHaveProperty('vcenterId');
    expect(await ctx.d.db.auditEvent.count({ where: { action: 'restore.kvm', subject: 'app01' } })).toBe(1);

    const before = await runs();
    for (const [kvm, extra, path] of [
      [{ folder: '../etc' }, {}, 'kvm.folder'],
      [{ folder: '/var/lib/x' }, {}, 'kvm.folder'],
      [{ folder: 'ok', format: 'vmdk' }, {}, 'kvm.format'],
      [{ folder: 'ok' }, { drill: true }, 'kvm'],
      [{ folder: 'ok' }, { replace: { confirm: 'app01' } }, 'kvm'],
    ] as const) {
      const bad = await post({ restorePointId: point.id, name: 'app01', kvm, ...extra });
      expect(bad.statusCode, bad.body).toBe(400);
      expect(bad.json().details.map((d: { path: string }) => d.path)).toContain(path);
    }
    expect(await runs()).toBe(before);
  });

  it('a viewer cannot start a restore', async () => {
    const created = await ctx.d.app.fastify.inject({ method: 'POST', url: '/api/users', headers: { cookie: ctx.cookie }, payload: { username: 'vera', password: 'viewer-password-1', role: 'viewer' } });
    expect(created.statusCode).toBe(201);
    const login = await ctx.d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'vera', password: 'viewer-password-1' } });
    const cookie = sessionCookie(login);
    await ctx.d.app.fastify.inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie }, payload: { currentPassword: 'viewer-password-1', newPassword: 'viewer-password-2' } });
    const before = await runs();
    const res = await post({ restorePointId: point.id, name: 'app-viewer', vcenterId: labVc.id }, cookie);
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('forbidden');
    expect(await runs()).toBe(before);
    const anonymous = await ctx.d.app.fastify.inject({ method: 'POST', url: '/api/restores', payload: { restorePointId: point.id, name: 'x', vcenterId: labVc.id } });
    expect(anonymous.statusCode).toBe(401);
  });

  it('when the vCenter cannot be asked, the restore is still queued and its log says the Transporter checks the name', async () => {
    const gone = await ctx.d.db.vCenter.create({ data: { name: 'gone', url: 'https://127.0.0.1:1/sdk', username: 'u', passwordSealed: sealSecret(Buffer.alloc(32, 3), VCENTER_PASSWORD_LABEL, 'p') } });
    const res = await post({ restorePointId: point.id, name: 'app01', vcenterId: gone.id });
    expect(res.statusCode, res.body).toBe(202);
    const run = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id: res.json().runId }, include: { vms: true } });
    const log = run.vms[0]!.log as { level: string; message: string }[];
    expect(log).toHaveLength(1);
    expect(log[0]!.level).toBe('warn');
    expect(log[0]!.message).toMatch(/^the Director could not check the name in gone \(cannot reach 127\.0\.0\.1:1: .*\); the Transporter checks it before creating anything$/);
  });

  it('names an unknown restore point', async () => {
    const res = await post({ restorePointId: '00000000-0000-4000-8000-000000000000', name: 'x' });
    expect(res.statusCode).toBe(404);
  });
});
