import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import type { InjectOptions } from 'fastify';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRecipientKeyPair, openSealedTo } from '@vaultline/config';
import { SECRET_LABELS } from '@vaultline/appliance';
import { sessionCookie, signInAdmin, signInAs, startTestDirector, type TestDirector } from './helpers.ts';

describe('vCenters, repositories and jobs through the API (lab vCenter, real Postgres/Redis)', () => {
  let d: TestDirector;
  let lab: Lab;
  let cookie: string;
  let repoDir: string;
  /** A remote Transporter deployed before the vCenter and the repository are added. */
  const remoteKey = generateRecipientKeyPair();
  beforeAll(async () => {
    [d, lab] = await Promise.all([startTestDirector(), startLab({ port: 0 })]);
    cookie = await signInAdmin(d);
    await d.db.transporter.create({ data: { id: 'r-0000beef', name: 'remote', host: 'h', version: '', sshHost: 'h', publicKey: remoteKey.publicKey } });
    repoDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-repo-'));
  });
  afterAll(async () => {
    await d?.close();
    await lab?.stop();
    if (repoDir) await rm(repoDir, { recursive: true, force: true });
  });
  const inject = (o: InjectOptions) => d.app.fastify.inject({ ...o, headers: { cookie, ...(o.headers ?? {}) } });

  it('first contact returns the thumbprint to confirm, without storing anything', async () => {
    const res = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'lab', url: lab.url, username: lab.username, password: lab.password } });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'thumbprint_confirmation_required', thumbprintSha256: lab.thumbprintSha256 });
    expect((await inject({ method: 'GET', url: '/api/vcenters' })).json()).toEqual([]);
  });

  it('a wrong thumbprint is refused naming both', async () => {
    const wrong = lab.thumbprintSha256.replace(/^../, lab.thumbprintSha256.startsWith('00') ? '11' : '00');
    const res = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'lab', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: wrong } });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain(lab.thumbprintSha256);
    expect(res.json().message).toContain(wrong);
  });

  it('an unreachable vCenter is a clear error', async () => {
    const res = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'gone', url: 'https://127.0.0.1:1/sdk', username: 'u', password: 'p' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/cannot reach 127\.0\.0\.1:1/);
  });

  it('registers with the confirmed thumbprint, seals the password and lists the VMs', async () => {
    const res = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'lab', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(res.statusCode, res.body).toBe(201);
    const row = await d.db.vCenter.findFirstOrThrow();
    expect(row.passwordSealed).not.toContain(lab.password);
    expect(row.thumbprintSha256).toBe(lab.thumbprintSha256);
    const vms = await inject({ method: 'GET', url: `/api/vcenters/${row.id}/vms` });
    expect(vms.statusCode).toBe(200);
    expect(vms.json().map((v: { name: string }) => v.name)).toContain(lab.proxyVm.name);
  });

  it('the same vCenter under another name and another spelling of its address is refused, naming the first (by its instance UUID)', async () => {
    const first = await d.db.vCenter.findFirstOrThrow();
    expect(first.instanceUuid).toMatch(/^[0-9a-f-]{36}$/);
    const again = lab.url.replace('127.0.0.1', 'localhost');
    const res = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'lab-again', url: again, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json().message).toBe(`this vCenter is already registered as lab (${lab.url}, instance UUID ${first.instanceUuid}); use that one, or remove it first`);
    expect(await d.db.vCenter.count()).toBe(1);
    // Another vCenter (another lab) registers beside it.
    const other = await startLab({ port: 0 });
    try {
      const ok = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'lab-two', url: other.url, username: other.username, password: other.password, thumbprintSha256: other.thumbprintSha256 } });
      expect(ok.statusCode, ok.body).toBe(201);
      const two = await d.db.vCenter.findUniqueOrThrow({ where: { name: 'lab-two' } });
      expect(two.instanceUuid).not.toBe(first.instanceUuid);
      await d.db.vCenter.delete({ where: { id: two.id } });
    } finally {
      await other.stop();
    }
  });

  it('a standalone ESXi host registers directly, known by its hardware UUID: the same host again is refused, naming the first', async () => {
    const esx = await startLab({ port: 0, esx: true });
    try {
      const add = (name: string, url: string) => inject({ method: 'POST', url: '/api/vcenters', payload: { name, url, username: esx.username, password: esx.password, thumbprintSha256: esx.thumbprintSha256 } });
      const ok = await add('esx-a', esx.url);
      expect(ok.statusCode, ok.body).toBe(201);
      const row = await d.db.vCenter.findUniqueOrThrow({ where: { name: 'esx-a' } });
      expect(row.instanceUuid).toMatch(/^esxi-host:[0-9a-f-]{36}$/);
      const again = await add('esx-b', esx.url.replace('127.0.0.1', 'localhost'));
      expect(again.statusCode, again.body).toBe(409);
      expect(again.json().message).toBe(`this ESXi host is already registered as esx-a (${esx.url}, host UUID ${row.instanceUuid!.slice('esxi-host:'.length)}); use that one, or remove it first`);
      // Its VMs are listed like a vCenter's.
      await esx.createVm({ name: 'esx-vm', disks: [{ capacityBytes: 1024 * 1024 }] });
      const vms = await inject({ method: 'GET', url: `/api/vcenters/${row.id}/vms` });
      expect(vms.statusCode, vms.body).toBe(200);
      expect((vms.json() as { name: string }[]).map((v) => v.name)).toContain('esx-vm');
      await d.db.vCenter.delete({ where: { id: row.id } });
    } finally {
      await esx.stop();
    }
  });

  it('creates a repository, a job, runs it (rows first, queued by item id) and cancels it', async () => {
    const vm = await lab.createVm({ name: 'api-vm', disks: [{ capacityBytes: 8 * 1024 * 1024 }], cbt: true });
    const repo = await inject({ method: 'POST', url: '/api/repositories', payload: { kind: 'local', name: 'r1', location: repoDir, passphrase: 'correct horse' } });
    expect(repo.statusCode, repo.body).toBe(201);
    const again = await inject({ method: 'POST', url: '/api/repositories', payload: { kind: 'local', name: 'r2', location: repoDir, passphrase: 'wrong passphrase' } });
    expect(again.statusCode).toBe(400);
    expect(again.json().message).toMatch(/passphrase/);
    const vcenter = await d.db.vCenter.findFirstOrThrow();
    const job = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'nightly', vcenterId: vcenter.id, repositoryId: repo.json().id, sources: [{ moref: vm.moref, name: vm.name, instanceUuid: vm.instanceUuid }] } });
    expect(job.statusCode, job.body).toBe(201);
    const run = await inject({ method: 'POST', url: `/api/jobs/${job.json().id}/run` });
    expect(run.statusCode).toBe(202);
    expect(run.json().vms).toHaveLength(1);
    expect((await d.queue.counts()).waiting).toBe(1);
    const twice = await inject({ method: 'POST', url: `/api/jobs/${job.json().id}/run` });
    expect(twice.statusCode).toBe(409);
    const cancel = await inject({ method: 'POST', url: `/api/runs/${run.json().id}/cancel` });
    expect(cancel.statusCode).toBe(200);
    expect((await d.db.jobRun.findUniqueOrThrow({ where: { id: run.json().id } })).cancelRequested).toBe(true);
  });

  it('a remote Transporter gets the vCenter password and the repository passphrase sealed to its own key', async () => {
    const vcenter = await d.db.vCenter.findFirstOrThrow();
    const repo = await d.db.repository.findFirstOrThrow({ where: { name: 'r1' } });
    const open = async (label: string, refId: string) => {
      const row = await d.db.transporterSecret.findUniqueOrThrow({ where: { transporterId_label_refId: { transporterId: 'r-0000beef', label, refId } } });
      return openSealedTo(remoteKey.privateKey, label, row.sealed);
    };
    expect(await open(SECRET_LABELS.vcenterPassword, vcenter.id)).toBe(lab.password);
    expect(await open(SECRET_LABELS.repositoryPassphrase, repo.id)).toBe('correct horse');
  });

  it('lists where a restored VM can go: hosts, VM folders, resource pools, datastores with their free space, networks', async () => {
    const vcenter = await d.db.vCenter.findFirstOrThrow({ where: { name: 'lab' } });
    const res = await inject({ method: 'GET', url: `/api/vcenters/${vcenter.id}/placement` });
    expect(res.statusCode, res.body).toBe(200);
    const p = res.json();
    expect(p.hosts.map((h: { name: string }) => h.name)).toContain('DC0_C0_H1');
    expect(p.folders).toContainEqual(expect.objectContaining({ path: 'vm', datacenter: 'DC0' }));
    const cluster = p.resourcePools.find((r: { hosts: string[] }) => r.hosts.length > 1);
    expect(cluster.hosts).toContain(p.hosts.find((h: { name: string }) => h.name === 'DC0_C0_H1').moref);
    for (const ds of lab.datastores) {
      const got = p.datastores.find((x: { name: string }) => x.name === ds.name);
      expect(got, ds.name).toBeDefined();
      expect(got.capacityBytes).toBeGreaterThan(0);
      expect(got.freeBytes).toBeGreaterThan(0);
      expect(got.freeBytes).toBeLessThanOrEqual(got.capacityBytes);
      expect(got.hosts.length).toBeGreaterThan(0);
    }
    expect(p.networks.map((n: { name: string }) => n.name)).toEqual(expect.arrayContaining(['VM Network', 'DC0_DVPG0']));
    expect((await inject({ method: 'GET', url: '/api/vcenters/6b0c2f4e-6f1e-4d8e-9a57-3c1f5b1b2a10/placement' })).statusCode).toBe(404);
  });

  it('placement targets need the operator role', async () => {
    const vcenter = await d.db.vCenter.findFirstOrThrow({ where: { name: 'lab' } });
    const viewer = await signInAs(d, cookie, 'placement-viewer', 'viewer');
    const operator = await signInAs(d, cookie, 'placement-operator', 'operator');
    const get = (c: string) => d.app.fastify.inject({ method: 'GET', url: `/api/vcenters/${vcenter.id}/placement`, headers: { cookie: c } });
    expect((await get(viewer)).statusCode).toBe(403);
    expect((await get(operator)).statusCode).toBe(200);
    expect((await d.app.fastify.inject({ method: 'GET', url: `/api/vcenters/${vcenter.id}/placement` })).statusCode).toBe(401);
  });

  it('a viewer can read but not create jobs', async () => {
    await inject({ method: 'POST', url: '/api/users', payload: { username: 'vi', password: 'viewer-password-1', role: 'viewer' } });
    const login = await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'vi', password: 'viewer-password-1' } });
    const vc = sessionCookie(login);
    await d.app.fastify.inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie: vc }, payload: { currentPassword: 'viewer-password-1', newPassword: 'viewer-password-2' } });
    expect((await d.app.fastify.inject({ method: 'GET', url: '/api/jobs', headers: { cookie: vc } })).statusCode).toBe(200);
    const denied = await d.app.fastify.inject({ method: 'POST', url: '/api/jobs', headers: { cookie: vc }, payload: {} });
    expect(denied.statusCode).toBe(403);
  });
});
