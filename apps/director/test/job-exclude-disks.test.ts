/**
 * Disks a job's VM source leaves out (real Postgres/Redis, lab vCenter): creating or changing a job keeps a
 * VM's `excludeDisks` when they are disks the VM has, and refuses, naming the VM's disks, a key it does not
 * have, or leaving out every disk of the VM.
 */
import type { InjectOptions } from 'fastify';
import { startLab, type Lab, type LabVm } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

describe("a VM source's disks left out (real Postgres/Redis, lab vCenter)", () => {
  const ctx = signedInDirector();
  let lab: Lab;
  let vm: LabVm;
  let vcenterId = '';
  let repositoryId = '';
  const inject = (o: InjectOptions) => ctx.d.app.fastify.inject({ ...o, headers: { cookie: ctx.cookie, ...(o.headers ?? {}) } });
  const source = (excludeDisks?: number[]) => ({ moref: vm.moref, name: 'db-01', instanceUuid: vm.instanceUuid, ...(excludeDisks ? { excludeDisks } : {}) });
  const create = (name: string, excludeDisks?: number[]) => inject({ method: 'POST', url: '/api/jobs', payload: { name, vcenterId, repositoryId, sources: [source(excludeDisks)] } });

  beforeAll(async () => {
    lab = await startLab({ port: 0 });
    const vc = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'vc', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(vc.statusCode, vc.body).toBe(201);
    vcenterId = vc.json().id;
    repositoryId = (await ctx.d.db.repository.create({ data: { name: 'r', location: '/srv/r' } })).id;
    vm = await lab.createVm({ name: 'db-01', disks: [{ capacityBytes: 1 << 20 }, { capacityBytes: 2 << 20 }] });
    expect(vm.disks.map((d) => d.label)).toEqual(['Hard disk 1', 'Hard disk 2']);
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('keeps the disks a VM source leaves out (once each, in key order), and drops an empty list', async () => {
    const second = vm.disks[1]!.key;
    const created = await create('db', [second, second]);
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json().sources).toEqual([{ moref: vm.moref, name: 'db-01', instanceUuid: vm.instanceUuid, excludeDisks: [second] }]);
    const id = created.json().id as string;
    const stored = await ctx.d.db.backupJob.findUniqueOrThrow({ where: { id } });
    expect(stored.sources).toEqual([{ moref: vm.moref, name: 'db-01', instanceUuid: vm.instanceUuid, excludeDisks: [second] }]);

    // Changing the sources: the first disk left out instead, then none.
    const first = vm.disks[0]!.key;
    const patched = await inject({ method: 'PATCH', url: `/api/jobs/${id}`, payload: { sources: [source([first])] } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().sources[0].excludeDisks).toEqual([first]);
    const none = await inject({ method: 'PATCH', url: `/api/jobs/${id}`, payload: { sources: [source([])] } });
    expect(none.statusCode, none.body).toBe(200);
    expect(none.json().sources).toEqual([{ moref: vm.moref, name: 'db-01', instanceUuid: vm.instanceUuid }]);
  });

  it('refuses a disk the VM does not have, naming the disks it has', async () => {
    const missing = Math.max(...vm.disks.map((d) => d.key)) + 5;
    const res = await create('db-bad-key', [missing]);
    expect(res.statusCode, res.body).toBe(400);
    const [a, b] = vm.disks;
    expect(res.json().message).toBe(`VM db-01 has no disk ${missing}; its disks are ${a!.key} (Hard disk 1), ${b!.key} (Hard disk 2)`);
    expect(res.json().details).toEqual([{ path: 'sources.0.excludeDisks', message: 'no_such_disk' }]);
    expect(await ctx.d.db.backupJob.findUnique({ where: { name: 'db-bad-key' } })).toBeNull();
  });

  it('refuses leaving out every disk of the VM: skipping the VM is removing it', async () => {
    const res = await create('db-no-disks', vm.disks.map((d) => d.key));
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().message).toBe("VM db-01: choose the VM's disks to leave out, not all of them; to skip the VM, remove it");
    expect(res.json().details).toEqual([{ path: 'sources.0.excludeDisks', message: 'all_disks' }]);
    expect(await ctx.d.db.backupJob.findUnique({ where: { name: 'db-no-disks' } })).toBeNull();
  });
});
