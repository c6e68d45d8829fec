/**
 * Changed Block Tracking.
 *
 * enable(): refuses when the VM has snapshots (enabling CBT with a
 * pre-existing snapshot yields silently wrong incrementals on vSphere 6.5+),
 * sets changeTrackingEnabled with ReconfigVM_Task, then runs the snapshot
 * create/remove "stun" cycle that makes tracking take effect on a running VM.
 *
 * queryChangedDiskAreas(): the full paging loop. One answer covers
 * [startOffset, startOffset+length); the next call starts at their sum, until
 * the capacity is reached. Never calls with startOffset == capacity (that is
 * InvalidArgument on ESXi), aborts if an answer makes no progress, clips to
 * the disk, sorts and merges extents.
 */
import { read, vmRef, type Ctx } from './context.ts';
import { configSpecXml } from './devices.ts';
import type { SnapshotsApi } from './snapshots.ts';
import { ClientSafetyError, FileFault, InvalidArgument, ProtocolError } from './soap/faults.ts';
import { children, join, num, ref, val } from './soap/xml.ts';
import { taskRef } from './tasks.ts';
import type { ChangedArea, WaitTaskOptions } from './types.ts';

export interface ChangedAreas {
  areas: ChangedArea[];
  /** the changeId was rejected and the allocated areas ("*") were returned instead: the next backup is a full */
  fellBackToFull: boolean;
  /** number of QueryChangedDiskAreas calls made */
  calls: number;
  /** sum of area lengths */
  bytes: number;
}

/** Sorts, clips to [0, capacity) and merges overlapping/adjacent areas. */
export function normalizeAreas(areas: ChangedArea[], capacity: number): ChangedArea[] {
  const clipped = areas
    .map((a) => ({ start: Math.max(0, a.start), end: Math.min(capacity, a.start + a.length) }))
    .filter((a) => a.end > a.start)
    .sort((a, b) => a.start - b.start);
  const out: ChangedArea[] = [];
  let cur: { start: number; end: number } | undefined;
  for (const a of clipped) {
    if (cur && a.start <= cur.end) cur.end = Math.max(cur.end, a.end);
    else {
      if (cur) out.push({ start: cur.start, length: cur.end - cur.start });
      cur = { ...a };
    }
  }
  if (cur) out.push({ start: cur.start, length: cur.end - cur.start });
  return out;
}

export class CbtApi {
  constructor(
    private readonly ctx: Ctx,
    private readonly snapshots: SnapshotsApi,
  ) {}

  /** Whether CBT is on (a missing property means off). */
  async isEnabled(vm: string): Promise<boolean> {
    const o = await read(this.ctx, vmRef(vm), ['config.changeTrackingEnabled']);
    return o.props.get('config.changeTrackingEnabled')?.text.trim() === 'true';
  }

  /**
   * Enables CBT and makes it effective (snapshot create + remove).
   * Returns false when it was already enabled (nothing done).
   */
  async enable(vm: string, opts: WaitTaskOptions & { runId?: string } = {}): Promise<boolean> {
    const o = await read(this.ctx, vmRef(vm), ['config.changeTrackingEnabled', 'snapshot', 'capability.changeTrackingSupported']);
    if (o.props.get('config.changeTrackingEnabled')?.text.trim() === 'true') return false;
    if (o.props.get('capability.changeTrackingSupported')?.text.trim() === 'false') {
      throw new ClientSafetyError(`cannot enable CBT on ${vm}: the VM does not support change tracking (hardware version < 7?)`);
    }
    if (children(o.props.get('snapshot'), 'rootSnapshotList').length > 0) {
      throw new ClientSafetyError(`refusing to enable CBT on ${vm} while it has snapshots: incrementals could silently miss changes; remove the snapshots first`);
    }
    await this.reconfigure(vm, true, opts);
    const snap = await this.snapshots.create(vm, { ...opts, runId: opts.runId ?? `cbt-enable-${Date.now()}`, quiesce: false });
    await this.snapshots.remove(snap, opts);
    return true;
  }

  /** Turns CBT off (ReconfigVM_Task changeTrackingEnabled=false). */
  async disable(vm: string, opts: WaitTaskOptions = {}): Promise<void> {
    await this.reconfigure(vm, false, opts);
  }

  private async reconfigure(vm: string, on: boolean, opts: WaitTaskOptions): Promise<void> {
    const t = taskRef(
      await this.ctx.soap.returnval('ReconfigVM_Task', join([ref('_this', vmRef(vm)), configSpecXml('spec', { changeTrackingEnabled: on })]), {
        context: `ReconfigVM_Task (changeTrackingEnabled=${on}) on ${vm}`,
      }),
      'ReconfigVM_Task',
    );
    await this.ctx.tasks.wait(t, { ...opts, context: opts.context ?? `${on ? 'enabling' : 'disabling'} CBT on ${vm}` });
  }

  /** One QueryChangedDiskAreas call. */
  async queryOnce(vm: string, snapshot: string | undefined, deviceKey: number, startOffset: number, changeId: string) {
    const r = await this.ctx.soap.returnval(
      'QueryChangedDiskAreas',
      join([
        ref('_this', vmRef(vm)),
        snapshot ? ref('snapshot', { type: 'VirtualMachineSnapshot', value: snapshot }) : '',
        val('deviceKey', deviceKey),
        val('startOffset', startOffset),
        val('changeId', changeId),
      ]),
      { context: `QueryChangedDiskAreas on ${vm} disk ${deviceKey} from ${startOffset}` },
    );
    if (!r) throw new ProtocolError(`QueryChangedDiskAreas on ${vm} returned nothing`);
    const so = num(r, 'startOffset');
    const len = num(r, 'length');
    if (so === undefined || len === undefined) throw new ProtocolError('QueryChangedDiskAreas: answer without startOffset/length');
    return {
      startOffset: so,
      length: len,
      areas: children(r, 'changedArea').map((a) => ({ start: num(a, 'start') ?? 0, length: num(a, 'length') ?? 0 })),
    };
  }

  /**
   * All changed (or, with changeId "*", allocated) areas of a disk at
   * `snapshot`, following the paging loop to `capacityBytes`.
   */
  async queryChangedDiskAreas(
    vm: string,
    snapshot: string | undefined,
    deviceKey: number,
    changeId: string,
    capacityBytes: number,
    opts: {
      onPage?: (done: number, capacity: number) => void;
      maxCalls?: number;
      /** on FileFault / InvalidArgument(changeId) for a stored changeId, return the allocated areas ("*") instead */
      fallbackToFull?: boolean;
    } = {},
  ): Promise<ChangedAreas> {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0) throw new TypeError('capacityBytes must be a positive integer');
    if (opts.fallbackToFull && changeId !== '*') {
      try {
        return await this.queryChangedDiskAreas(vm, snapshot, deviceKey, changeId, capacityBytes, { ...opts, fallbackToFull: false });
      } catch (e) {
        const badId = e instanceof FileFault || (e instanceof InvalidArgument && e.invalidProperty === 'changeId');
        if (!badId) throw e;
        const full = await this.queryChangedDiskAreas(vm, snapshot, deviceKey, '*', capacityBytes, { ...opts, fallbackToFull: false });
        return { ...full, fellBackToFull: true };
      }
    }
    const all: ChangedArea[] = [];
    let offset = 0;
    let calls = 0;
    while (offset < capacityBytes) {
      if (++calls > (opts.maxCalls ?? 1_000_000)) throw new ProtocolError('QueryChangedDiskAreas: too many pages');
      const r = await this.queryOnce(vm, snapshot, deviceKey, offset, changeId);
      all.push(...r.areas);
      const next = r.startOffset + r.length;
      if (!(next > offset)) {
        throw new ProtocolError(`QueryChangedDiskAreas on ${vm} disk ${deviceKey} made no progress at offset ${offset} (length ${r.length})`);
      }
      offset = next;
      opts.onPage?.(Math.min(offset, capacityBytes), capacityBytes);
    }
    const areas = normalizeAreas(all, capacityBytes);
    return { areas, calls, bytes: areas.reduce((s, a) => s + a.length, 0), fellBackToFull: false };
  }
}

