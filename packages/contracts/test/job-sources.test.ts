/** Job sources: VMs (the shape jobs were stored in before containers) or containers, and their expansion. */
import { describe, expect, it } from 'vitest';
import { describeSource, expandSources, isContainerSource, JobCreateSchema, JobSourceSchema, JobUpdateSchema, vmsInContainer, type InventoryContainer, type InventoryVm } from '../src/index.ts';

const vm = (moref: string, name: string, containers: string[], instanceUuid?: string): InventoryVm => ({
  moref,
  name,
  ...(instanceUuid ? { instanceUuid } : {}),
  powerState: 'poweredOn',
  changeTrackingEnabled: true,
  disks: [],
  datacenter: 'datacenter-2',
  containers: ['datacenter-2', ...containers],
});
const containers: InventoryContainer[] = [
  { kind: 'datacenter', moref: 'datacenter-2', name: 'DC0', path: 'DC0', parent: null, datacenter: 'datacenter-2' },
  { kind: 'cluster', moref: 'domain-c7', name: 'DC0_C0', path: 'DC0/DC0_C0', parent: 'datacenter-2', datacenter: 'datacenter-2' },
  { kind: 'host', moref: 'host-1', name: 'H1', path: 'DC0/DC0_C0/H1', parent: 'domain-c7', datacenter: 'datacenter-2' },
  { kind: 'host', moref: 'host-2', name: 'H2', path: 'DC0/DC0_C0/H2', parent: 'domain-c7', datacenter: 'datacenter-2' },
  { kind: 'folder', moref: 'group-v9', name: 'Apps', path: 'DC0/vm/Apps', parent: 'datacenter-2', datacenter: 'datacenter-2' },
];
const inventory = {
  vms: [vm('vm-1', 'app01', ['group-v9', 'domain-c7', 'host-1'], 'u1'), vm('vm-2', 'app02', ['group-v9', 'domain-c7', 'host-2'], 'u2'), vm('vm-3', 'db01', ['domain-c7', 'host-1'], 'u3')],
  containers,
};
const base = { name: 'j', vcenterId: '3f1c1f7e-8a3c-4b1e-9f51-1c1e8f3c2a10', repositoryId: '3f1c1f7e-8a3c-4b1e-9f51-1c1e8f3c2a11' };

describe('JobSourceSchema', () => {
  it('reads a VM source stored before containers unchanged (no kind), and one with kind "vm"', () => {
    const old = { moref: 'vm-1', name: 'app01', instanceUuid: 'u1' };
    expect(JobSourceSchema.parse(old)).toEqual(old);
    expect(isContainerSource(JobSourceSchema.parse(old))).toBe(false);
    expect(JobSourceSchema.parse({ kind: 'vm', moref: 'vm-1', name: 'app01' })).toEqual({ kind: 'vm', moref: 'vm-1', name: 'app01' });
    expect(JobCreateSchema.parse({ ...base, sources: [old] }).sources).toEqual([old]);
  });

  it('takes a folder, host, cluster or datacenter with its path and optional exclusions, and keeps them', () => {
    for (const kind of ['folder', 'host', 'cluster', 'datacenter'] as const) {
      const src = { kind, moref: 'x-1', name: 'X', path: 'DC0/X' };
      const parsed = JobSourceSchema.parse(src);
      expect(parsed).toEqual(src);
      expect(isContainerSource(parsed)).toBe(true);
    }
    const withExclusions = { kind: 'folder', moref: 'group-v9', name: 'Apps', path: 'DC0/vm/Apps', exclude: [{ moref: 'vm-2', name: 'app02', instanceUuid: 'u2' }] };
    expect(JobUpdateSchema.parse({ sources: [withExclusions] }).sources).toEqual([withExclusions]);
  });

  it('refuses a container without a path, an unknown kind, and an empty source list (naming containers)', () => {
    expect(JobSourceSchema.safeParse({ kind: 'folder', moref: 'group-v9', name: 'Apps' }).success).toBe(false);
    expect(JobSourceSchema.safeParse({ kind: 'vapp', moref: 'resgroup-v1', name: 'V', path: 'DC0/vm/V' }).success).toBe(false);
    // A vSphere tag is a container source too (its moref is the tag's id).
    expect(JobSourceSchema.safeParse({ kind: 'tag', moref: 'urn:vmomi:InventoryServiceTag:1:GLOBAL', name: 'Gold', path: 'Tier/Gold' }).success).toBe(true);
    expect(JobSourceSchema.safeParse({ kind: 'folder', moref: '', name: 'Apps', path: 'p' }).success).toBe(false);
    const empty = JobCreateSchema.safeParse({ ...base, sources: [] });
    expect(empty.error?.issues[0]?.message).toBe('choose at least one VM or container');
  });
});

describe('expandSources', () => {
  it('expands containers to the VMs they hold now, each VM once, a VM chosen by itself first, with the sources naming it', () => {
    const apps = { kind: 'folder' as const, moref: 'group-v9', name: 'Apps', path: 'DC0/vm/Apps' };
    const h1 = { kind: 'host' as const, moref: 'host-1', name: 'H1', path: 'DC0/DC0_C0/H1' };
    const app01 = { moref: 'vm-1', name: 'app01', instanceUuid: 'u1' };
    const out = expandSources([apps, h1, app01], inventory);
    expect(out.vms.map((e) => [e.vm.name, e.via.map(describeSource)])).toEqual([
      ['app01', ['VM app01', 'folder DC0/vm/Apps', 'host DC0/DC0_C0/H1']],
      ['app02', ['folder DC0/vm/Apps']],
      ['db01', ['host DC0/DC0_C0/H1']],
    ]);
    expect(out.missing).toEqual([]);
    expect(out.excluded).toEqual([]);
  });

  it('honours exclusions (unless another source brings the VM in), and reports containers the inventory lacks', () => {
    const cluster = { kind: 'cluster' as const, moref: 'domain-c7', name: 'DC0_C0', path: 'DC0/DC0_C0', exclude: [{ moref: 'vm-3', name: 'db01' }, { moref: 'vm-x', name: 'app02', instanceUuid: 'u2' }] };
    const gone = { kind: 'folder' as const, moref: 'group-v404', name: 'Gone', path: 'DC0/vm/Gone' };
    const out = expandSources([cluster, gone], inventory);
    expect(out.vms.map((e) => e.vm.name)).toEqual(['app01']);
    expect(out.excluded.map((x) => x.vm.name)).toEqual(['app02', 'db01']);
    expect(out.missing).toEqual([gone]);
    // db01 excluded from the cluster but on host-1, which the job also takes: it is backed up.
    const both = expandSources([cluster, { kind: 'host', moref: 'host-1', name: 'H1', path: 'DC0/DC0_C0/H1' }], inventory);
    expect(both.vms.map((e) => e.vm.name).sort()).toEqual(['app01', 'db01']);
    expect(both.excluded.map((x) => x.vm.name)).toEqual(['app02']);
  });

  it('keeps a VM source the inventory does not list (its backup fails on its own), and counts a datacenter as all its VMs', () => {
    const out = expandSources([{ moref: 'vm-9', name: 'ghost' }, { kind: 'datacenter', moref: 'datacenter-2', name: 'DC0', path: 'DC0' }], inventory);
    expect(out.vms.map((e) => e.vm.name)).toEqual(['ghost', 'app01', 'app02', 'db01']);
    expect(vmsInContainer(inventory, 'host-2').map((v) => v.name)).toEqual(['app02']);
    expect(vmsInContainer(inventory, 'group-v404')).toEqual([]);
  });
});
