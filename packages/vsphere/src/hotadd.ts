/**
 * HotAdd support: attach an existing disk file to the proxy VM and detach it
 * again WITHOUT touching the file.
 *
 * Attach: picks a SCSI controller of the proxy (pvscsi preferred, then
 * lsisas, lsilogic, buslogic; never IDE/SATA/NVMe), the lowest free unit
 * (0..15 minus the controller's own unit, normally 7), and adds a VirtualDisk
 * with the given fileName and diskMode (independent_nonpersistent by default:
 * excluded from snapshots of the proxy, opened read-only with a throw-away
 * redo log) and NO file operation. Reconfigurations of the same proxy are
 * serialised in-process (concurrent ones fail with TaskInProgress).
 *
 * Detach: a `remove` device change, which by construction cannot carry a file
 * operation (see devices.ts); the disk file stays.
 */
import { KeyedMutex, read, vmRef, type Ctx } from './context.ts';
import { attachDiskChange, configSpecXml, detachDiskChange, freeUnits, parseDevices, SCSI_KINDS, type DeviceChange } from './devices.ts';
import { ClientSafetyError, ProtocolError } from './soap/faults.ts';
import { join, ref } from './soap/xml.ts';
import { taskRef } from './tasks.ts';
import type { Controller, ControllerKind, Disk, WaitTaskOptions } from './types.ts';

const PREFERENCE: ControllerKind[] = ['pvscsi', 'lsisas', 'lsilogic', 'buslogic'];

export interface AttachOptions extends WaitTaskOptions {
  /**
   * independent_nonpersistent (default, backups: read-only, excluded from the proxy's snapshots);
   * independent_persistent (restores: writes go to the disk itself).
   */
  diskMode?: 'independent_nonpersistent' | 'independent_persistent' | 'nonpersistent' | 'persistent' | undefined;
  /** use this controller (must be SCSI) */
  controllerKey?: number | undefined;
  /** per-controller unit limit (default 16 units → 15 disks with unit 7 reserved) */
  maxUnits?: number | undefined;
}

let tempKey = -200;
const nextTempKey = () => (tempKey = tempKey <= -100_000 ? -200 : tempKey - 1);

export class HotAddApi {
  private readonly mutex = new KeyedMutex();
  constructor(private readonly ctx: Ctx) {}

  /** Picks controller + unit for a new disk on `devices`. */
  static chooseSlot(
    devices: ReturnType<typeof parseDevices>,
    opts: { controllerKey?: number | undefined; maxUnits?: number | undefined } = {},
  ): { controller: Controller; unitNumber: number } {
    let candidates = devices.controllers.filter((c) => SCSI_KINDS.has(c.kind));
    if (opts.controllerKey !== undefined) {
      const c = devices.controllers.find((x) => x.key === opts.controllerKey);
      if (!c) throw new ClientSafetyError(`controller ${opts.controllerKey} does not exist on the proxy VM`);
      if (!SCSI_KINDS.has(c.kind)) throw new ClientSafetyError(`controller ${opts.controllerKey} is ${c.kind}; HotAdd needs a SCSI controller`);
      candidates = [c];
    }
    candidates.sort((a, b) => PREFERENCE.indexOf(a.kind) - PREFERENCE.indexOf(b.kind) || a.busNumber - b.busNumber);
    for (const c of candidates) {
      const free = freeUnits(c, devices.all, opts.maxUnits ?? 16);
      if (free.length) return { controller: c, unitNumber: free[0]! };
    }
    throw new ClientSafetyError(
      candidates.length ? 'no free unit on any SCSI controller of the proxy VM (15 disks per controller)' : 'the proxy VM has no SCSI controller; HotAdd cannot use IDE, SATA or NVMe',
    );
  }

  /** Attaches an existing disk (e.g. a snapshot's frozen file) to `proxyVm`; returns the new device. */
  async attach(proxyVm: string, fileName: string, opts: AttachOptions = {}): Promise<Disk> {
    const [d] = await this.attachMany(proxyVm, [fileName], opts);
    return d!;
  }

  /**
   * Attaches several existing disks in ONE ReconfigVM_Task (one stun of the
   * proxy instead of one per disk). Returns the new devices in input order.
   */
  async attachMany(proxyVm: string, fileNames: string[], opts: AttachOptions = {}): Promise<Disk[]> {
    for (const f of fileNames) if (!/^\[[^\]]+\] \S/.test(f)) throw new TypeError(`not a datastore path: ${f}`);
    if (!fileNames.length) return [];
    return this.mutex.run(proxyVm, async () => {
      const devices = await this.devicesOf(proxyVm);
      const slots: { controllerKey: number; unitNumber: number; fileName: string }[] = [];
      for (const fileName of fileNames) {
        const { controller, unitNumber } = HotAddApi.chooseSlot(devices, opts);
        devices.all.push({ key: nextTempKey(), type: 'VirtualDisk', controllerKey: controller.key, unitNumber }); // reserve it
        slots.push({ controllerKey: controller.key, unitNumber, fileName });
      }
      const changes = slots.map((s) =>
        attachDiskChange({ key: nextTempKey(), fileName: s.fileName, diskMode: opts.diskMode ?? 'independent_nonpersistent', controllerKey: s.controllerKey, unitNumber: s.unitNumber }),
      );
      await this.reconfigure(proxyVm, changes, { ...opts, context: opts.context ?? `attaching ${fileNames.join(', ')} to ${proxyVm}` });
      const after = await this.devicesOf(proxyVm);
      return slots.map((s) => {
        const disk = after.disks.find((d) => d.controllerKey === s.controllerKey && d.unitNumber === s.unitNumber);
        if (!disk) throw new ProtocolError(`attached ${s.fileName} but no disk appeared at controller ${s.controllerKey} unit ${s.unitNumber}`);
        return disk;
      });
    });
  }

  /**
   * Detaches a disk from `proxyVm` keeping its files. `expectFileName` guards
   * against detaching the wrong device after a crash.
   */
  async detach(proxyVm: string, deviceKey: number, opts: WaitTaskOptions & { expectFileName?: string } = {}): Promise<void> {
    await this.detachMany(proxyVm, [{ deviceKey, expectFileName: opts.expectFileName }], opts);
  }

  /** Detaches several disks in one ReconfigVM_Task, keeping their files. */
  async detachMany(proxyVm: string, disks: { deviceKey: number; expectFileName?: string | undefined }[], opts: WaitTaskOptions = {}): Promise<void> {
    if (!disks.length) return;
    await this.mutex.run(proxyVm, async () => {
      const devices = await this.devicesOf(proxyVm);
      const targets = disks.map((want) => {
        const disk = devices.disks.find((d) => d.key === want.deviceKey);
        if (!disk) throw new ClientSafetyError(`disk ${want.deviceKey} is not attached to ${proxyVm}`);
        if (want.expectFileName && disk.fileName !== want.expectFileName) {
          throw new ClientSafetyError(`disk ${want.deviceKey} on ${proxyVm} is ${disk.fileName}, not ${want.expectFileName}; not detaching`);
        }
        return disk;
      });
      await this.reconfigure(proxyVm, targets.map(detachDiskChange), { ...opts, context: opts.context ?? `detaching ${targets.map((t) => t.fileName).join(', ')} from ${proxyVm}` });
    });
  }

  /** The proxy's disks whose file is not in `baseline` (crash recovery: detach them). */
  async foreignDisks(proxyVm: string, baselineFiles: string[]): Promise<Disk[]> {
    const keep = new Set(baselineFiles);
    return (await this.devicesOf(proxyVm)).disks.filter((d) => !keep.has(d.fileName));
  }

  async devicesOf(vm: string): Promise<ReturnType<typeof parseDevices>> {
    const o = await read(this.ctx, vmRef(vm), ['config.hardware.device']);
    return parseDevices(o.props.get('config.hardware.device'));
  }

  private async reconfigure(vm: string, changes: DeviceChange[], opts: WaitTaskOptions): Promise<void> {
    const t = taskRef(
      await this.ctx.soap.returnval('ReconfigVM_Task', join([ref('_this', vmRef(vm)), configSpecXml('spec', { deviceChange: changes })]), {
        context: opts.context ?? `ReconfigVM_Task on ${vm}`,
      }),
      'ReconfigVM_Task',
    );
    await this.ctx.tasks.wait(t, opts);
  }
}
