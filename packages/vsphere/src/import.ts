/**
 * HttpNfcLease import: the supported way to land a disk over the network as
 * vSphere lays it out (a thin disk stays thin). Flow: ResourcePool.ImportVApp
 * with a VirtualMachineImportSpec whose configSpec is the VM's ConfigSpec
 * (disks with fileOperation=create) → the lease, once `ready`, names the new
 * VM (`info.entity`) and one upload URL per disk (`info.deviceUrl[]`, disk =
 * true) → POST a streamOptimized VMDK of each disk to its URL
 * (`application/x-vnd.vmware-streamVmdk`, as govmomi and ovftool do), calling
 * HttpNfcLeaseProgress before `leaseTimeout` runs out (the keep-alive timer)
 * → HttpNfcLeaseComplete, or HttpNfcLeaseAbort on failure (the caller then
 * destroys the half-made VM as after any failed restore).
 *
 * An upload streams: the body is pulled as the socket takes it, never held
 * whole. With a known size it is sent with Content-Length, otherwise chunked
 * (the lab accepts both; ESXi's acceptance of chunked uploads is not verified
 * here). A body that stops moving for `idleTimeoutMs` aborts the upload.
 */
import { Readable } from 'node:stream';
import type { Ctx } from './context.ts';
import { leaseDeviceOf, NfcLease, type LeaseDeviceUrl, type ReadyLease } from './lease.ts';
import { HttpError, ProtocolError, TimeoutError } from './soap/faults.ts';
import type { ControllerKind } from './types.ts';

export const STREAM_VMDK_TYPE = 'application/x-vnd.vmware-streamVmdk';

export interface UploadOptions {
  /** Bytes the body will have, when known: sent as Content-Length (else the upload is chunked). */
  size?: number | undefined;
  /** A body that does not move for this long aborts the upload (default 5 min). */
  idleTimeoutMs?: number | undefined;
  /** Bound on the whole upload (default 24 h). */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export class ImportLease extends NfcLease {
  /** The VM the import created. */
  readonly vm: string;
  readonly deviceUrls: LeaseDeviceUrl[];

  constructor(ctx: Ctx, lease: ReadyLease, onEnd: (l: NfcLease) => void) {
    if (!lease.entity) throw new ProtocolError(`import lease ${lease.moref} names no VM (info.entity)`);
    super(ctx, lease.moref, lease.leaseTimeout, onEnd);
    this.vm = lease.entity;
    this.deviceUrls = lease.deviceUrls;
  }

  /** The disks' upload URLs, in the order the lease lists them (the order of the disks in the config spec). */
  get disks(): LeaseDeviceUrl[] {
    return this.deviceUrls.filter((d) => d.disk);
  }

  /**
   * The upload URL of a disk of the new VM: by where it is attached when the lease keys disks as vSphere
   * does ("/<vm>/<controller type><bus>:<unit>"), else by its position among the disks (`index`).
   */
  deviceFor(disk: { controller: ControllerKind; busNumber: number; unitNumber: number }, index: number): LeaseDeviceUrl {
    const found = leaseDeviceOf(this.deviceUrls, disk) ?? this.disks[index];
    if (!found) throw new ProtocolError(`import lease ${this.moref} has no upload URL for disk #${index + 1} (${this.disks.length} disk URLs)`);
    return found;
  }

  /**
   * POSTs one disk as a streamOptimized VMDK to its device URL, streaming `body`. Resolves with the bytes sent
   * once the server accepted the whole stream.
   */
  async upload(device: LeaseDeviceUrl, body: AsyncIterable<Buffer> | Readable | Buffer, opts: UploadOptions = {}): Promise<{ bytes: number }> {
    if (this.ended) throw new ProtocolError(`import lease ${this.moref} is already over`);
    const what = `upload of ${device.targetId ?? device.key} to import lease ${this.moref}`;
    let bytes = 0;
    let moved = Date.now();
    const idle = opts.idleTimeoutMs ?? 5 * 60_000;
    const stalled = new AbortController();
    const counted = Buffer.isBuffer(body)
      ? body
      : Readable.from(async function* () {
          for await (const piece of body as AsyncIterable<Buffer>) {
            bytes += piece.length;
            moved = Date.now();
            yield piece;
          }
        }(), { objectMode: false });
    if (Buffer.isBuffer(body)) bytes = body.length;
    const watch = setInterval(() => {
      if (Date.now() - moved > idle) stalled.abort(new TimeoutError(`${what}: nothing moved for ${idle} ms`));
    }, Math.min(idle, 5000));
    watch.unref();
    const headers: Record<string, string> = { 'content-type': STREAM_VMDK_TYPE };
    const size = Buffer.isBuffer(body) ? body.length : opts.size;
    if (size !== undefined) headers['content-length'] = String(size);
    const signal = opts.signal ? AbortSignal.any([stalled.signal, opts.signal]) : stalled.signal;
    try {
      const res = await this.ctx.soap.http(device.url, { method: 'POST', headers, body: counted, timeoutMs: opts.timeoutMs ?? 24 * 3600_000, signal, streaming: true, what });
      const text = (await res.body.text().catch(() => '')).slice(0, 300);
      if (res.statusCode < 200 || res.statusCode > 299) {
        throw new HttpError(`${what} failed: HTTP ${res.statusCode}${text ? `: ${text.replace(/\s+/g, ' ').trim()}` : ''}`, res.statusCode);
      }
    } catch (e) {
      if (stalled.signal.aborted) throw stalled.signal.reason as Error;
      throw e;
    } finally {
      clearInterval(watch);
    }
    return { bytes };
  }
}
