/**
 * Inventory through one ContainerView per datacenter (so every object knows
 * its datacenter, which /folder URLs need) and a paged RetrievePropertiesEx.
 * Unset properties are simply absent in vSphere answers: a missing
 * `config.changeTrackingEnabled` means false.
 */
import { props, read, vmRef, type Ctx } from './context.ts';
import { parseDevices } from './devices.ts';
import { withContainerView, type ObjectContent } from './property.ts';
import { child, children, join, num, bool, ref, text, val, type XmlNode } from './soap/xml.ts';
import { ProtocolError } from './soap/faults.ts';
import type { Cluster, Datacenter, Datastore, Host, Inventory, InventoryTree, Network, ResourcePool, SnapshotTreeNode, VirtualMachine, VmFolder, VmPlacement } from './types.ts';

export const VM_PATHS = [
  'name',
  'parent',
  'config.uuid',
  'config.instanceUuid',
  'config.guestId',
  'config.guestFullName',
  'config.template',
  'config.hardware.numCPU',
  'config.hardware.memoryMB',
  'config.hardware.device',
  'config.files.vmPathName',
  'config.changeTrackingEnabled',
  'capability.changeTrackingSupported',
  'runtime.powerState',
  'runtime.host',
  'runtime.consolidationNeeded',
  'guest.toolsStatus',
  'guest.toolsRunningStatus',
  'resourcePool',
  'datastore',
  'snapshot',
];

const DS_PATHS = ['name', 'summary.type', 'summary.capacity', 'summary.freeSpace', 'summary.url', 'summary.accessible', 'info', 'host'];
const HOST_PATHS = ['name', 'parent', 'datastore', 'runtime.connectionState', 'runtime.powerState', 'runtime.inMaintenanceMode', 'hardware.systemInfo.uuid'];
const CLUSTER_PATHS = ['name', 'host', 'datastore', 'resourcePool'];

const str = (o: ObjectContent, p: string): string | undefined => o.props.get(p)?.text;
const flag = (o: ObjectContent, p: string): boolean | undefined => {
  const v = o.props.get(p);
  return v ? v.text.trim() === 'true' : undefined;
};
const numeric = (o: ObjectContent, p: string): number | undefined => {
  const v = o.props.get(p)?.text;
  return v !== undefined && v.trim() !== '' ? Number(v) : undefined;
};
const refs = (o: ObjectContent, p: string): string[] => (o.props.get(p)?.children ?? []).map((c) => c.text);

/**
 * The hosts that mount a datastore, from both sides: the datastore's own host list (mounted and accessible)
 * and every host whose datastore list names it. Either list can be incomplete on a vCenter whose views lag
 * (seen on simulators); a host the datastore lists as not mounted or not accessible is left out.
 */
export function hostsMounting(inv: Pick<Inventory, 'hosts'>, ds: Pick<Datastore, 'moref' | 'hosts'>): string[] {
  const refused = new Set(ds.hosts.filter((h) => !h.mounted || !h.accessible).map((h) => h.host));
  const out = new Set(ds.hosts.filter((h) => h.mounted && h.accessible).map((h) => h.host));
  for (const h of inv.hosts) if (h.datastores.includes(ds.moref) && !refused.has(h.moref)) out.add(h.moref);
  return [...out].sort();
}

export function parseSnapshotTree(n: XmlNode): SnapshotTreeNode {
  return {
    moref: child(n, 'snapshot')?.text ?? '',
    name: text(n, 'name') ?? '',
    description: text(n, 'description') ?? '',
    id: num(n, 'id') ?? 0,
    createTime: text(n, 'createTime') ?? '',
    state: text(n, 'state') ?? '',
    quiesced: bool(n, 'quiesced') ?? false,
    children: children(n, 'childSnapshotList').map(parseSnapshotTree),
  };
}

export function parseVm(o: ObjectContent, datacenter?: string): VirtualMachine {
  const devices = parseDevices(o.props.get('config.hardware.device'));
  const snap = o.props.get('snapshot');
  return {
    moref: o.obj.value,
    name: str(o, 'name') ?? '',
    datacenter,
    biosUuid: str(o, 'config.uuid'),
    instanceUuid: str(o, 'config.instanceUuid'),
    powerState: str(o, 'runtime.powerState') ?? 'unknown',
    toolsStatus: str(o, 'guest.toolsStatus'),
    toolsRunningStatus: str(o, 'guest.toolsRunningStatus'),
    guestId: str(o, 'config.guestId'),
    guestFullName: str(o, 'config.guestFullName'),
    numCpu: numeric(o, 'config.hardware.numCPU'),
    memoryMiB: numeric(o, 'config.hardware.memoryMB'),
    template: flag(o, 'config.template') ?? false,
    host: str(o, 'runtime.host'),
    resourcePool: str(o, 'resourcePool'),
    folder: str(o, 'parent'),
    vmPathName: str(o, 'config.files.vmPathName'),
    changeTrackingEnabled: flag(o, 'config.changeTrackingEnabled') ?? false,
    changeTrackingSupported: flag(o, 'capability.changeTrackingSupported'),
    consolidationNeeded: flag(o, 'runtime.consolidationNeeded') ?? false,
    hasSnapshots: !!snap && children(snap, 'rootSnapshotList').length > 0,
    currentSnapshot: child(snap, 'currentSnapshot')?.text,
    controllers: devices.controllers,
    disks: devices.disks,
    nics: devices.nics,
    datastores: refs(o, 'datastore'),
  };
}

function parseDatastore(o: ObjectContent, datacenter: string): Datastore {
  const info = o.props.get('info');
  const vmfsEl = child(info, 'vmfs');
  return {
    moref: o.obj.value,
    name: str(o, 'name') ?? '',
    datacenter,
    type: str(o, 'summary.type') ?? (vmfsEl ? 'VMFS' : 'unknown'),
    capacityBytes: numeric(o, 'summary.capacity') ?? 0,
    freeBytes: numeric(o, 'summary.freeSpace') ?? 0,
    url: str(o, 'summary.url'),
    accessible: flag(o, 'summary.accessible') ?? true,
    vmfs: vmfsEl
      ? {
          uuid: text(vmfsEl, 'uuid'),
          version: text(vmfsEl, 'version'),
          extents: children(vmfsEl, 'extent').map((e) => ({ diskName: text(e, 'diskName') ?? '', partition: num(e, 'partition') ?? 0 })),
        }
      : undefined,
    hosts: (o.props.get('host')?.children ?? []).map((m) => ({
      host: child(m, 'key')?.text ?? '',
      mounted: bool(child(m, 'mountInfo'), 'mounted') ?? true,
      accessible: bool(child(m, 'mountInfo'), 'accessible') ?? true,
    })),
  };
}

export class InventoryApi {
  constructor(private readonly ctx: Ctx) {}

  /** Datacenters with their inventory path ("Folder/DC"; the name for top-level ones), as /folder's dcPath needs. */
  async datacenters(): Promise<Datacenter[]> {
    const sc = this.ctx.sc();
    return withContainerView(this.ctx.soap, sc.viewManager, sc.rootFolder, ['Datacenter', 'Folder'], async (view) => {
      const objs = await props(this.ctx, {
        view,
        propSets: [
          { type: 'Datacenter', paths: ['name', 'parent', 'vmFolder', 'hostFolder', 'datastoreFolder'] },
          { type: 'Folder', paths: ['name', 'parent'] },
        ],
        maxObjects: 500,
      });
      const folders = new Map(objs.filter((o) => o.obj.type === 'Folder').map((o) => [o.obj.value, o]));
      const pathOf = (o: ObjectContent): string => {
        const parts = [str(o, 'name') ?? ''];
        let parent = str(o, 'parent');
        for (let guard = 0; parent && parent !== sc.rootFolder.value && guard < 100; guard++) {
          const f = folders.get(parent);
          if (!f) break;
          parts.unshift(str(f, 'name') ?? '');
          parent = str(f, 'parent');
        }
        return parts.join('/');
      };
      return objs
        .filter((o) => o.obj.type === 'Datacenter')
        .map((o) => ({
          moref: o.obj.value,
          name: str(o, 'name') ?? '',
          path: pathOf(o),
          vmFolder: str(o, 'vmFolder') ?? '',
          hostFolder: str(o, 'hostFolder') ?? '',
          datastoreFolder: str(o, 'datastoreFolder') ?? '',
        }));
    });
  }

  /** The whole inventory: datacenters, clusters, hosts, datastores, networks and VMs (templates included). */
  async all(opts: { pageSize?: number } = {}): Promise<Inventory> {
    const inv: Inventory = { datacenters: await this.datacenters(), clusters: [], hosts: [], datastores: [], networks: [], vms: [] };
    const sc = this.ctx.sc();
    for (const dc of inv.datacenters) {
      await withContainerView(
        this.ctx.soap,
        sc.viewManager,
        { type: 'Datacenter', value: dc.moref },
        ['ClusterComputeResource', 'HostSystem', 'Datastore', 'Network', 'VirtualMachine'],
        async (view) => {
          const objs = await props(
            this.ctx,
            {
              view,
              maxObjects: opts.pageSize ?? 200,
              propSets: [
                { type: 'ClusterComputeResource', paths: CLUSTER_PATHS },
                { type: 'HostSystem', paths: HOST_PATHS },
                { type: 'Datastore', paths: DS_PATHS },
                { type: 'Network', paths: ['name'] },
                { type: 'VirtualMachine', paths: VM_PATHS },
              ],
            },
            `inventory of ${dc.path}`,
          );
          this.collect(inv, objs, dc.path);
        },
      );
    }
    return inv;
  }

  private collect(inv: Inventory, objs: ObjectContent[], dc: string): void {
    const clusters: Cluster[] = [];
    for (const o of objs) {
      switch (o.obj.type) {
        case 'ClusterComputeResource':
          clusters.push({ moref: o.obj.value, name: str(o, 'name') ?? '', datacenter: dc, hosts: refs(o, 'host'), datastores: refs(o, 'datastore'), resourcePool: str(o, 'resourcePool') });
          break;
        case 'HostSystem': {
          const h: Host = {
            moref: o.obj.value,
            name: str(o, 'name') ?? '',
            datacenter: dc,
            cluster: o.props.get('parent')?.attrs.type === 'ClusterComputeResource' ? str(o, 'parent') : undefined,
            connectionState: str(o, 'runtime.connectionState'),
            powerState: str(o, 'runtime.powerState'),
            inMaintenanceMode: flag(o, 'runtime.inMaintenanceMode'),
            datastores: refs(o, 'datastore'),
            systemUuid: str(o, 'hardware.systemInfo.uuid'),
          };
          inv.hosts.push(h);
          break;
        }
        case 'Datastore':
          inv.datastores.push(parseDatastore(o, dc));
          break;
        case 'Network':
        case 'DistributedVirtualPortgroup':
        case 'OpaqueNetwork': {
          const n: Network = { moref: o.obj.value, name: str(o, 'name') ?? '', datacenter: dc };
          inv.networks.push(n);
          break;
        }
        case 'VirtualMachine':
          inv.vms.push(parseVm(o, dc));
          break;
      }
    }
    inv.clusters.push(...clusters);
  }

  /**
   * Where a new VM can go: every VM folder (with its path from the
   * datacenter's vm folder) and every resource pool (with the hosts of the
   * cluster or compute resource that owns it).
   */
  async placementTargets(): Promise<{ folders: VmFolder[]; resourcePools: ResourcePool[] }> {
    const sc = this.ctx.sc();
    const folders: VmFolder[] = [];
    const resourcePools: ResourcePool[] = [];
    for (const dc of await this.datacenters()) {
      await withContainerView(this.ctx.soap, sc.viewManager, { type: 'Datacenter', value: dc.moref }, ['Folder', 'ResourcePool', 'ClusterComputeResource', 'ComputeResource'], async (view) => {
        const objs = await props(
          this.ctx,
          {
            view,
            maxObjects: 500,
            propSets: [
              { type: 'Folder', paths: ['name', 'parent', 'childType'] },
              { type: 'ResourcePool', paths: ['name', 'owner'] },
              { type: 'ClusterComputeResource', paths: ['host'] },
              { type: 'ComputeResource', paths: ['host'] },
            ],
          },
          `folders and resource pools of ${dc.path}`,
        );
        const byId = new Map(objs.map((o) => [o.obj.value, o]));
        const pathOf = (o: ObjectContent): string => {
          const parts = [str(o, 'name') ?? ''];
          let cur = o;
          for (let guard = 0; cur.obj.value !== dc.vmFolder && guard < 100; guard++) {
            const parent = byId.get(str(cur, 'parent') ?? '');
            if (!parent || parent.obj.type !== 'Folder') break;
            parts.unshift(str(parent, 'name') ?? '');
            cur = parent;
          }
          return parts.join('/');
        };
        for (const o of objs) {
          if (o.obj.type === 'Folder' && (o.props.get('childType')?.children ?? []).some((c) => c.text === 'VirtualMachine')) {
            folders.push({ moref: o.obj.value, name: str(o, 'name') ?? '', datacenter: dc.path, path: pathOf(o) });
          } else if (o.obj.type === 'ResourcePool') {
            const owner = str(o, 'owner');
            const cr = owner ? byId.get(owner) : undefined;
            resourcePools.push({ moref: o.obj.value, name: str(o, 'name') ?? '', datacenter: dc.path, owner, hosts: cr ? refs(cr, 'host') : [] });
          }
        }
      });
    }
    return { folders, resourcePools };
  }

  /**
   * Every VM with the containers that hold it (datacenter, VM folders, cluster, host), and those containers:
   * datacenters, clusters, hosts and VM folders (a datacenter's root "vm" folder is not listed: the
   * datacenter stands for it). One ContainerView per datacenter, read in one paged RetrievePropertiesEx.
   */
  async tree(opts: { pageSize?: number } = {}): Promise<InventoryTree> {
    const sc = this.ctx.sc();
    const out: InventoryTree = { vms: [], containers: [] };
    for (const dc of await this.datacenters()) {
      out.containers.push({ kind: 'datacenter', moref: dc.moref, name: dc.name, path: dc.path, parent: null, datacenter: dc.moref });
      await withContainerView(this.ctx.soap, sc.viewManager, { type: 'Datacenter', value: dc.moref }, ['Folder', 'ClusterComputeResource', 'ComputeResource', 'HostSystem', 'VirtualMachine'], async (view) => {
        const objs = await props(
          this.ctx,
          {
            view,
            maxObjects: opts.pageSize ?? 200,
            propSets: [
              { type: 'Folder', paths: ['name', 'parent', 'childType'] },
              { type: 'ClusterComputeResource', paths: ['name', 'parent'] },
              { type: 'ComputeResource', paths: ['name', 'parent'] },
              { type: 'HostSystem', paths: ['name', 'parent'] },
              { type: 'VirtualMachine', paths: VM_PATHS },
            ],
          },
          `inventory tree of ${dc.path}`,
        );
        const byId = new Map(objs.map((o) => [o.obj.value, o]));
        const name = (o: ObjectContent) => str(o, 'name') ?? '';
        /** The folders from the datacenter's `root` folder (excluded) down to `moref` (included): names and morefs. */
        const folderChain = (moref: string | undefined, root: string): ObjectContent[] => {
          const chain: ObjectContent[] = [];
          let cur = moref ? byId.get(moref) : undefined;
          for (let guard = 0; cur && cur.obj.type === 'Folder' && cur.obj.value !== root && guard < 100; guard++) {
            chain.unshift(cur);
            cur = byId.get(str(cur, 'parent') ?? '');
          }
          return chain;
        };
        const hostFolderPath = (o: ObjectContent) => [dc.path, ...folderChain(str(o, 'parent'), dc.hostFolder).map(name), name(o)].join('/');
        const clusterPath = new Map<string, string>();
        for (const o of objs) {
          if (o.obj.type === 'ClusterComputeResource') {
            const path = hostFolderPath(o);
            clusterPath.set(o.obj.value, path);
            out.containers.push({ kind: 'cluster', moref: o.obj.value, name: name(o), path, parent: dc.moref, datacenter: dc.moref });
          }
        }
        const hostCluster = new Map<string, string>();
        for (const o of objs) {
          if (o.obj.type !== 'HostSystem') continue;
          const parent = o.props.get('parent');
          const cluster = parent?.attrs.type === 'ClusterComputeResource' ? parent.text : undefined;
          if (cluster) hostCluster.set(o.obj.value, cluster);
          // A standalone host sits in a ComputeResource of its own name: its path is that resource's.
          const cr = parent && !cluster ? byId.get(parent.text) : undefined;
          const path = cluster ? `${clusterPath.get(cluster) ?? dc.path}/${name(o)}` : cr ? hostFolderPath(cr) : `${dc.path}/${name(o)}`;
          out.containers.push({ kind: 'host', moref: o.obj.value, name: name(o), path, parent: cluster ?? dc.moref, datacenter: dc.moref });
        }
        const vmFolderPath = (chain: ObjectContent[]) => [dc.path, 'vm', ...chain.map(name)].join('/');
        for (const o of objs) {
          if (o.obj.type !== 'Folder' || o.obj.value === dc.vmFolder) continue;
          if (!(o.props.get('childType')?.children ?? []).some((c) => c.text === 'VirtualMachine')) continue;
          const chain = folderChain(o.obj.value, dc.vmFolder);
          if (chain.length === 0 || str(chain[0]!, 'parent') !== dc.vmFolder) continue; // not under this datacenter's vm folder
          const parent = str(o, 'parent');
          out.containers.push({ kind: 'folder', moref: o.obj.value, name: name(o), path: vmFolderPath(chain), parent: parent && parent !== dc.vmFolder ? parent : dc.moref, datacenter: dc.moref });
        }
        for (const o of objs) {
          if (o.obj.type !== 'VirtualMachine') continue;
          const vm = parseVm(o, dc.path);
          const chain = folderChain(vm.folder, dc.vmFolder);
          const cluster = vm.host ? hostCluster.get(vm.host) : undefined;
          const placement: VmPlacement = {
            datacenter: dc.moref,
            folder: vm.folder,
            folderPath: vm.folder === dc.vmFolder ? `${dc.path}/vm` : chain.length > 0 ? vmFolderPath(chain) : undefined,
            host: vm.host,
            cluster,
            containers: [dc.moref, dc.vmFolder, ...chain.map((f) => f.obj.value), ...(cluster ? [cluster] : []), ...(vm.host ? [vm.host] : [])],
          };
          out.vms.push({ ...vm, placement });
        }
      });
    }
    return out;
  }

  /** One VM by moref (ManagedObjectNotFound when it does not exist). */
  async vm(moref: string): Promise<VirtualMachine> {
    return parseVm(await read(this.ctx, vmRef(moref), VM_PATHS));
  }

  /** All VMs (no other inventory). */
  async vms(): Promise<VirtualMachine[]> {
    const sc = this.ctx.sc();
    return withContainerView(this.ctx.soap, sc.viewManager, sc.rootFolder, ['VirtualMachine'], async (view) =>
      (await props(this.ctx, { view, maxObjects: 200, propSets: [{ type: 'VirtualMachine', paths: VM_PATHS }] }, 'listing VMs')).map((o) => parseVm(o)),
    );
  }

  /** SearchIndex.FindByUuid (instance UUID by default). */
  async findVmByUuid(uuid: string, opts: { instanceUuid?: boolean } = {}): Promise<string | undefined> {
    const si = this.ctx.sc().searchIndex;
    if (!si) throw new ProtocolError('this server has no SearchIndex');
    const r = await this.ctx.soap.returnval(
      'FindByUuid',
      join([ref('_this', si), val('uuid', uuid), val('vmSearch', true), val('instanceUuid', opts.instanceUuid ?? true)]),
    );
    return r?.text || undefined;
  }
}
