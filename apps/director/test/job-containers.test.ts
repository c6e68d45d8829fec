/**
 * Jobs on containers (real Postgres/Redis, lab vCenter): a job takes a VM folder or a host; each run
 * expands it against the inventory read when the run starts, so a VM added to the container later is
 * backed up by the next run and a removed one is not; duplicates come once, exclusions are honoured, the
 * run log says which container brought each VM in, and a container the vCenter lost fails that source only.
 * A vSphere tag (the lab's vAPI) is a source the same way: the VMs tagged when the run starts, directly or
 * through their host; a tag that cannot be read fails that source with the reason.
 * No Transporter runs here: the run items are the rows a run start writes.
 */
import type { InjectOptions } from 'fastify';
import type { InventoryTree, ProtectionOverview } from '@vaultline/contracts';
import { VSphereClient } from '@vaultline/vsphere';
import { startLab, PROXY_VM_NAME, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

const returnval = (xml: string) => /<returnval[^>]*>([^<]*)<\/returnval>/.exec(xml)?.[1] ?? '';

describe('jobs on folders and hosts: containers expanded at each run start (real Postgres/Redis, lab vCenter)', () => {
  const ctx = signedInDirector();
  let lab: Lab;
  let vcenterId = '';
  let repositoryId = '';
  let rootFolder = '';
  let apps = '';
  const inject = (o: InjectOptions) => ctx.d.app.fastify.inject({ ...o, headers: { cookie: ctx.cookie, ...(o.headers ?? {}) } });
  const tree = async (): Promise<InventoryTree> => {
    const res = await inject({ method: 'GET', url: `/api/vcenters/${vcenterId}/inventory` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  const soap = async (body: string) => (await lab.soap()).call(body);
  const moveInto = async (folder: string, vm: string) => (await lab.soap()).task(`<MoveIntoFolder_Task><_this type="Folder">${folder}</_this><list type="VirtualMachine">${vm}</list></MoveIntoFolder_Task>`);
  const newVm = (name: string) => lab.createVm({ name, disks: [{ capacityBytes: 1 << 20 }] });
  /** Starts a run of the job, returns its items (sorted by name), then marks the run finished so the next can start. */
  const run = async (jobId: string) => {
    const res = await inject({ method: 'POST', url: `/api/jobs/${jobId}/run` });
    expect(res.statusCode, res.body).toBe(202);
    const id = res.json().id as string;
    const row = await ctx.d.db.jobRun.findUniqueOrThrow({ where: { id }, include: { vms: { orderBy: { vmName: 'asc' } } } });
    await ctx.d.db.jobRun.updateMany({ where: { id, finishedAt: null }, data: { status: 'succeeded', finishedAt: new Date() } });
    return { run: row, items: row.vms, names: row.vms.map((v) => v.vmName), logOf: (name: string) => (row.vms.find((v) => v.vmName === name)?.log as { message: string }[] | undefined)?.map((l) => l.message) ?? [] };
  };

  beforeAll(async () => {
    lab = await startLab({ port: 0 });
    const vc = await inject({ method: 'POST', url: '/api/vcenters', payload: { name: 'vc', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 } });
    expect(vc.statusCode, vc.body).toBe(201);
    vcenterId = vc.json().id;
    repositoryId = (await ctx.d.db.repository.create({ data: { name: 'r', location: '/srv/r' } })).id;
    rootFolder = (await tree()).vms.find((v) => v.name === PROXY_VM_NAME)!.folder!;
    apps = returnval(await soap(`<CreateFolder><_this type="Folder">${rootFolder}</_this><name>Apps</name></CreateFolder>`));
    expect(apps).not.toBe('');
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('lists the containers with their paths, and each VM with the containers holding it', async () => {
    const web01 = await newVm('web01');
    await moveInto(apps, web01.moref);
    const t = await tree();
    const kinds = Object.fromEntries(t.containers.map((c) => [c.path, c.kind]));
    expect(kinds).toMatchObject({ DC0: 'datacenter', 'DC0/DC0_C0': 'cluster', 'DC0/vm/Apps': 'folder' });
    const hosts = t.containers.filter((c) => c.kind === 'host');
    expect(hosts.length).toBeGreaterThanOrEqual(2);
    const cluster = t.containers.find((c) => c.kind === 'cluster')!;
    for (const h of hosts) expect(h).toMatchObject({ parent: cluster.moref, path: `DC0/DC0_C0/${h.name}` });
    expect(t.containers.find((c) => c.moref === apps)).toMatchObject({ name: 'Apps', parent: t.containers.find((c) => c.kind === 'datacenter')!.moref });
    const vm = t.vms.find((v) => v.name === 'web01')!;
    expect(vm).toMatchObject({ folder: apps, folderPath: 'DC0/vm/Apps', cluster: cluster.moref });
    expect(vm.containers).toEqual(expect.arrayContaining([apps, cluster.moref, vm.host!, vm.datacenter!]));
  });

  it('a folder job backs up the VMs the folder holds at each run: a VM added later is in the next run, a removed one is not', async () => {
    const created = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'apps', vcenterId, repositoryId, sources: [{ kind: 'folder', moref: apps, name: 'Apps', path: 'somewhere/old' }] } });
    expect(created.statusCode, created.body).toBe(201);
    // Stored as the vCenter names it now.
    expect(created.json().sources).toEqual([{ kind: 'folder', moref: apps, name: 'Apps', path: 'DC0/vm/Apps' }]);
    const jobId = created.json().id as string;

    const first = await run(jobId);
    expect(first.names).toEqual(['web01']);
    expect(first.logOf('web01')).toEqual(['Included by folder DC0/vm/Apps']);

    const web02 = await newVm('web02');
    await moveInto(apps, web02.moref);
    await newVm('elsewhere'); // not in the folder
    const second = await run(jobId);
    expect(second.names).toEqual(['web01', 'web02']);
    expect(second.items.every((i) => i.status === 'queued')).toBe(true);
    expect(second.items.find((i) => i.vmName === 'web02')).toMatchObject({ vmMoref: web02.moref, vmInstanceUuid: web02.instanceUuid });

    // The overview counts the folder's VMs as in the job.
    const ov = await inject({ method: 'GET', url: '/api/overview/protection?fresh=true&limit=500' });
    expect(ov.statusCode, ov.body).toBe(200);
    const byName = new Map((ov.json() as ProtectionOverview).vms.map((v) => [v.name, v]));
    expect(byName.get('web02')?.jobs.map((j) => j.name)).toEqual(['apps']);
    expect(byName.get('elsewhere')?.jobs).toEqual([]);

    await (await lab.soap()).task(`<Destroy_Task><_this type="VirtualMachine">${web02.moref}</_this></Destroy_Task>`);
    expect((await run(jobId)).names).toEqual(['web01']);
  });

  it('a host job with a VM chosen by itself too and an exclusion: each VM once, the exclusion skipped, the log says why each is in', async () => {
    let t = await tree();
    const web01 = t.vms.find((v) => v.name === 'web01')!;
    const host = t.containers.find((c) => c.moref === web01.host)!;
    const onHost = () => t.vms.filter((v) => v.host === host.moref).map((v) => v.name);
    const skipped = t.vms.find((v) => v.host === host.moref && v.name !== 'web01')!;
    const created = await inject({
      method: 'POST',
      url: '/api/jobs',
      payload: {
        name: 'host',
        vcenterId,
        repositoryId,
        sources: [
          { moref: web01.moref, name: 'web01', instanceUuid: web01.instanceUuid },
          { kind: 'host', moref: host.moref, name: host.name, path: host.path, exclude: [{ moref: skipped.moref, name: skipped.name }] },
          { kind: 'folder', moref: apps, name: 'Apps', path: 'DC0/vm/Apps' },
        ],
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    const jobId = created.json().id as string;
    const first = await run(jobId);
    expect(first.names).toEqual(onHost().filter((n) => n !== skipped.name).sort());
    // The run's first item also says what the exclusions left out.
    expect(first.logOf('web01')).toEqual([`Chosen by itself; also in host ${host.path}, folder DC0/vm/Apps`, `Excluded: ${skipped.name} (in host ${host.path})`]);

    // Two new VMs: the lab spreads them over the hosts, so one lands on this one.
    await newVm('later01');
    await newVm('later02');
    t = await tree();
    const expected = onHost().filter((n) => n !== skipped.name).sort();
    expect(expected.filter((n) => n.startsWith('later'))).toHaveLength(1);
    const second = await run(jobId);
    expect(second.names).toEqual(expected);
    const later = expected.find((n) => n.startsWith('later'))!;
    expect(second.logOf(later)).toEqual([`Included by host ${host.path}`]);
  });

  it('a container the vCenter no longer has fails that source, clearly, and the rest of the run goes on; a job cannot be created on one', async () => {
    const refused = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'ghost', vcenterId, repositoryId, sources: [{ kind: 'folder', moref: 'group-v999', name: 'Gone', path: 'DC0/vm/Gone' }] } });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ message: 'vCenter vc has no folder group-v999 (DC0/vm/Gone): it was removed; choose it again from the inventory', details: [{ path: 'sources.0', message: 'not_found' }] });
    const wrongKind = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'ghost', vcenterId, repositoryId, sources: [{ kind: 'host', moref: apps, name: 'Apps', path: 'DC0/vm/Apps' }] } });
    expect(wrongKind.statusCode).toBe(400);
    expect(wrongKind.json().details).toEqual([{ path: 'sources.0', message: 'other_kind' }]);

    const created = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'losing', vcenterId, repositoryId, sources: [{ kind: 'folder', moref: apps, name: 'Apps', path: 'DC0/vm/Apps' }] } });
    expect(created.statusCode, created.body).toBe(201);
    const jobId = created.json().id as string;
    // The folder is removed after the job was made (its moref is gone from the inventory).
    await ctx.d.db.backupJob.update({ where: { id: jobId }, data: { sources: [{ kind: 'folder', moref: 'group-v999', name: 'Gone', path: 'DC0/vm/Gone' }, { kind: 'folder', moref: apps, name: 'Apps', path: 'DC0/vm/Apps' }] } });
    const r = await run(jobId);
    expect(r.names).toEqual(['folder DC0/vm/Gone', 'web01']);
    const gone = r.items.find((i) => i.vmName === 'folder DC0/vm/Gone')!;
    expect(gone).toMatchObject({ status: 'failed', vmMoref: 'group-v999' });
    expect(gone.error).toBe('folder DC0/vm/Gone (group-v999) no longer exists in vCenter vc: it was removed or recreated under another id; the job\'s other sources were backed up. Choose it again in the job\'s sources.');
    expect(r.items.find((i) => i.vmName === 'web01')!.status).toBe('queued');
    expect(r.run.status).toBe('queued');

    // Only the lost container: the run is over at once, failed, saying why.
    await ctx.d.db.backupJob.update({ where: { id: jobId }, data: { sources: [{ kind: 'folder', moref: 'group-v999', name: 'Gone', path: 'DC0/vm/Gone' }] } });
    const only = await run(jobId);
    expect(only.run).toMatchObject({ status: 'failed' });
    expect(only.run.error).toMatch(/^folder DC0\/vm\/Gone \(group-v999\) no longer exists/);
  });

  it('a folder holds the VMs of its subfolders: a VM added to a subfolder later is in the next run', async () => {
    const created = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'apps-tree', vcenterId, repositoryId, sources: [{ kind: 'folder', moref: apps, name: 'Apps', path: 'DC0/vm/Apps' }] } });
    expect(created.statusCode, created.body).toBe(201);
    const jobId = created.json().id as string;
    expect((await run(jobId)).names).toEqual(['web01']);
    const web = returnval(await soap(`<CreateFolder><_this type="Folder">${apps}</_this><name>Web</name></CreateFolder>`));
    const nested = await newVm('nested01');
    await moveInto(web, nested.moref);
    const t = await tree();
    expect(t.containers.find((c) => c.moref === web)).toMatchObject({ kind: 'folder', name: 'Web', path: 'DC0/vm/Apps/Web', parent: apps });
    expect(t.vms.find((v) => v.name === 'nested01')).toMatchObject({ folder: web, folderPath: 'DC0/vm/Apps/Web', containers: expect.arrayContaining([apps, web]) });
    const r = await run(jobId);
    expect(r.names).toEqual(['nested01', 'web01']);
    expect(r.logOf('nested01')).toEqual(['Included by folder DC0/vm/Apps']);
  });

  it('jobs stored before containers (VM sources without a kind) run as before', async () => {
    const web01 = (await tree()).vms.find((v) => v.name === 'web01')!;
    const job = await ctx.d.db.backupJob.create({ data: { name: 'old-shape', vcenterId, repositoryId, sources: [{ moref: web01.moref, name: 'web01', instanceUuid: web01.instanceUuid }] } });
    const listed = await inject({ method: 'GET', url: `/api/jobs/${job.id}` });
    expect(listed.json().sources).toEqual([{ moref: web01.moref, name: 'web01', instanceUuid: web01.instanceUuid }]);
    const r = await run(job.id);
    expect(r.items.map((i) => [i.vmName, i.vmMoref, i.vmInstanceUuid, i.log])).toEqual([['web01', web01.moref, web01.instanceUuid, []]]);
  });

  it('a tag job backs up the VMs tagged when each run starts (directly or through their host); unreadable tags fail that source, saying why', async () => {
    const vc = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
    try {
      const tier = await vc.tagging.createCategory('Tier');
      const gold = await vc.tagging.createTag(tier, 'Gold');
      const tagged = await newVm('gold01');
      await vc.tagging.attach(gold, { type: 'VirtualMachine', value: tagged.moref });

      let t = await tree();
      expect(t.tagsError).toBeUndefined();
      expect(t.containers.find((c) => c.moref === gold)).toEqual({ kind: 'tag', moref: gold, name: 'Gold', path: 'Tier/Gold', parent: null, datacenter: '' });
      expect(t.vms.find((v) => v.name === 'gold01')!.containers).toContain(gold);

      const created = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'gold', vcenterId, repositoryId, sources: [{ kind: 'tag', moref: gold, name: 'Gold', path: 'old/name' }] } });
      expect(created.statusCode, created.body).toBe(201);
      expect(created.json().sources).toEqual([{ kind: 'tag', moref: gold, name: 'Gold', path: 'Tier/Gold' }]);
      const jobId = created.json().id as string;
      const first = await run(jobId);
      expect(first.names).toEqual(['gold01']);
      expect(first.logOf('gold01')).toEqual(['Included by tag Tier/Gold']);

      // Tagged after the job was made: in the next run. A tag on a host brings in every VM on it.
      const later = await newVm('gold02');
      await vc.tagging.attach(gold, { type: 'VirtualMachine', value: later.moref });
      expect((await run(jobId)).names).toEqual(['gold01', 'gold02']);
      await vc.tagging.detach(gold, { type: 'VirtualMachine', value: later.moref });
      t = await tree();
      const host = t.vms.find((v) => v.name === 'web01')!.host!;
      await vc.tagging.attach(gold, { type: 'HostSystem', value: host });
      const onHost = (await tree()).vms.filter((v) => v.host === host).map((v) => v.name);
      expect((await run(jobId)).names).toEqual([...new Set(['gold01', ...onHost])].sort());
      await vc.tagging.detach(gold, { type: 'HostSystem', value: host });

      // vCenter's tagging service stops answering while SOAP still does.
      await lab.vapiDown(true);
      try {
        t = await tree();
        expect(t.tagsError).toMatch(/HTTP 503/);
        expect(t.containers.some((c) => c.kind === 'tag')).toBe(false);
        const refused = await inject({ method: 'POST', url: '/api/jobs', payload: { name: 'gold-again', vcenterId, repositoryId, sources: [{ kind: 'tag', moref: gold, name: 'Gold', path: 'Tier/Gold' }] } });
        expect(refused.statusCode).toBe(400);
        expect(refused.json()).toMatchObject({ message: expect.stringMatching(/^cannot check tag Tier\/Gold in vCenter vc: its tags could not be read \(.*HTTP 503/), details: [{ path: 'sources.0', message: 'tags_unavailable' }] });
        // A job on a tag and a folder: the tag fails with the reason, the folder's VMs still run.
        await ctx.d.db.backupJob.update({ where: { id: jobId }, data: { sources: [{ kind: 'tag', moref: gold, name: 'Gold', path: 'Tier/Gold' }, { kind: 'folder', moref: apps, name: 'Apps', path: 'DC0/vm/Apps' }] } });
        const r = await run(jobId);
        const failed = r.items.find((i) => i.vmName === 'tag Tier/Gold')!;
        expect(failed).toMatchObject({ status: 'failed', vmMoref: gold });
        expect(failed.error).toMatch(/^tag Tier\/Gold was not expanded: the tags of vCenter vc could not be read \(.*HTTP 503.*\); the job's other sources were backed up\.$/);
        expect(r.items.filter((i) => i.status === 'queued').map((i) => i.vmName)).toEqual(expect.arrayContaining(['web01']));
      } finally {
        await lab.vapiDown(false);
      }
    } finally {
      await vc.close();
    }
  });
});
