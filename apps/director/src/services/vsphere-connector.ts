/** The Director's VCenterConnector over @vaultline/vsphere. */
import type { InventoryTree, InventoryVm, PlacementTargets } from '@vaultline/contracts';
import { ConnectError, hostsMounting, type TaggedTree, type VirtualMachine, type VmPlacement, InvalidLogin, probeThumbprint, ThumbprintMismatchError, TimeoutError, TlsError, VSphereClient, VSphereError } from '@vaultline/vsphere';
import { ESXI_HOST_IDENTITY, VCenterProblem, type VCenterConnection, type VCenterConnector } from './vcenter-connector.ts';

function explain(err: unknown, url: string): never {
  const host = (() => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  })();
  if (err instanceof InvalidLogin) throw new VCenterProblem(`${host} rejected the user name or password`, 'login');
  if (err instanceof ThumbprintMismatchError) throw new VCenterProblem(err.message, 'thumbprint');
  if (err instanceof TlsError) throw new VCenterProblem(`TLS with ${host} failed: ${err.message}`, 'tls');
  if (err instanceof ConnectError || err instanceof TimeoutError) throw new VCenterProblem(`cannot reach ${host}: ${err.message}`, 'unreachable');
  if (err instanceof VSphereError) throw new VCenterProblem(`${host}: ${err.message}`, 'other');
  throw err;
}

async function withClient<T>(conn: VCenterConnection, fn: (c: VSphereClient) => Promise<T>): Promise<T> {
  let client: VSphereClient | null = null;
  try {
    client = await VSphereClient.connect({
      url: conn.url,
      username: conn.username,
      password: conn.password,
      ...(conn.thumbprintSha256 ? { thumbprintSha256: conn.thumbprintSha256 } : {}),
      allowHttp: conn.allowHttp,
      timeoutMs: 30_000,
      keepAliveMs: 0,
    });
    return await fn(client);
  } catch (err) {
    return explain(err, conn.url);
  } finally {
    await client?.close().catch(() => undefined);
  }
}

function inventoryVm(vm: VirtualMachine, placement?: VmPlacement): InventoryVm {
  return {
    moref: vm.moref,
    name: vm.name,
    ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}),
    ...(vm.biosUuid ? { biosUuid: vm.biosUuid } : {}),
    powerState: vm.powerState,
    ...(vm.guestId ? { guestId: vm.guestId } : {}),
    ...(vm.numCpu !== undefined ? { cpus: vm.numCpu } : {}),
    ...(vm.memoryMiB !== undefined ? { memoryMiB: vm.memoryMiB } : {}),
    ...(vm.host ? { host: vm.host } : {}),
    changeTrackingEnabled: vm.changeTrackingEnabled,
    disks: vm.disks.map((d) => ({
      key: d.key,
      label: d.label ?? `disk ${d.key}`,
      capacityBytes: d.capacityBytes,
      fileName: d.fileName,
      controller: d.controller,
      busNumber: d.busNumber,
      unitNumber: d.unitNumber,
      thin: d.thin,
      diskMode: d.diskMode,
    })),
    ...(placement
      ? {
          datacenter: placement.datacenter,
          ...(placement.cluster ? { cluster: placement.cluster } : {}),
          ...(placement.folder ? { folder: placement.folder } : {}),
          ...(placement.folderPath ? { folderPath: placement.folderPath } : {}),
          containers: placement.containers,
        }
      : {}),
  };
}

export function vsphereConnector(): VCenterConnector {
  return {
    async probeThumbprint(url) {
      try {
        const t = await probeThumbprint(url, { timeoutMs: 10_000 });
        return { sha256: t.sha256, sha1: t.sha1 };
      } catch (err) {
        return explain(err, url);
      }
    },
    verify: (conn) =>
      withClient(conn, async (c) => {
        if (c.isVCenter || c.about.instanceUuid) return { product: c.about.fullName, apiVersion: c.apiVersion, instanceUuid: c.about.instanceUuid ?? null };
        // A standalone ESXi host has no instance UUID: its hardware UUID identifies it instead.
        const host = (await c.inventory.all()).hosts[0]?.systemUuid;
        return { product: c.about.fullName, apiVersion: c.apiVersion, instanceUuid: host ? `${ESXI_HOST_IDENTITY}${host}` : null };
      }),
    listVms: (conn) => withClient(conn, async (c): Promise<InventoryVm[]> => (await c.inventory.vms()).filter((vm) => !vm.template).map((vm) => inventoryVm(vm))),
    inventory: (conn) =>
      withClient(conn, async (c): Promise<InventoryTree> => {
        // Tags are vCenter's (vAPI); a standalone ESXi host has none.
        const tree: TaggedTree = c.isVCenter ? await c.tagging.withTags(await c.inventory.tree()) : await c.inventory.tree();
        return {
          vms: tree.vms.filter((vm) => !vm.template).map((vm) => inventoryVm(vm, vm.placement)),
          containers: tree.containers.map((k) => ({ kind: k.kind, moref: k.moref, name: k.name, path: k.path, parent: k.parent, datacenter: k.datacenter })),
          ...(tree.tagsError ? { tagsError: tree.tagsError } : {}),
        };
      }),
    placementTargets: (conn) =>
      withClient(conn, async (c): Promise<PlacementTargets> => {
        const [inv, targets] = [await c.inventory.all(), await c.inventory.placementTargets()];
        const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
        return {
          hosts: inv.hosts
            .map((h) => ({ moref: h.moref, name: h.name, datacenter: h.datacenter, cluster: h.cluster ?? null, connectionState: h.connectionState ?? null, inMaintenanceMode: h.inMaintenanceMode ?? false }))
            .sort(byName),
          folders: targets.folders.map((f) => ({ moref: f.moref, name: f.name, datacenter: f.datacenter, path: f.path })).sort((a, b) => a.path.localeCompare(b.path)),
          resourcePools: targets.resourcePools.map((p) => ({ moref: p.moref, name: p.name, datacenter: p.datacenter, hosts: p.hosts })).sort(byName),
          datastores: inv.datastores
            .map((d) => ({
              moref: d.moref,
              name: d.name,
              datacenter: d.datacenter,
              type: d.type,
              capacityBytes: d.capacityBytes,
              freeBytes: d.freeBytes,
              accessible: d.accessible,
              hosts: hostsMounting(inv, d),
            }))
            .sort(byName),
          networks: inv.networks.map((n) => ({ moref: n.moref, name: n.name, datacenter: n.datacenter })).sort(byName),
        };
      }),
  };
}
