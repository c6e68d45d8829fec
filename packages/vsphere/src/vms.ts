/**
 * VM operations for restores: CreateVM_Task from a hardware description
 * (controllers, new disks with fileOperation=create, NICs), or the same
 * config through ImportVApp (an import lease whose disk URLs take
 * streamOptimized VMDKs, see import.ts), power on/off, ReconfigVM,
 * Rename_Task, and Destroy_Task.
 *
 * Destroy is guarded: only VMs that carry the restore marker written by
 * create() (extraConfig `vaultline.restore` = restoreId) can be destroyed, and
 * the caller must name the same restoreId. A source VM can therefore not be
 * destroyed through this client by mistake.
 */
import { read, vmRef, type Ctx } from './context.ts';
import { ImportLease } from './import.ts';
import { waitLeaseReady } from './lease.ts';
import { configSpecXml, controllerChange, newDiskChange, nicChange, SCSI_KINDS, type ConfigSpec, type DeviceChange, type NicType } from './devices.ts';
import { ClientSafetyError, ProtocolError } from './soap/faults.ts';
import { el, join, ref, text, typed, val, type MoRef } from './soap/xml.ts';
import { taskRef } from './tasks.ts';
import { INSTANT_RECOVERY_MARKER_KEY } from './vmx.ts';
import type { Controller, ControllerKind, HardwareDescription, WaitTaskOptions } from './types.ts';

export const RESTORE_MARKER_KEY = 'vaultline.restore';

export interface VmFile {
  key: number;
  /** datastore path, e.g. "[ds1] app01/app01.nvram" */
  name: string;
  /** config, nvram, diskDescriptor, diskExtent, snapshotData, snapshotList, log, swap, … */
  type: string;
  size: number;
}

export interface CreateVmSpec {
  name: string;
  /** restore run id, stored in extraConfig; needed to destroy the VM later */
  restoreId: string;
  /** VM folder moref */
  folder: string;
  resourcePool: string;
  host?: string | undefined;
  /** datastore NAME for the VM files and, by default, the disks */
  datastore: string;
  guestId: string;
  cpus: number;
  coresPerSocket?: number | undefined;
  memoryMiB: number;
  firmware?: 'bios' | 'efi' | undefined;
  annotation?: string | undefined;
  controllers: { kind: Exclude<ControllerKind, 'other' | 'ide'>; busNumber?: number }[];
  disks: {
    /** index into `controllers`, or 'ide' for the built-in IDE controllers */
    controller: number | 'ide';
    unitNumber?: number | undefined;
    capacityBytes: number;
    thin?: boolean | undefined;
    eagerlyScrub?: boolean | undefined;
    diskMode?: string | undefined;
    /** datastore name for this disk (default: spec.datastore) */
    datastore?: string | undefined;
  }[];
  nics?: { type: NicType; networkName: string; network?: string | undefined; macAddress?: string | undefined; connected?: boolean | undefined }[] | undefined;
  changeTrackingEnabled?: boolean | undefined;
}

/** Builds the CreateVM config (exported for tests). */
export function createVmConfig(s: CreateVmSpec): ConfigSpec {
  if (!/^[A-Za-z0-9._:-]{1,80}$/.test(s.restoreId)) throw new TypeError('restoreId must be 1-80 characters of [A-Za-z0-9._:-]');
  const changes: DeviceChange[] = [];
  const ctlKeys: number[] = [];
  const busByKind = new Map<string, number>();
  s.controllers.forEach((c, i) => {
    const bus = c.busNumber ?? busByKind.get(c.kind) ?? 0;
    busByKind.set(c.kind, bus + 1);
    const key = -100 - i;
    ctlKeys.push(key);
    changes.push(controllerChange({ key, kind: c.kind, busNumber: bus }));
  });
  const nextUnit = new Map<number, number>();
  let ideSlot = 0;
  s.disks.forEach((d, i) => {
    if (!Number.isSafeInteger(d.capacityBytes) || d.capacityBytes <= 0) throw new TypeError(`disk ${i}: capacityBytes must be a positive integer`);
    let controllerKey: number;
    let unit: number;
    if (d.controller === 'ide') {
      const slot = d.unitNumber !== undefined ? d.unitNumber : ideSlot++;
      controllerKey = 200 + Math.floor(slot / 2);
      unit = slot % 2;
    } else {
      const ck = ctlKeys[d.controller];
      const kind = s.controllers[d.controller]?.kind;
      if (ck === undefined || !kind) throw new TypeError(`disk ${i}: no controller #${d.controller}`);
      controllerKey = ck;
      unit = d.unitNumber ?? nextUnit.get(ck) ?? 0;
      if (SCSI_KINDS.has(kind) && unit === 7 && d.unitNumber === undefined) unit = 8;
      if (SCSI_KINDS.has(kind) && (unit === 7 || unit > 15)) throw new TypeError(`disk ${i}: SCSI unit ${unit} is not usable`);
      nextUnit.set(ck, unit + 1);
    }
    changes.push(
      newDiskChange({
        key: -1000 - i,
        fileName: `[${d.datastore ?? s.datastore}]`,
        diskMode: d.diskMode,
        thin: d.thin,
        eagerlyScrub: d.eagerlyScrub,
        controllerKey,
        unitNumber: unit,
        capacityBytes: d.capacityBytes,
        label: `Hard disk ${i + 1}`,
      }),
    );
  });
  (s.nics ?? []).forEach((n, i) => changes.push(nicChange({ key: -2000 - i, ...n })));
  return {
    name: s.name,
    guestId: s.guestId,
    annotation: s.annotation,
    vmPathName: `[${s.datastore}]`,
    numCPUs: s.cpus,
    numCoresPerSocket: s.coresPerSocket,
    memoryMB: s.memoryMiB,
    deviceChange: changes,
    extraConfig: { [RESTORE_MARKER_KEY]: s.restoreId },
    changeTrackingEnabled: s.changeTrackingEnabled,
    firmware: s.firmware,
  };
}

export interface RestoreTarget {
  name: string;
  restoreId: string;
  folder: string;
  resourcePool: string;
  host?: string | undefined;
  datastore: string;
  /** source network name -> target network (name and optional moref); unmapped NICs keep their name */
  networkMap?: Record<string, { name: string; moref?: string | undefined }> | undefined;
  /** disk keys to leave out */
  skipDiskKeys?: number[] | undefined;
  /** per-disk datastore override by source disk key */
  diskDatastores?: Record<number, string> | undefined;
}

const NIC_KINDS: Record<string, NicType> = { VirtualVmxnet3: 'vmxnet3', VirtualE1000e: 'e1000e', VirtualE1000: 'e1000' };

/**
 * A CreateVmSpec that recreates the hardware of a backup: same controllers
 * (SCSI/SATA/NVMe kinds and bus numbers; IDE disks go to the built-in IDE
 * controllers), disks with the same capacity, provisioning, mode and
 * controller/unit, NICs on mapped networks. Disks are created empty.
 */
export function createSpecFromHardware(hw: HardwareDescription, t: RestoreTarget): CreateVmSpec {
  const ctls = hw.controllers.filter((c): c is Controller & { kind: Exclude<ControllerKind, 'other' | 'ide'> } => c.kind !== 'ide' && c.kind !== 'other');
  const index = new Map(ctls.map((c, i) => [c.key, i]));
  const skip = new Set(t.skipDiskKeys ?? []);
  const disks: CreateVmSpec['disks'] = [];
  for (const d of hw.disks) {
    if (skip.has(d.key)) continue;
    const ctl = hw.controllers.find((c) => c.key === d.controllerKey);
    const controller = ctl?.kind === 'ide' ? 'ide' : index.get(d.controllerKey);
    if (controller === undefined) throw new TypeError(`disk ${d.key} is on an unsupported controller (${ctl?.type ?? 'none'})`);
    disks.push({
      controller,
      unitNumber: controller === 'ide' ? (ctl?.busNumber ?? 0) * 2 + d.unitNumber : d.unitNumber,
      capacityBytes: d.capacityBytes,
      thin: d.thin,
      eagerlyScrub: d.eagerlyScrub,
      diskMode: d.diskMode === 'persistent' || d.diskMode.startsWith('independent') ? d.diskMode : 'persistent',
      datastore: t.diskDatastores?.[d.key],
    });
  }
  return {
    name: t.name,
    restoreId: t.restoreId,
    folder: t.folder,
    resourcePool: t.resourcePool,
    host: t.host,
    datastore: t.datastore,
    guestId: hw.guestId ?? 'otherGuest64',
    cpus: hw.numCpu ?? 1,
    coresPerSocket: hw.numCoresPerSocket,
    memoryMiB: hw.memoryMiB ?? 1024,
    firmware: hw.firmware === 'efi' || hw.firmware === 'bios' ? hw.firmware : undefined,
    controllers: ctls.map((c) => ({ kind: c.kind, busNumber: c.busNumber })),
    disks,
    nics: hw.nics
      .filter((n) => NIC_KINDS[n.type])
      .map((n) => {
        const m = n.networkName ? t.networkMap?.[n.networkName] : undefined;
        return { type: NIC_KINDS[n.type]!, networkName: m?.name ?? n.networkName ?? 'VM Network', network: m ? m.moref : n.network };
      }),
  };
}

export class VmsApi {
  constructor(private readonly ctx: Ctx) {}

  private async task(method: string, body: ReturnType<typeof join>, context: string, opts: WaitTaskOptions) {
    const t = taskRef(await this.ctx.soap.returnval(method, body, { context }), method);
    return this.ctx.tasks.wait(t, { ...opts, context: opts.context ?? context });
  }

  /** CreateVM_Task; returns the new VM's moref. */
  async create(spec: CreateVmSpec, opts: WaitTaskOptions = {}): Promise<string> {
    const folder: MoRef = { type: 'Folder', value: spec.folder };
    const r = await this.task(
      'CreateVM_Task',
      join([
        ref('_this', folder),
        configSpecXml('config', createVmConfig(spec)),
        ref('pool', { type: 'ResourcePool', value: spec.resourcePool }),
        spec.host ? ref('host', { type: 'HostSystem', value: spec.host }) : '',
      ]),
      `CreateVM_Task ${spec.name}`,
      opts,
    );
    if (!r?.text) throw new ProtocolError(`CreateVM_Task ${spec.name} returned no VM`);
    return r.text;
  }

  /**
   * ResourcePool.ImportVApp with a VirtualMachineImportSpec whose configSpec is `config` (e.g.
   * createVmConfig(createSpecFromHardware(...)), restore marker included): vSphere creates the VM with
   * empty disks and answers with an HttpNfcLease; this waits until it is ready and returns it, with the new
   * VM (`lease.vm`) and one upload URL per disk. The caller uploads, then completes or aborts the lease.
   */
  async importVm(config: ConfigSpec, folder: string, pool: string, host?: string, opts: { timeoutMs?: number } = {}): Promise<ImportLease> {
    const context = `ImportVApp ${config.name ?? ''}`.trim();
    const r = await this.ctx.soap.returnval(
      'ImportVApp',
      join([
        ref('_this', { type: 'ResourcePool', value: pool }),
        typed('spec', 'VirtualMachineImportSpec', configSpecXml('configSpec', config)),
        ref('folder', { type: 'Folder', value: folder }),
        host ? ref('host', { type: 'HostSystem', value: host }) : '',
      ]),
      { context },
    );
    const ready = await waitLeaseReady(this.ctx, r?.text, context, opts.timeoutMs);
    return new ImportLease(this.ctx, ready, () => undefined);
  }

  /**
   * Rename_Task: gives a VM a new inventory name (its files keep theirs).
   * vCenter refuses a name already used in the same folder (InvalidArgument / DuplicateName).
   */
  async rename(vm: string, newName: string, opts: WaitTaskOptions = {}): Promise<void> {
    if (!newName.trim() || newName.length > 80) throw new TypeError('a VM name is 1-80 characters');
    await this.task('Rename_Task', join([ref('_this', vmRef(vm)), val('newName', newName)]), `Rename_Task ${vm} to ${newName}`, opts);
  }

  async powerOn(vm: string, opts: WaitTaskOptions = {}): Promise<void> {
    await this.task('PowerOnVM_Task', ref('_this', vmRef(vm)), `PowerOnVM_Task on ${vm}`, opts);
  }

  async powerOff(vm: string, opts: WaitTaskOptions = {}): Promise<void> {
    await this.task('PowerOffVM_Task', ref('_this', vmRef(vm)), `PowerOffVM_Task on ${vm}`, opts);
  }

  /** ReconfigVM_Task with a typed spec (device changes cannot delete files). */
  async reconfigure(vm: string, spec: ConfigSpec, opts: WaitTaskOptions = {}): Promise<void> {
    await this.task('ReconfigVM_Task', join([ref('_this', vmRef(vm)), configSpecXml('spec', spec)]), `ReconfigVM_Task on ${vm}`, opts);
  }

  /** The restore marker of a VM (undefined for VMs not created by a restore). */
  async restoreIdOf(vm: string): Promise<string | undefined> {
    return this.extraConfigValue(vm, RESTORE_MARKER_KEY);
  }

  /** The instant recovery a VM was registered for (its .vmx marker; undefined for any other VM). */
  async instantRecoveryIdOf(vm: string): Promise<string | undefined> {
    return this.extraConfigValue(vm, INSTANT_RECOVERY_MARKER_KEY);
  }

  private async extraConfigValue(vm: string, key: string): Promise<string | undefined> {
    const o = await read(this.ctx, vmRef(vm), ['config.extraConfig']);
    for (const ov of o.props.get('config.extraConfig')?.children ?? []) {
      if (text(ov, 'key') === key) return text(ov, 'value');
    }
    return undefined;
  }

  /**
   * Destroy_Task for a VM created by a restore (cleanup after a failed or
   * test restore). Refuses any VM without the matching restore marker.
   */
  async destroyRestored(vm: string, restoreId: string, opts: WaitTaskOptions & { powerOff?: boolean } = {}): Promise<void> {
    const marker = await this.restoreIdOf(vm);
    if (marker === undefined) throw new ClientSafetyError(`refusing to destroy ${vm}: it was not created by a Vaultline restore`);
    if (marker !== restoreId) throw new ClientSafetyError(`refusing to destroy ${vm}: it belongs to restore ${marker}, not ${restoreId}`);
    if (opts.powerOff !== false) {
      const o = await read(this.ctx, vmRef(vm), ['runtime.powerState']);
      if (o.props.get('runtime.powerState')?.text === 'poweredOn') await this.powerOff(vm, opts);
    }
    await this.task('Destroy_Task', ref('_this', vmRef(vm)), `Destroy_Task on restored VM ${vm}`, opts);
  }

  /**
   * The VM's files from `layoutEx.file` (config, nvram, diskDescriptor,
   * diskExtent, snapshotData, log, …), e.g. to save the .vmx and .nvram with
   * a backup. Sizes may be stale on some servers.
   */
  async layoutFiles(vm: string): Promise<VmFile[]> {
    const o = await read(this.ctx, vmRef(vm), ['layoutEx.file']);
    return (o.props.get('layoutEx.file')?.children ?? []).map((f) => ({
      key: Number(text(f, 'key') ?? 0),
      name: text(f, 'name') ?? '',
      type: text(f, 'type') ?? '',
      size: Number(text(f, 'size') ?? 0),
    }));
  }

  /**
   * RegisterVM_Task: adds the VM whose .vmx is at `vmxPath` (a datastore path, "[ds] dir/name.vmx") to the
   * inventory in `folder`, on `pool` (and `host`, else one that mounts the datastore). Returns its moref.
   */
  async register(spec: { vmxPath: string; folder: string; resourcePool: string; host?: string | undefined; name?: string | undefined }, opts: WaitTaskOptions = {}): Promise<string> {
    if (!/^\[[^\]]+\] \S/.test(spec.vmxPath)) throw new TypeError(`"${spec.vmxPath}" is not a datastore path ("[datastore] folder/name.vmx")`);
    const r = await this.task(
      'RegisterVM_Task',
      join([
        ref('_this', { type: 'Folder', value: spec.folder }),
        val('path', spec.vmxPath),
        val('name', spec.name),
        val('asTemplate', false),
        ref('pool', { type: 'ResourcePool', value: spec.resourcePool }),
        spec.host ? ref('host', { type: 'HostSystem', value: spec.host }) : '',
      ]),
      `RegisterVM_Task ${spec.vmxPath}`,
      opts,
    );
    if (!r?.text) throw new ProtocolError(`RegisterVM_Task ${spec.vmxPath} returned no VM`);
    return r.text;
  }

  /**
   * RelocateVM_Task (Storage vMotion, and vMotion with `host`): moves the VM's files to `datastore`, and each disk
   * of `disks` (by device key) to its own. The VM may run. vSphere renames the moved files after the VM's
   * inventory name: read the new names back (layoutFiles), never derive them.
   */
  async relocate(vm: string, spec: { datastore?: string | undefined; host?: string | undefined; resourcePool?: string | undefined; disks?: { key: number; datastore: string }[] | undefined }, opts: WaitTaskOptions = {}): Promise<void> {
    const ds = (v: string): MoRef => ({ type: 'Datastore', value: v });
    await this.task(
      'RelocateVM_Task',
      join([
        ref('_this', vmRef(vm)),
        el(
          'spec',
          join([
            spec.datastore ? ref('datastore', ds(spec.datastore)) : '',
            spec.resourcePool ? ref('pool', { type: 'ResourcePool', value: spec.resourcePool }) : '',
            spec.host ? ref('host', { type: 'HostSystem', value: spec.host }) : '',
            ...(spec.disks ?? []).map((d) => el('disk', join([val('diskId', d.key), ref('datastore', ds(d.datastore))]))),
          ]),
        ),
      ]),
      `RelocateVM_Task on ${vm}`,
      opts,
    );
  }

  /** UnregisterVM: removes the VM from the inventory, leaving its files. */
  async unregister(vm: string): Promise<void> {
    await this.ctx.soap.returnval('UnregisterVM', ref('_this', vmRef(vm)), { context: `UnregisterVM ${vm}` });
  }

  /** A VM's folder, resource pool and host (useful as CreateVM targets). */
  async placement(vm: string): Promise<{ folder?: string | undefined; resourcePool?: string | undefined; host?: string | undefined }> {
    const o = await read(this.ctx, vmRef(vm), ['parent', 'resourcePool', 'runtime.host']);
    return { folder: o.props.get('parent')?.text, resourcePool: o.props.get('resourcePool')?.text, host: o.props.get('runtime.host')?.text };
  }
}

