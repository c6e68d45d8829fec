/**
 * HttpNfcLease export (ExportVm for powered-off VMs, ExportSnapshot for a
 * running VM's snapshot). Flow: call -> poll `state` until it leaves
 * `initializing` (`error` -> typed fault) -> read `info.deviceUrl[]`, replacing
 * a `*` host with the host we are connected to -> GET the disks with the
 * session cookie -> HttpNfcLeaseProgress periodically (before leaseTimeout
 * expires; the keep-alive timer does it) -> HttpNfcLeaseComplete or
 * HttpNfcLeaseAbort. Real vSphere serves streamOptimized VMDK on these URLs,
 * and so does the lab. Waiting for a lease to be ready (waitLeaseReady) is
 * shared with import leases (import.ts).
 */
import { props, read, snapRef, vmRef, type Ctx } from './context.ts';
import { controllerKindOf } from './devices.ts';
import type { FilesApi, ReadOptions } from './files.ts';
import { parseLocalizedFault } from './soap/client.ts';
import { ProtocolError, TimeoutError } from './soap/faults.ts';
import { bool, children, join, num, ref, text, val, type MoRef } from './soap/xml.ts';
import type { ControllerKind } from './types.ts';

export interface LeaseDeviceUrl {
  key: string;
  importKey?: string | undefined;
  /** absolute URL, `*` already replaced */
  url: string;
  targetId?: string | undefined;
  disk: boolean;
  fileSize?: number | undefined;
  sslThumbprint?: string | undefined;
}

/**
 * The lease URL of a disk. vSphere keys each disk of a lease by where it is attached,
 * "/<vm>/<controller type><bus>:<unit>" (e.g. "/vm-42/VirtualLsiLogicController0:1"), not by device key.
 */
export function leaseDeviceOf(urls: readonly LeaseDeviceUrl[], disk: { controller: ControllerKind; busNumber: number; unitNumber: number }): LeaseDeviceUrl | undefined {
  return urls.find((u) => {
    const m = /\/([A-Za-z]+?)(\d+):(\d+)$/.exec(u.key);
    return u.disk && m !== null && controllerKindOf(m[1]!) === disk.controller && Number(m[2]) === disk.busNumber && Number(m[3]) === disk.unitNumber;
  });
}

/**
 * What export and import leases share: HttpNfcLeaseProgress, the keep-alive that repeats it before
 * `leaseTimeout` runs out, and HttpNfcLeaseComplete / HttpNfcLeaseAbort, either of which ends the lease once.
 */
export abstract class NfcLease {
  private timer: NodeJS.Timeout | undefined;
  private done = false;
  /** Last percent reported (the keep-alive repeats it when it is given no callback). */
  private percent = 0;

  constructor(
    protected readonly ctx: Ctx,
    readonly moref: string,
    /** seconds */
    readonly leaseTimeout: number,
    private readonly onEnd: (l: NfcLease) => void,
  ) {}

  protected get ref(): MoRef {
    return { type: 'HttpNfcLease', value: this.moref };
  }

  /** HttpNfcLeaseProgress(percent 0..100). */
  async progress(percent: number): Promise<void> {
    const p = Math.max(0, Math.min(100, Math.round(percent)));
    this.percent = p;
    await this.ctx.soap.call('HttpNfcLeaseProgress', join([ref('_this', this.ref), val('percent', p)]), { context: `HttpNfcLeaseProgress on ${this.moref}`, timeoutMs: 30_000 });
  }

  /** Calls progress() every `intervalMs` (default: a third of leaseTimeout, at most 10 s) until complete/abort. */
  startKeepAlive(percent?: () => number, intervalMs?: number): void {
    this.stopKeepAlive();
    const every = intervalMs ?? Math.min(10_000, Math.max(1000, (this.leaseTimeout * 1000) / 3));
    this.timer = setInterval(() => {
      if (this.done) return;
      this.progress(percent ? percent() : this.percent).catch(() => undefined);
    }, every);
    this.timer.unref();
  }

  stopKeepAlive(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async complete(): Promise<void> {
    if (this.done) return;
    this.end();
    await this.ctx.soap.call('HttpNfcLeaseComplete', ref('_this', this.ref), { context: `HttpNfcLeaseComplete on ${this.moref}` });
  }

  /** HttpNfcLeaseAbort (an import's VM stays for the caller to destroy). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.end();
    await this.ctx.soap.call('HttpNfcLeaseAbort', ref('_this', this.ref), { context: `HttpNfcLeaseAbort on ${this.moref}` });
  }

  /** Current lease state (initializing, ready, done, error). */
  async state(): Promise<string> {
    const o = await read(this.ctx, this.ref, ['state']);
    return o.props.get('state')?.text ?? '';
  }

  get ended(): boolean {
    return this.done;
  }

  private end(): void {
    this.done = true;
    this.stopKeepAlive();
    this.onEnd(this);
  }
}

export class ExportLease extends NfcLease {
  constructor(
    ctx: Ctx,
    private readonly files: FilesApi,
    moref: string,
    readonly deviceUrls: LeaseDeviceUrl[],
    readonly totalDiskCapacityKB: number,
    /** seconds */
    leaseTimeout: number,
    onEnd: (l: NfcLease) => void,
  ) {
    super(ctx, moref, leaseTimeout, onEnd);
  }

  /** The disk's streamOptimized VMDK, as it arrives (`timeoutMs` bounds each pause). */
  stream(device: LeaseDeviceUrl, opts: ReadOptions = {}): Promise<AsyncIterable<Buffer>> {
    return this.files.streamAt(device.url, opts, `lease ${this.moref} ${device.targetId ?? device.key}`);
  }
}

/** A lease once `ready`: its device URLs (a `*` host replaced by the host we are connected to) and what `info` says. */
export interface ReadyLease {
  moref: string;
  /** `info.entity`: for an import, the new VM */
  entity: string | undefined;
  deviceUrls: LeaseDeviceUrl[];
  totalDiskCapacityKB: number;
  /** seconds */
  leaseTimeout: number;
}

/** Polls `state` until the lease leaves `initializing`: `ready` gives its info, `error` its fault. */
export async function waitLeaseReady(ctx: Ctx, lease: string | undefined, context: string, timeoutMs = 5 * 60_000): Promise<ReadyLease> {
  if (!lease) throw new ProtocolError(`${context} returned no lease`);
  const lref: MoRef = { type: 'HttpNfcLease', value: lease };
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  for (;;) {
    const [o] = await props(ctx, { propSets: [{ type: 'HttpNfcLease', paths: ['state', 'error', 'info'] }], objects: [lref] }, context);
    const state = o?.props.get('state')?.text;
    if (state === 'error') {
      const err = o?.props.get('error');
      throw err ? parseLocalizedFault(err, context) : new ProtocolError(`${context}: lease failed`);
    }
    if (state === 'ready') {
      const info = o?.props.get('info');
      const base = ctx.soap.url;
      const urls: LeaseDeviceUrl[] = children(info, 'deviceUrl').map((d) => {
        const raw = text(d, 'url') ?? '';
        // "https://*/nfc/…" or "https://*:443/nfc/…": the host we are connected to serves it
        const u = new URL(raw.replace(/^(\w+):\/\/\*(:\d+)?(?=\/)/, `${base.protocol}//${base.host}`));
        return {
          key: text(d, 'key') ?? '',
          importKey: text(d, 'importKey'),
          url: u.toString(),
          targetId: text(d, 'targetId'),
          disk: bool(d, 'disk') ?? false,
          fileSize: num(d, 'fileSize'),
          sslThumbprint: text(d, 'sslThumbprint') || undefined,
        };
      });
      return { moref: lease, entity: text(info, 'entity'), deviceUrls: urls, totalDiskCapacityKB: num(info, 'totalDiskCapacityInKB') ?? 0, leaseTimeout: num(info, 'leaseTimeout') ?? 300 };
    }
    if (state !== 'initializing' && state !== undefined) throw new ProtocolError(`${context}: lease is ${state}`);
    if (Date.now() > deadline) throw new TimeoutError(`${context}: lease not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
}

export class LeasesApi {
  private readonly open = new Set<NfcLease>();
  constructor(
    private readonly ctx: Ctx,
    private readonly files: FilesApi,
  ) {}

  /** ExportVm (the VM must be powered off: InvalidPowerState otherwise). */
  async exportVm(vm: string, opts: { timeoutMs?: number } = {}): Promise<ExportLease> {
    const r = await this.ctx.soap.returnval('ExportVm', ref('_this', vmRef(vm)), { context: `ExportVm on ${vm}` });
    return this.ready(r?.text, `ExportVm on ${vm}`, opts.timeoutMs);
  }

  /** ExportSnapshot: the frozen disks of a snapshot (for running VMs). */
  async exportSnapshot(snapshot: string, opts: { timeoutMs?: number } = {}): Promise<ExportLease> {
    const r = await this.ctx.soap.returnval('ExportSnapshot', ref('_this', snapRef(snapshot)), { context: `ExportSnapshot on ${snapshot}` });
    return this.ready(r?.text, `ExportSnapshot on ${snapshot}`, opts.timeoutMs);
  }

  private async ready(lease: string | undefined, context: string, timeoutMs = 5 * 60_000): Promise<ExportLease> {
    const r = await waitLeaseReady(this.ctx, lease, context, timeoutMs);
    const l = new ExportLease(this.ctx, this.files, r.moref, r.deviceUrls, r.totalDiskCapacityKB, r.leaseTimeout, (x) => this.open.delete(x));
    this.open.add(l);
    return l;
  }

  /** Stops keep-alive timers of all open leases (client close). */
  stopAll(): void {
    for (const l of this.open) l.stopKeepAlive();
  }
}

