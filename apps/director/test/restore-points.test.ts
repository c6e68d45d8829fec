import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { HardwareDescription } from '@vaultline/vsphere';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector, signInAs } from './helpers.ts';
import { createRestorePoint } from './restore-point-fixture.ts';

const MiB = 1024 * 1024;

const disk = (key: number, label: string, controllerKey: number, controller: 'pvscsi' | 'sata', capacityBytes: number, fileName: string, thin: boolean): HardwareDescription['disks'][number] => ({
  key,
  label,
  controllerKey,
  controller,
  busNumber: 0,
  unitNumber: key % 16,
  capacityBytes,
  fileName,
  parents: [],
  thin,
  eagerlyScrub: false,
  diskMode: 'persistent',
  backing: { type: 'VirtualDiskFlatVer2BackingInfo', fileName },
});

describe('restore points for the console: the lists and one point with what a restore offers (real repository, Postgres)', () => {
  const ctx = signedInDirector();
  let dir = '';
  let withHw = '';
  let bare = '';
  let runId = '';
  const hardware: HardwareDescription = {
    name: 'app01',
    guestId: 'ubuntu64Guest',
    guestFullName: 'Ubuntu Linux (64-bit)',
    numCpu: 2,
    memoryMiB: 2048,
    firmware: 'bios',
    controllers: [
      { key: 1000, kind: 'pvscsi', type: 'ParaVirtualSCSIController', busNumber: 0, scsiCtlrUnitNumber: 7 },
      { key: 15000, kind: 'sata', type: 'VirtualAHCIController', busNumber: 0 },
    ],
    disks: [disk(2000, 'Hard disk 1', 1000, 'pvscsi', 2 * MiB, '[datastore1] app01/app01.vmdk', true), disk(16001, 'Hard disk 2', 15000, 'sata', MiB, '[datastore2] app01/app01_1.vmdk', false)],
    nics: [
      { key: 4000, type: 'VirtualVmxnet3', label: 'Network adapter 1', network: 'network-7', networkName: 'VM Network' },
      { key: 4001, type: 'VirtualVmxnet3', label: 'Network adapter 2', network: 'dvportgroup-9', networkName: 'DC0_DVPG0' },
      { key: 4002, type: 'VirtualVmxnet3', label: 'Network adapter 3', network: 'network-7', networkName: 'VM Network' },
    ],
  };
  const get = (url: string, cookie = ctx.cookie) => ctx.d.app.fastify.inject({ method: 'GET', url, headers: { cookie } });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-points-'));
    withHw = await createRestorePoint(ctx.d, dir, { name: 'app01', uuid: 'uuid-app01', moref: 'vm-42', hardware }, [
      { key: '2000', image: Buffer.alloc(2 * MiB, 1), controller: 'pvscsi' },
      { key: '16001', image: Buffer.alloc(MiB, 2), controller: 'sata' },
    ]);
    bare = await createRestorePoint(ctx.d, dir, { name: 'old01', uuid: 'uuid-old01' }, [{ key: '2000', image: Buffer.alloc(MiB, 3), controller: 'lsilogic' }]);
    // app01's point was written by a backup job of a vCenter: that is where a restore goes by default.
    const vc = await ctx.d.db.vCenter.create({ data: { name: 'origin', url: 'https://vc.example/sdk', username: 'u', passwordSealed: 'x' } });
    const point = await ctx.d.db.restorePoint.findUniqueOrThrow({ where: { id: withHw } });
    const job = await ctx.d.db.backupJob.create({ data: { name: 'nightly', vcenterId: vc.id, repositoryId: point.repositoryId, sources: [] } });
    const run = await ctx.d.db.jobRun.create({ data: { jobId: job.id, kind: 'backup', trigger: 'manual', status: 'succeeded', vms: { create: [{ vmMoref: 'vm-42', vmName: 'app01', status: 'succeeded', phase: 'done' }] } }, include: { vms: true } });
    runId = run.id;
    await ctx.d.db.restorePoint.update({ where: { id: withHw }, data: { runVmId: run.vms[0]!.id, verifiedAt: new Date('2026-11-02T03:00:00Z') } });
    await ctx.d.db.restorePoint.update({ where: { id: bare }, data: { damaged: true, damage: 'chunk 9f3a… is missing' } });
  }, 120_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('both lists give the repository, the damage with its reason, the last full verify and the run that wrote it', async () => {
    const one = (await get('/api/restore-points?vm=app01')).json();
    expect(one).toEqual([expect.objectContaining({ id: withHw, repository: 'dl-uuid-app01', damaged: false, damage: null, verifiedAt: '2026-11-02T03:00:00.000Z', runId })]);
    const point = await ctx.d.db.restorePoint.findUniqueOrThrow({ where: { id: bare } });
    const inRepo = (await get(`/api/repositories/${point.repositoryId}/restore-points`)).json();
    expect(inRepo).toEqual([expect.objectContaining({ id: bare, repositoryId: point.repositoryId, repository: 'dl-uuid-old01', damaged: true, damage: 'chunk 9f3a… is missing', verifiedAt: null, runId: null })]);
  });

  it('one point: the origin vCenter, the recorded hardware, each disk with its label, datastore and provisioning, and the NIC networks once each', async () => {
    const res = await get(`/api/restore-points/${withHw}`);
    expect(res.statusCode, res.body).toBe(200);
    const origin = await ctx.d.db.vCenter.findFirstOrThrow({ where: { name: 'origin' } });
    expect(res.json()).toMatchObject({
      id: withHw,
      vmName: 'app01',
      vcenterId: origin.id,
      sourceVm: { moref: 'vm-42', name: 'app01' },
      hardware: { guestId: 'ubuntu64Guest', guestFullName: 'Ubuntu Linux (64-bit)', cpus: 2, memoryMiB: 2048, firmware: 'bios' },
      disks: [
        { key: '2000', label: 'Hard disk 1', capacityBytes: 2 * MiB, controller: 'pvscsi', datastore: 'datastore1', thin: true },
        { key: '16001', label: 'Hard disk 2', capacityBytes: MiB, controller: 'sata', datastore: 'datastore2', thin: false },
      ],
      networks: ['VM Network', 'DC0_DVPG0'],
    });
  });

  it('a point without recorded hardware or origin job still lists its disks, with nulls where nothing is known', async () => {
    const res = await get(`/api/restore-points/${bare}`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ vcenterId: null, sourceVm: { moref: null, name: 'old01' }, hardware: null, networks: [], damaged: true });
    expect(res.json().disks).toEqual([{ key: '2000', label: 'disk 2000', capacityBytes: MiB, controller: 'lsilogic', datastore: null, thin: null }]);
  });

  it('a viewer may read it; an unknown point is a 404, a repository that cannot be read a 503 naming the point; no session, no answer', async () => {
    const viewer = await signInAs(ctx.d, ctx.cookie, 'pointviewer', 'viewer');
    expect((await get(`/api/restore-points/${withHw}`, viewer)).statusCode).toBe(200);
    expect((await get('/api/restore-points/6b0c2f4e-6f1e-4d8e-9a57-3c1f5b1b2a10')).statusCode).toBe(404);
    expect((await get('/api/restore-points/not-a-uuid')).statusCode).toBe(400);
    const repo = await ctx.d.db.repository.create({ data: { name: 'gone', location: path.join(dir, 'never-created') } });
    const lost = await ctx.d.db.restorePoint.create({ data: { repositoryId: repo.id, repoPointId: 'p-lost', vmInstanceUuid: 'u-lost', vmName: 'lost01', createdAt: new Date(), logicalBytes: 1n } });
    const res = await get(`/api/restore-points/${lost.id}`);
    expect(res.statusCode).toBe(503);
    expect(res.json().message).toMatch(/^restore point p-lost of lost01 cannot be read: /);
    expect((await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/restore-points/${withHw}` })).statusCode).toBe(401);
  });
});
