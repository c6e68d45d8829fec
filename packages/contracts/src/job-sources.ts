/**
 * A job's sources expanded against an inventory read: the VMs a run backs up, each once, with the sources
 * that brought it in; the containers the vCenter no longer has; the VMs left out by an exclusion. Used by
 * the Director when a run starts (against a fresh read), by the overview and by the wizard's counts.
 */
import { isContainerSource, type ContainerSource, type JobSource, type VmSource } from './jobs.ts';
import type { InventoryContainer, InventoryVm } from './vcenters.ts';

export interface ExpandedVm {
  /** The inventory VM; for a VM source the vCenter does not list now, only what the source says. */
  vm: Pick<InventoryVm, 'moref' | 'name' | 'instanceUuid'> & Partial<InventoryVm>;
  /** The sources that name or hold it, in the job's order (a VM source first when the VM is chosen by itself). */
  via: JobSource[];
}

export interface SourceExpansion {
  vms: ExpandedVm[];
  /** Container sources whose container the inventory does not have (deleted, or the read is of another vCenter). */
  missing: ContainerSource[];
  /** VMs a container holds that its exclusions left out (and no other source brought in). */
  excluded: Array<{ vm: InventoryVm; by: ContainerSource }>;
}

const sameVm = (a: { moref: string; instanceUuid?: string | undefined }, b: { moref: string; instanceUuid?: string | undefined }) =>
  a.instanceUuid && b.instanceUuid ? a.instanceUuid === b.instanceUuid : a.moref === b.moref;

/** The VMs of the inventory a container holds now (templates are not in the inventory). */
export function vmsInContainer(inventory: { vms: readonly InventoryVm[] }, moref: string): InventoryVm[] {
  return inventory.vms.filter((vm) => vm.containers?.includes(moref) || vm.host === moref || vm.folder === moref || vm.cluster === moref || vm.datacenter === moref);
}

/** How a source reads in a log line or a list: "folder DC0/vm/Apps", "VM app01". */
export function describeSource(s: JobSource): string {
  return isContainerSource(s) ? `${s.kind} ${s.path}` : `VM ${s.name}`;
}

/**
 * Expands `sources` against `inventory`. VM sources are kept whether or not the inventory lists them (the
 * backup of a missing VM fails on its own, as before containers); a VM in several sources comes once.
 */
export function expandSources(sources: readonly JobSource[], inventory: { vms: readonly InventoryVm[]; containers: readonly InventoryContainer[] }): SourceExpansion {
  const out: ExpandedVm[] = [];
  const missing: ContainerSource[] = [];
  const excluded: SourceExpansion['excluded'] = [];
  const find = (v: { moref: string; instanceUuid?: string | undefined }) => out.find((e) => sameVm(e.vm, v));
  for (const s of sources) {
    if (isContainerSource(s)) continue;
    const vm = s as VmSource;
    const inv = inventory.vms.find((v) => sameVm(v, vm));
    const known = find(vm);
    if (known) known.via.push(s);
    else out.push({ vm: inv ?? { moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) }, via: [s] });
  }
  const containers = new Set(inventory.containers.map((c) => c.moref));
  const left: SourceExpansion['excluded'] = [];
  for (const s of sources) {
    if (!isContainerSource(s)) continue;
    if (!containers.has(s.moref)) {
      missing.push(s);
      continue;
    }
    for (const vm of vmsInContainer(inventory, s.moref)) {
      if (s.exclude?.some((x) => sameVm(vm, x))) {
        left.push({ vm, by: s });
        continue;
      }
      const known = find(vm);
      if (known) known.via.push(s);
      else out.push({ vm, via: [s] });
    }
  }
  for (const x of left) if (!find(x.vm) && !excluded.some((e) => sameVm(e.vm, x.vm))) excluded.push(x);
  return { vms: out, missing, excluded };
}
