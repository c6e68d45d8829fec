import { randomUUID } from 'node:crypto';
import type { TransporterInfo } from '@vaultline/contracts';
import { describe, expect, it } from 'vitest';
import { NO_INSTANT_TRANSPORTER } from '../src/services/instant-recoveries.ts';
import { signedInDirector, signInAs } from './helpers.ts';

const transporter = (id: string, nfs: boolean): TransporterInfo => ({
  id,
  name: `${id}-name`,
  host: 'h',
  version: '0',
  pid: 1,
  startedAt: new Date().toISOString(),
  capabilities: { transports: ['nbd'], maxDiskTasks: 2, ...(nfs ? { instantRecovery: { nfsAddress: '10.0.0.5' } } : {}) },
});

describe('instant recoveries API (real Postgres/Redis)', () => {
  const ctx = signedInDirector();
  const inject = (method: 'GET' | 'POST', url: string, payload?: object, cookie = ctx.cookie) =>
    ctx.d.app.fastify.inject({ method, url, headers: { cookie }, ...(payload ? { payload } : {}) });

  const setUp = async () => {
    const vc = await ctx.d.db.vCenter.create({ data: { name: `vc-${randomUUID()}`, url: 'https://vc.invalid/sdk', username: 'u', passwordSealed: 'x' } });
    const repo = await ctx.d.db.repository.create({ data: { name: `r-${randomUUID()}`, location: '/tmp/none' } });
    const point = await ctx.d.db.restorePoint.create({
      data: { repositoryId: repo.id, repoPointId: `p-${randomUUID()}`, vmInstanceUuid: randomUUID(), vmName: 'app01', createdAt: new Date('2026-12-01T02:00:00Z'), logicalBytes: 1n },
    });
    const body = { restorePointId: point.id, vcenterId: vc.id, host: 'host-12', name: `app01-ir-${randomUUID().slice(0, 8)}` };
    return { vc, point, body };
  };

  it('refuses with 409 while no online Transporter offers instant recovery, saying how to turn it on; nothing is stored', async () => {
    const { body } = await setUp();
    await ctx.d.registry.heartbeat(transporter('plain', false));
    const res = await inject('POST', '/api/instant-recoveries', body);
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toBe(NO_INSTANT_TRANSPORTER);
    expect(res.json().message).toContain('VAULTLINE_NFS_ADDRESS');
    expect(await ctx.d.db.instantRecovery.count({ where: { name: body.name } })).toBe(0);
  });

  it('an operator requests one: 201 with the row in requested, audited; the name is refused while that one is not over', async () => {
    const { body, point, vc } = await setUp();
    await ctx.d.registry.heartbeat(transporter('nfs-capable', true));
    const operator = await signInAs(ctx.d, ctx.cookie, `op-${randomUUID().slice(0, 6)}`, 'operator');
    const res = await inject('POST', '/api/instant-recoveries', body, operator);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({
      name: body.name,
      restorePointId: point.id,
      sourceVm: 'app01',
      restorePointTime: '2026-12-01T02:00:00.000Z',
      vcenterId: vc.id,
      vcenterName: vc.name,
      host: 'host-12',
      transporterId: null,
      transporterName: null,
      state: 'requested',
      error: null,
      powerOn: true,
    });
    const row = await ctx.d.db.instantRecovery.findUniqueOrThrow({ where: { id: res.json().id } });
    expect(row).toMatchObject({ connectNics: false, folder: null, resourcePool: null, pendingAction: null });
    expect((await ctx.d.db.auditEvent.findFirstOrThrow({ where: { subject: body.name } })).action).toBe('instant-recovery.start');

    const again = await inject('POST', '/api/instant-recoveries', body);
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toContain(`an instant recovery named ${body.name} is already requested`);
    // Once it is over, the name is free again.
    await ctx.d.db.instantRecovery.update({ where: { id: row.id }, data: { state: 'failed' } });
    expect((await inject('POST', '/api/instant-recoveries', body)).statusCode).toBe(201);

    const list = await inject('GET', '/api/instant-recoveries');
    expect(list.statusCode).toBe(200);
    expect(list.json().filter((r: { name: string }) => r.name === body.name).map((r: { state: string }) => r.state)).toEqual(['requested', 'failed']);
  });

  it('a viewer lists and reads them but cannot request, migrate or discard; without a session nothing is answered', async () => {
    const { body } = await setUp();
    await ctx.d.registry.heartbeat(transporter('nfs-capable', true));
    const created = (await inject('POST', '/api/instant-recoveries', body)).json();
    const viewer = await signInAs(ctx.d, ctx.cookie, `v-${randomUUID().slice(0, 6)}`, 'viewer');
    expect((await inject('GET', '/api/instant-recoveries', undefined, viewer)).statusCode).toBe(200);
    expect((await inject('GET', `/api/instant-recoveries/${created.id}`, undefined, viewer)).json().name).toBe(body.name);
    expect((await inject('POST', '/api/instant-recoveries', { ...body, name: 'other' }, viewer)).statusCode).toBe(403);
    expect((await inject('POST', `/api/instant-recoveries/${created.id}/migrate`, { datastore: 'datastore-1' }, viewer)).statusCode).toBe(403);
    expect((await inject('POST', `/api/instant-recoveries/${created.id}/discard`, undefined, viewer)).statusCode).toBe(403);
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: '/api/instant-recoveries' })).statusCode).toBe(401);
  });

  it('bad bodies are refused naming each field', async () => {
    const { body } = await setUp();
    const noHost = await inject('POST', '/api/instant-recoveries', { ...body, host: ' ' });
    expect(noHost.statusCode).toBe(400);
    expect(noHost.json().details.map((d: { path: string }) => d.path)).toEqual(['host']);
    const long = await inject('POST', '/api/instant-recoveries', { ...body, name: 'x'.repeat(81), restorePointId: 'nope' });
    expect(long.statusCode).toBe(400);
    expect(long.json().details.map((d: { path: string }) => d.path).sort()).toEqual(['name', 'restorePointId']);
    const created = await ctx.d.db.instantRecovery.create({
      data: { name: body.name, restorePointRef: body.restorePointId, sourceVm: 'app01', restorePointTime: new Date(), vcenterId: body.vcenterId, hostMoref: 'host-12', hostName: 'esx-01', createdBy: 'admin', state: 'running' },
    });
    const noDatastore = await inject('POST', `/api/instant-recoveries/${created.id}/migrate`, {});
    expect(noDatastore.statusCode).toBe(400);
    expect(noDatastore.json().details[0].path).toBe('datastore');
  });

  it('404 for an unknown restore point, vCenter or recovery', async () => {
    const { body } = await setUp();
    await ctx.d.registry.heartbeat(transporter('nfs-capable', true));
    const noPoint = await inject('POST', '/api/instant-recoveries', { ...body, restorePointId: randomUUID() });
    expect([noPoint.statusCode, noPoint.json().message]).toEqual([404, 'no such restore point']);
    const noVc = await inject('POST', '/api/instant-recoveries', { ...body, vcenterId: randomUUID() });
    expect([noVc.statusCode, noVc.json().message]).toEqual([404, 'no such vCenter']);
    const unknown = randomUUID();
    expect((await inject('GET', `/api/instant-recoveries/${unknown}`)).statusCode).toBe(404);
    expect((await inject('POST', `/api/instant-recoveries/${unknown}/migrate`, { datastore: 'datastore-1' })).statusCode).toBe(404);
    expect((await inject('POST', `/api/instant-recoveries/${unknown}/discard`)).statusCode).toBe(404);
  });

  it('migrate and discard only while running and nothing else is pending: 202 records the action for the Transporter, else 409', async () => {
    const { body } = await setUp();
    await ctx.d.registry.heartbeat(transporter('nfs-capable', true));
    const id = (await inject('POST', '/api/instant-recoveries', body)).json().id as string;
    const early = await inject('POST', `/api/instant-recoveries/${id}/migrate`, { datastore: 'datastore-1' });
    expect(early.statusCode).toBe(409);
    expect(early.json().message).toContain('it is requested (only a running recovery can)');
    expect((await inject('POST', `/api/instant-recoveries/${id}/discard`)).statusCode).toBe(409);

    await ctx.d.db.instantRecovery.update({ where: { id }, data: { state: 'running', transporterId: 'nfs-capable' } });
    const migrate = await inject('POST', `/api/instant-recoveries/${id}/migrate`, { datastore: 'datastore-1' });
    expect(migrate.statusCode).toBe(202);
    expect(migrate.json()).toMatchObject({ id, state: 'running', transporterName: 'nfs-capable' });
    expect(await ctx.d.db.instantRecovery.findUniqueOrThrow({ where: { id } })).toMatchObject({ pendingAction: 'migrate', pendingDatastore: 'datastore-1' });
    const second = await inject('POST', `/api/instant-recoveries/${id}/discard`);
    expect(second.statusCode).toBe(409);
    expect(second.json().message).toContain('another action on it is pending');

    await ctx.d.db.instantRecovery.update({ where: { id }, data: { pendingAction: null, pendingDatastore: null } });
    const discard = await inject('POST', `/api/instant-recoveries/${id}/discard`);
    expect(discard.statusCode).toBe(202);
    expect((await ctx.d.db.instantRecovery.findUniqueOrThrow({ where: { id } })).pendingAction).toBe('discard');
    await ctx.d.db.instantRecovery.update({ where: { id }, data: { state: 'failed', pendingAction: null } });
    expect((await inject('POST', `/api/instant-recoveries/${id}/discard`)).statusCode).toBe(409);
    const actions = (await ctx.d.db.auditEvent.findMany({ where: { subject: body.name }, orderBy: { at: 'asc' } })).map((a) => a.action);
    expect(actions).toEqual(['instant-recovery.start', 'instant-recovery.migrate', 'instant-recovery.discard']);
  });

  it('a restore point a VM runs from cannot be deleted until that recovery is over', async () => {
    const { body, point } = await setUp();
    await ctx.d.registry.heartbeat(transporter('nfs-capable', true));
    const id = (await inject('POST', '/api/instant-recoveries', body)).json().id as string;
    await ctx.d.db.instantRecovery.update({ where: { id }, data: { state: 'running', transporterId: 'nfs-capable' } });
    const del = () => ctx.d.app.fastify.inject({ method: 'DELETE', url: `/api/restore-points/${point.id}`, headers: { cookie: ctx.cookie }, payload: { currentPassword: 'correct-horse-battery' } });
    const refused = await del();
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toContain('a VM runs from it by instant recovery; migrate or discard that VM first');
    expect(await ctx.d.db.restorePoint.count({ where: { id: point.id } })).toBe(1);
    // Over: the delete goes on to the repository (here a folder that is none, so it is reported, not a 409).
    await ctx.d.db.instantRecovery.update({ where: { id }, data: { state: 'discarded' } });
    expect((await del()).statusCode).not.toBe(409);
  });

  it('a vCenter with a VM running by instant recovery cannot be deleted; once it is over, its finished recoveries go with it', async () => {
    const { body, vc } = await setUp();
    await ctx.d.registry.heartbeat(transporter('nfs-capable', true));
    const id = (await inject('POST', '/api/instant-recoveries', body)).json().id as string;
    await ctx.d.db.instantRecovery.update({ where: { id }, data: { state: 'running' } });
    const del = () => ctx.d.app.fastify.inject({ method: 'DELETE', url: `/api/vcenters/${vc.id}`, headers: { cookie: ctx.cookie }, payload: { currentPassword: 'correct-horse-battery' } });
    const refused = await del();
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toBe(`${vc.name} has 1 VM(s) running by instant recovery; migrate or discard them first`);
    await ctx.d.db.instantRecovery.update({ where: { id }, data: { state: 'migrated' } });
    expect((await del()).statusCode).toBe(200);
    expect(await ctx.d.db.vCenter.count({ where: { id: vc.id } })).toBe(0);
    expect(await ctx.d.db.instantRecovery.count({ where: { id } })).toBe(0);
  });
});
