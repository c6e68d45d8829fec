/**
 * Snapshot lifecycle for backups.
 *
 * Tagging: a backup snapshot is named `vaultline-<runId>` and its description
 * carries `[vaultline-run:<runId>]`, so the orphan sweep can find snapshots
 * of any run (`findByTag`) even when the name was edited.
 * Disks are read from the SNAPSHOT's own `config.hardware.device`: the VM's
 * config shows the state after the snapshot (writable delta), the snapshot's
 * shows the frozen files and their changeIds.
 */
import { backupSnapshotName, SNAPSHOT_PREFIX } from '@vaultline/contracts';
import { props, read, snapRef, vmRef, type Ctx } from './context.ts';
import { parseDevices, type ParsedDevices } from './devices.ts';
import { parseSnapshotTree } from './inventory.ts';
import { withContainerView } from './property.ts';
import { ProtocolError } from './soap/faults.ts';
import { child, children, join, ref, val } from './soap/xml.ts';
import { taskRef } from './tasks.ts';
import type { ObjectContent } from './property.ts';
import type { Disk, HardwareDescription, SnapshotTreeNode, WaitTaskOptions } from './types.ts';

const HW_PATHS = [
  'config.name',
  'config.guestId',
  'config.guestFullName',
  'config.firmware',
  'config.hardware.numCPU',
  'config.hardware.numCoresPerSocket',
  'config.hardware.memoryMB',
  'config.hardware.device',
];

export function hardwareOf(o: ObjectContent): HardwareDescription {
  const t = (p: string) => o.props.get(p)?.text;
  const n = (p: string) => {
    const v = t(p);
    return v === undefined || v === '' ? undefined : Number(v);
  };
  const dev = parseDevices(o.props.get('config.hardware.device'));
  return {
    name: t('config.name') ?? '',
    guestId: t('config.guestId'),
    guestFullName: t('config.guestFullName'),
    firmware: t('config.firmware'),
    numCpu: n('config.hardware.numCPU'),
    numCoresPerSocket: n('config.hardware.numCoresPerSocket'),
    memoryMiB: n('config.hardware.memoryMB'),
    controllers: dev.controllers,
    disks: dev.disks,
    nics: dev.nics,
  };
}

const TAG_RE = /\[vaultline-run:([^\]\s]+)\]/;

export function snapshotTag(runId: string): { name: string; description: string } {
  if (!/^[A-Za-z0-9._:-]{1,80}$/.test(runId)) throw new TypeError('runId must be 1-80 characters of [A-Za-z0-9._:-]');
  return {
    name: backupSnapshotName(runId),
    description: `Temporary Vaultline backup snapshot, removed automatically. Do not delete while the backup runs. [vaultline-run:${runId}]`,
  };
}

/** The run id of a snapshot created by Vaultline, from its description (or name). */
export function runIdOf(s: { name: string; description: string }): string | undefined {
  const m = TAG_RE.exec(s.description);
  if (m) return m[1];
  return s.name.startsWith(SNAPSHOT_PREFIX) ? s.name.slice(SNAPSHOT_PREFIX.length) || undefined : undefined;
}

export interface CreateSnapshotOptions extends WaitTaskOptions {
  runId: string;
  quiesce?: boolean | undefined;
  /** override the tagged name / description (the tag is still appended to the description) */
  name?: string | undefined;
  description?: string | undefined;
}

export interface TaggedSnapshot {
  vm: string;
  vmName: string;
  snapshot: string;
  name: string;
  description: string;
  runId: string;
  createTime: string;
}

export interface SnapshotDisks extends ParsedDevices {
  disks: Disk[];
}

export class SnapshotsApi {
  constructor(private readonly ctx: Ctx) {}

  /** CreateSnapshot_Task (memory=false) and wait; returns the snapshot moref. */
  async create(vm: string, opts: CreateSnapshotOptions): Promise<string> {
    const tag = snapshotTag(opts.runId);
    const description = opts.description ? `${opts.description} [vaultline-run:${opts.runId}]` : tag.description;
    const t = taskRef(
      await this.ctx.soap.returnval(
        'CreateSnapshot_Task',
        join([ref('_this', vmRef(vm)), val('name', opts.name ?? tag.name), val('description', description), val('memory', false), val('quiesce', opts.quiesce ?? false)]),
        { context: `CreateSnapshot_Task on ${vm}` },
      ),
      'CreateSnapshot_Task',
    );
    const result = await this.ctx.tasks.wait(t, { ...opts, context: opts.context ?? `creating snapshot of ${vm}` });
    if (!result?.text) throw new ProtocolError(`CreateSnapshot_Task on ${vm} returned no snapshot`);
    return result.text;
  }

  /** The snapshot's own devices (frozen disk files, parent chain, changeId). */
  async devices(snapshot: string): Promise<SnapshotDisks> {
    const o = await read(this.ctx, snapRef(snapshot), ['config.hardware.device']);
    return parseDevices(o.props.get('config.hardware.device'));
  }

  /** The VM's hardware as captured by the snapshot (store it with the backup; `vms.createSpecFromHardware` rebuilds it). */
  async hardware(snapshot: string): Promise<HardwareDescription> {
    const o = await read(this.ctx, snapRef(snapshot), HW_PATHS);
    return hardwareOf(o);
  }

  async disks(snapshot: string): Promise<Disk[]> {
    return (await this.devices(snapshot)).disks;
  }

  /** The VM a snapshot belongs to. */
  async vmOf(snapshot: string): Promise<string> {
    const o = await read(this.ctx, snapRef(snapshot), ['vm']);
    const v = o.props.get('vm')?.text;
    if (!v) throw new ProtocolError(`snapshot ${snapshot} has no vm`);
    return v;
  }

  /** The snapshot tree of a VM (empty when it has none). */
  async tree(vm: string): Promise<{ current?: string | undefined; roots: SnapshotTreeNode[] }> {
    const o = await read(this.ctx, vmRef(vm), ['snapshot']);
    const s = o.props.get('snapshot');
    return { current: child(s, 'currentSnapshot')?.text, roots: children(s, 'rootSnapshotList').map(parseSnapshotTree) };
  }

  /** Flat list of a VM's snapshots, parents before children. */
  async list(vm: string): Promise<SnapshotTreeNode[]> {
    const out: SnapshotTreeNode[] = [];
    const walk = (n: SnapshotTreeNode) => {
      out.push(n);
      n.children.forEach(walk);
    };
    (await this.tree(vm)).roots.forEach(walk);
    return out;
  }

  /**
   * RemoveSnapshot_Task(removeChildren=false, consolidate=true); then, if the
   * VM reports consolidationNeeded, ConsolidateVMDisks_Task.
   */
  async remove(snapshot: string, opts: WaitTaskOptions & { consolidate?: boolean } = {}): Promise<{ consolidated: boolean }> {
    const vm = await this.vmOf(snapshot);
    const t = taskRef(
      await this.ctx.soap.returnval(
        'RemoveSnapshot_Task',
        join([ref('_this', snapRef(snapshot)), val('removeChildren', false), val('consolidate', opts.consolidate ?? true)]),
        { context: `RemoveSnapshot_Task on ${snapshot}` },
      ),
      'RemoveSnapshot_Task',
    );
    await this.ctx.tasks.wait(t, { ...opts, context: opts.context ?? `removing snapshot ${snapshot} of ${vm}` });
    return { consolidated: await this.consolidateIfNeeded(vm, opts) };
  }

  /** ConsolidateVMDisks_Task when runtime.consolidationNeeded; returns whether it ran. */
  async consolidateIfNeeded(vm: string, opts: WaitTaskOptions = {}): Promise<boolean> {
    const o = await read(this.ctx, vmRef(vm), ['runtime.consolidationNeeded']);
    if (o.props.get('runtime.consolidationNeeded')?.text.trim() !== 'true') return false;
    await this.consolidate(vm, opts);
    return true;
  }

  async consolidate(vm: string, opts: WaitTaskOptions = {}): Promise<void> {
    const t = taskRef(
      await this.ctx.soap.returnval('ConsolidateVMDisks_Task', ref('_this', vmRef(vm)), { context: `ConsolidateVMDisks_Task on ${vm}` }),
      'ConsolidateVMDisks_Task',
    );
    await this.ctx.tasks.wait(t, { ...opts, context: opts.context ?? `consolidating disks of ${vm}` });
  }

  /** Vaultline snapshots on all VMs (optionally of one run), for the orphan sweep. */
  async findByTag(opts: { runId?: string } = {}): Promise<TaggedSnapshot[]> {
    const sc = this.ctx.sc();
    const objs = await withContainerView(this.ctx.soap, sc.viewManager, sc.rootFolder, ['VirtualMachine'], (view) =>
      props(this.ctx, { view, maxObjects: 500, propSets: [{ type: 'VirtualMachine', paths: ['name', 'snapshot'] }] }, 'searching Vaultline snapshots'),
    );
    const out: TaggedSnapshot[] = [];
    for (const o of objs) {
      const s = o.props.get('snapshot');
      if (!s) continue;
      const walk = (n: SnapshotTreeNode) => {
        const runId = runIdOf(n);
        if (runId && (opts.runId === undefined || opts.runId === runId)) {
          out.push({ vm: o.obj.value, vmName: o.props.get('name')?.text ?? '', snapshot: n.moref, name: n.name, description: n.description, runId, createTime: n.createTime });
        }
        n.children.forEach(walk);
      };
      children(s, 'rootSnapshotList').map(parseSnapshotTree).forEach(walk);
    }
    return out;
  }
}
