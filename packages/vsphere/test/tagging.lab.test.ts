/**
 * vSphere tags against the lab vCenter's vAPI REST endpoints: the tagging client logs in with the vCenter
 * account (a wrong password is refused, as vCenter refuses it), lists tags with their categories, and the
 * inventory tree gains each tag as a container of the VMs it is attached to, directly or through a host.
 */
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VSphereClient } from '../src/index.ts';

const MiB = 1024 * 1024;

let lab: Lab;
let client: VSphereClient;
const connect = (password: string) => VSphereClient.connect({ url: lab.url, username: lab.username, password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });

beforeAll(async () => {
  lab = await startLab({ hotadd: false });
  client = await connect(lab.password);
}, 120_000);
afterAll(async () => {
  await client?.close();
  await lab?.stop();
});

describe('lab: vSphere tags over vAPI', () => {
  it('creates a category and tags, attaches them, and lists them with their category names', async () => {
    const vm = await lab.createVm({ name: 'tagged-01', disks: [{ capacityBytes: 16 * MiB }] });
    const category = await client.tagging.createCategory('Backup tier');
    const gold = await client.tagging.createTag(category, 'Gold');
    const silver = await client.tagging.createTag(category, 'Silver');
    await client.tagging.attach(gold, { type: 'VirtualMachine', value: vm.moref });

    const tags = await client.tagging.tags();
    expect(tags.map((t) => `${t.categoryName}/${t.name}`)).toEqual(['Backup tier/Gold', 'Backup tier/Silver']);
    expect(tags.find((t) => t.name === 'Gold')!.id).toBe(gold);
    const attached = await client.tagging.attachedObjects([gold, silver]);
    expect(attached.get(gold)).toEqual([{ type: 'VirtualMachine', value: vm.moref }]);
    expect(attached.get(silver)).toEqual([]);

    await client.tagging.detach(gold, { type: 'VirtualMachine', value: vm.moref });
    expect((await client.tagging.attachedObjects([gold])).get(gold)).toEqual([]);
  }, 60_000);

  it('the inventory tree holds each tag as a container of the VMs tagged directly or through their host', async () => {
    const a = await lab.createVm({ name: 'tree-tag-a', disks: [{ capacityBytes: 16 * MiB }] });
    await lab.createVm({ name: 'tree-tag-b', disks: [{ capacityBytes: 16 * MiB }] });
    const category = await client.tagging.createCategory('Owner');
    const web = await client.tagging.createTag(category, 'web');
    const hostWide = await client.tagging.createTag(category, 'host-wide');
    await client.tagging.attach(web, { type: 'VirtualMachine', value: a.moref });

    const plain = await client.inventory.tree();
    const host = plain.vms.find((v) => v.moref === a.moref)!.placement.host!;
    await client.tagging.attach(hostWide, { type: 'HostSystem', value: host });

    const tree = await client.tagging.withTags(await client.inventory.tree());
    expect(tree.tagsError).toBeUndefined();
    expect(tree.containers.find((c) => c.moref === web)).toEqual({ kind: 'tag', moref: web, name: 'web', path: 'Owner/web', parent: null, datacenter: '' });
    const holding = (tag: string) => tree.vms.filter((v) => v.placement.containers.includes(tag)).map((v) => v.name).sort();
    expect(holding(web)).toEqual(['tree-tag-a']);
    const onHost = plain.vms.filter((v) => v.placement.host === host).map((v) => v.name).sort();
    expect(onHost).toContain('tree-tag-a');
    expect(holding(hostWide)).toEqual(onHost);
  }, 60_000);

  it('a wrong password is refused by the vAPI login, and the tree says why it has no tags', async () => {
    // The SOAP login takes only the right password; a client whose password changed after login is what
    // reaches the vAPI login with a wrong one, so that is what is built here.
    const other = await connect(lab.password);
    try {
      (other as unknown as { tagging: { credentials: () => { username: string; password: string } } }).tagging.credentials = () => ({ username: lab.username, password: 'wrong' });
      await expect(other.tagging.tags()).rejects.toThrow(/refused the login of .*HTTP 401/);
      const tree = await other.tagging.withTags(await other.inventory.tree());
      expect(tree.tagsError).toMatch(/refused the login/);
      expect(tree.containers.some((c) => c.kind === 'tag')).toBe(false);
    } finally {
      await other.close();
    }
  }, 60_000);
});
