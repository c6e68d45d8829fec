/**
 * Where a restored VM goes: host, VM folder, resource pool, datastore and the
 * network of each NIC. Each is the operator's choice when given (by moref or
 * name; a folder also by path like "vm/Restores"), else the source VM's. All
 * of them are checked against the inventory before anything is created, and
 * every problem is named in one error.
 */
import { RestoreError } from '../errors.ts';
import { parseDatastorePath } from '@vaultline/contracts';
import type { PlacementTargets, RestoreInventory, RestorePort, VmHardware } from './ports.ts';

type ResourcePool = PlacementTargets['resourcePools'][number];
type VmFolder = PlacementTargets['folders'][number];

export interface PlacementRequest {
  host?: string | undefined;
  folder?: string | undefined;
  resourcePool?: string | undefined;
  datastore?: string | undefined;
  /** source network name -> target network name */
  networkMap?: Record<string, string> | undefined;
}

export interface Placement {
  folder: string;
  resourcePool: string;
  host?: string | undefined;
  datastore: string;
  /** for CreateVM: every source network name -> its target */
  networkMap: Record<string, { name: string; moref: string }>;
  /** "host DC0_C0_H1, folder vm, pool Resources, datastore datastore1" for the run log */
  summary: string;
}

function pick<T extends { moref: string; name: string }>(what: string, wanted: string, all: T[], extra: (x: T) => string[] = () => []): { found?: T; problem?: string } {
  const byRef = all.find((x) => x.moref === wanted);
  if (byRef) return { found: byRef };
  const named = all.filter((x) => x.name === wanted || extra(x).includes(wanted));
  if (named.length === 1) return { found: named[0]! };
  if (named.length > 1) return { problem: `${what} "${wanted}" is ambiguous (${named.map((x) => x.moref).join(', ')}); name it by moref` };
  const known = [...new Set(all.map((x) => x.name))].sort();
  return { problem: `${what} "${wanted}" does not exist (there ${known.length === 1 ? 'is' : 'are'}: ${known.join(', ') || 'none'})` };
}

export async function resolvePlacement(vsphere: RestorePort, req: PlacementRequest, hw: VmHardware, source: { moref?: string | undefined; datastores?: string[] } | undefined, inv?: RestoreInventory): Promise<Placement> {
  inv ??= await vsphere.inventory();
  const targets = await vsphere.placementTargets();
  const from = source?.moref && inv.vms.some((v) => v.moref === source.moref) ? await vsphere.vmPlacement(source.moref) : {};
  const problems: string[] = [];

  // Host
  let host: RestoreInventory['hosts'][number] | undefined;
  if (req.host) {
    const r = pick('host', req.host, inv.hosts);
    host = r.found;
    if (r.problem) problems.push(r.problem);
  } else if (from.host) {
    host = inv.hosts.find((h) => h.moref === from.host);
  }

  // Resource pool: named, else the target host's cluster's (when the host was named), else the source VM's.
  let pool: ResourcePool | undefined;
  if (req.resourcePool) {
    const r = pick('resource pool', req.resourcePool, targets.resourcePools);
    pool = r.found;
    if (r.problem) problems.push(r.problem);
  } else if (req.host && host) {
    const h = host;
    pool =
      targets.resourcePools.find((p) => p.moref === inv.clusters.find((c) => c.hosts.includes(h.moref))?.resourcePool) ??
      targets.resourcePools.find((p) => p.hosts.includes(h.moref));
    if (!pool) problems.push(`host ${h.name} belongs to no resource pool; name one`);
  } else if (from.resourcePool) {
    pool = targets.resourcePools.find((p) => p.moref === from.resourcePool);
  }
  if (!pool && !problems.length && !req.resourcePool) problems.push('the source VM is gone: choose a resource pool (or a host) for the restored VM');
  if (host && pool && pool.hosts.length > 0 && !pool.hosts.includes(host.moref)) {
    problems.push(`host ${host.name} is not in the cluster of resource pool ${pool.name}`);
  }

  // Folder: named, else the source VM's, else the datacenter's top VM folder.
  let folder: VmFolder | undefined;
  if (req.folder) {
    const r = pick('VM folder', req.folder, targets.folders, (f) => [f.path, `${f.datacenter}/${f.path}`]);
    folder = r.found;
    if (r.problem) problems.push(r.problem);
  } else if (from.folder) {
    folder = targets.folders.find((f) => f.moref === from.folder);
  }
  if (!folder && !req.folder) {
    const dc = inv.datacenters.length === 1 ? inv.datacenters[0] : undefined;
    folder = dc ? targets.folders.find((f) => f.moref === dc.vmFolder) : undefined;
    if (!folder) problems.push('the source VM is gone: choose a VM folder for the restored VM');
  }

  // Datastore: named, else the source's first disk's.
  const dsName = req.datastore ?? (hw.disks[0] ? parseDatastorePath(hw.disks[0].fileName).datastore : source?.datastores?.[0]);
  const ds = dsName ? inv.datastores.find((d) => d.name === dsName) : undefined;
  if (!dsName) problems.push('the source VM is gone: choose a datastore for the restored VM');
  else if (!ds) problems.push(`datastore "${dsName}" does not exist (there are: ${inv.datastores.map((d) => d.name).sort().join(', ')})`);
  else if (!ds.accessible) problems.push(`datastore ${ds.name} is not accessible`);
  else {
    const { mountedOn } = ds;
    if (host && mountedOn.length > 0 && !mountedOn.includes(host.moref)) problems.push(`datastore ${ds.name} is not mounted on host ${host.name}`);
    else if (!host && pool && pool.hosts.length > 0 && mountedOn.length > 0 && !pool.hosts.some((h) => mountedOn.includes(h))) {
      problems.push(`datastore ${ds.name} is not mounted on any host of resource pool ${pool.name}`);
    }
  }

  // Networks: every NIC's target network must exist; every mapped source name must be one of the NICs'.
  const networkMap: Placement['networkMap'] = {};
  const nicNetworks = [...new Set(hw.nics.map((n) => n.networkName).filter((n): n is string => !!n))];
  for (const src of Object.keys(req.networkMap ?? {})) {
    if (!nicNetworks.includes(src)) problems.push(`the VM in the restore point has no NIC on network "${src}" (its NICs are on: ${nicNetworks.join(', ') || 'none'})`);
  }
  for (const src of nicNetworks) {
    const wanted = req.networkMap?.[src] ?? src;
    const found = inv.networks.filter((n) => n.name === wanted || n.moref === wanted);
    if (found.length === 0) {
      problems.push(
        req.networkMap?.[src]
          ? `network "${wanted}" (the target of "${src}") does not exist (there are: ${[...new Set(inv.networks.map((n) => n.name))].sort().join(', ')})`
          : `network "${src}" of the VM's NIC does not exist in this vCenter; map it to one that does with networkMap`,
      );
    } else {
      networkMap[src] = { name: found[0]!.name, moref: found[0]!.moref };
    }
  }

  if (problems.length) throw new RestoreError(`cannot place the restored VM: ${problems.join('; ')}. Nothing was created.`);
  return {
    folder: folder!.moref,
    resourcePool: pool!.moref,
    ...(host ? { host: host.moref } : {}),
    datastore: ds!.name,
    networkMap,
    summary: [host ? `host ${host.name}` : null, `folder ${folder!.path}`, `resource pool ${pool!.name}`, `datastore ${ds!.name}`, ...Object.entries(networkMap).map(([s, t]) => (s === t.name ? `network ${s}` : `network ${s} → ${t.name}`))]
      .filter(Boolean)
      .join(', '),
  };
}
