import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest } from '../src/soap.ts';
import { MiB } from './helpers.ts';

let lab: Lab;
let startMs = 0;

beforeAll(async () => {
  const t = Date.now();
  lab = await startLab({ demo: true });
  startMs = Date.now() - t;
});
afterAll(async () => {
  await lab?.stop();
});

const demoNames = ['web-01', 'web-02', 'db-01', 'app-01', 'app-02', 'file-01', 'dc-01', 'mail-01', 'legacy-ide-01', 'test-nocbt-01'];

function allocatedBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).blocks * 512;
  }
  return n;
}

describe('demo inventory', () => {
  it('has a cluster of 2 hosts, 2 datastores, 10 VMs with 1-3 disks, an IDE disk, a VM with CBT off and the proxy VM', async () => {
    const inv = JSON.parse((await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem })).body.toString()) as {
      hosts: string[];
      datastores: Record<string, string>;
      clusterName: string;
    };
    expect(inv.hosts).toHaveLength(2);
    expect(Object.keys(inv.datastores).sort()).toEqual(['datastore1', 'datastore2']);
    const vms = await Promise.all(demoNames.map((n) => lab.getVm(n)));
    for (const vm of vms) {
      expect(vm.disks.length).toBeGreaterThanOrEqual(1);
      expect(vm.disks.length).toBeLessThanOrEqual(3);
    }
    expect(vms.some((vm) => vm.disks.some((d) => d.controller === 'ide'))).toBe(true);
    expect(vms.filter((vm) => !vm.cbt).map((vm) => vm.name)).toEqual(['test-nocbt-01']);
    expect(lab.proxyVm.name).toBe('vaultline-proxy');
    expect(lab.proxyVm.powerState).toBe('poweredOn');
  });

  it('holds a few hundred MiB of real data in sparse multi-GiB disks and started within a few seconds', async () => {
    const used = lab.datastores.reduce((n, ds) => n + allocatedBytes(ds.path), 0);
    expect(used).toBeGreaterThan(150 * MiB);
    expect(used).toBeLessThan(600 * MiB);
    const web = await lab.getVm('web-01');
    expect(web.disks[0]!.capacityBytes).toBe(8 * 1024 * MiB);
    expect(fs.statSync(web.disks[0]!.flatPath).size).toBe(8 * 1024 * MiB);
    expect(startMs).toBeLessThan(20_000); // typically ~5 s; generous for a loaded CI machine
  });

  it('tags its VMs Backup tier/Gold and Backup tier/Silver in vCenter\'s vAPI, so a job can be tried on a tag', async () => {
    const api = async (method: string, p: string, body?: unknown, session?: string) => {
      const headers: Record<string, string> = session ? { 'vmware-api-session-id': session } : { authorization: `Basic ${Buffer.from(`${lab.username}:${lab.password}`).toString('base64')}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await httpRequest(`${new URL(lab.url).origin}/rest/com/vmware/cis${p}`, { method, headers, ca: lab.certPem, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      expect(res.status, res.body.toString()).toBe(200);
      return JSON.parse(res.body.toString()).value;
    };
    const session = (await api('POST', '/session')) as string;
    const ids = (await api('GET', '/tagging/tag', undefined, session)) as string[];
    const tags = await Promise.all(ids.map(async (id) => ({ id, name: ((await api('GET', `/tagging/tag/id:${id}`, undefined, session)) as { name: string }).name })));
    const attached = (await api('POST', '/tagging/tag-association?~action=list-attached-objects-on-tags', { tag_ids: ids }, session)) as Array<{ tag_id: string; object_ids: Array<{ id: string }> }>;
    const names = new Map((await Promise.all(demoNames.map((n) => lab.getVm(n)))).map((vm) => [vm.moref, vm.name]));
    const holding = (tag: string) => attached.find((a) => a.tag_id === tags.find((t) => t.name === tag)!.id)!.object_ids.map((o) => names.get(o.id)).sort();
    expect(tags.map((t) => t.name).sort()).toEqual(['Gold', 'Silver']);
    expect(holding('Gold')).toEqual(['db-01', 'file-01', 'mail-01']);
    expect(holding('Silver')).toEqual(['app-01', 'app-02', 'web-01', 'web-02']);
  });
});
