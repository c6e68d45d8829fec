/**
 * A snapshot's disk read through an export lease (ExportSnapshot), for disks that have no file to fetch:
 * on vSAN and vVol datastores a disk is an object, so `/folder` holds no flat extent, and the network
 * transport reads what vSphere itself exports instead.
 *
 * The lease serves each disk as one streamOptimized VMDK, whole and in order, without Range. The reader
 * walks that stream forward: a read of [offset, offset+length) takes the grains that overlap it, skips
 * those before it and keeps the one that runs past its end for the next read; what no grain covers is
 * zeros. Reads are served one at a time in the order they were asked; a read behind the stream's position
 * (after a failover restart) opens the disk's stream again. An incremental therefore streams the whole
 * disk and keeps only the changed areas: the run log says so.
 */
import { readStreamOptimized, type StreamGrain } from '@vaultline/vmdk';
import { leaseDeviceOf, type ControllerKind, type ExportLease, type LeaseDeviceUrl, type VSphereClient } from '@vaultline/vsphere';
import type { SourceReader } from '@vaultline/core';

export interface LeaseDiskTarget {
  label: string;
  capacity: number;
  controller: ControllerKind;
  busNumber: number;
  unitNumber: number;
}

export class LeaseDiskError extends Error {
  override name = 'LeaseDiskError';
}

/** Opens the snapshot's disk `disk` through an ExportSnapshot lease; `why` says why the lease is used (run log). */
export async function openLeaseDisk(client: VSphereClient, snapshot: string, disk: LeaseDiskTarget, why: string): Promise<SourceReader & { describe: string }> {
  const lease = await client.leases.exportSnapshot(snapshot);
  try {
    const device = leaseDeviceOf(lease.deviceUrls, disk);
    if (!device) {
      throw new LeaseDiskError(
        `the export lease of ${snapshot} has no disk at ${disk.controller} ${disk.busNumber}:${disk.unitNumber} (${disk.label}); it lists ${lease.deviceUrls.map((u) => u.key).join(', ') || 'nothing'}`,
      );
    }
    return new LeaseDiskReader(lease, device, disk, why);
  } catch (err) {
    await lease.abort().catch(() => undefined);
    throw err;
  }
}

class LeaseDiskReader implements SourceReader {
  readonly capacity: number;
  readonly describe: string;
  /** The stream is sequential: a few segments ahead keep it flowing while the repository writer works. */
  readonly readAhead = { segmentBytes: 4 * 1024 * 1024, depth: 3 };
  private grains: AsyncIterator<StreamGrain> | null = null;
  /** The grain read from the stream and not yet used up, or null. */
  private held: StreamGrain | null = null;
  /** Where the stream stands: every grain before this offset has been taken or skipped. */
  private position = 0;
  private ended = false;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly lease: ExportLease,
    private readonly device: LeaseDeviceUrl,
    private readonly disk: LeaseDiskTarget,
    why: string,
  ) {
    this.capacity = disk.capacity;
    // The lease's device key is "/<vm moref>/<controller><bus>:<unit>": the run log names the controller slot only.
    this.describe = `streamOptimized export of the snapshot (an export lease, device ${device.key.replace(/^\/[^/]+\//, '')}; ${why}; the whole disk is streamed, only the areas to copy are kept)`;
    lease.startKeepAlive(() => (this.capacity > 0 ? (100 * this.position) / this.capacity : 0));
  }

  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const run = this.queue.then(() => this.readInOrder(offset, length, into));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async open(): Promise<void> {
    await this.grains?.return?.(undefined);
    const stream = readStreamOptimized(await this.lease.stream(this.device), { name: `${this.disk.label} (${this.device.key})`, maxCapacity: this.capacity });
    const info = await stream.header();
    if (info.capacity !== this.capacity) {
      await stream.close();
      throw new LeaseDiskError(`the export of ${this.disk.label} is ${info.capacity} bytes, the VM's disk has ${this.capacity}`);
    }
    this.grains = stream[Symbol.asyncIterator]();
    this.held = null;
    this.position = 0;
    this.ended = false;
  }

  private async next(): Promise<StreamGrain | null> {
    if (this.held) return this.held;
    if (this.ended) return null;
    const r = await this.grains!.next();
    if (r.done) {
      this.ended = true;
      this.position = this.capacity;
      return null;
    }
    this.held = r.value;
    return r.value;
  }

  private async readInOrder(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (this.closed) throw new LeaseDiskError(`${this.disk.label}: read after close`);
    if (offset < 0 || length < 0 || offset + length > this.capacity) throw new RangeError(`${this.disk.label}: read of ${length} bytes at ${offset} is outside the disk (${this.capacity} bytes)`);
    const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    out.fill(0);
    if (this.grains === null || offset < this.position) await this.open();
    const end = offset + length;
    for (;;) {
      const grain = await this.next();
      if (!grain || grain.offset >= end) break;
      const grainEnd = grain.offset + grain.data.length;
      const from = Math.max(offset, grain.offset);
      const to = Math.min(end, grainEnd);
      if (to > from) grain.data.copy(out, from - offset, from - grain.offset, to - grain.offset);
      if (grainEnd > end) break; // the rest of this grain belongs to the next read
      this.held = null;
      this.position = grainEnd;
    }
    if (!this.ended) this.position = Math.max(this.position, end);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.grains?.return?.(undefined).catch(() => undefined);
    // An export changes nothing: completing it only releases the lease.
    await this.lease.complete().catch(() => this.lease.abort().catch(() => undefined));
  }
}
