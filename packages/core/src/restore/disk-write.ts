/**
 * Writing one disk of a restore point into a new, empty disk, and verifying it.
 *
 * HotAdd: journal row first (`disk_attach`), attach the disk to the proxy VM
 * in independent_persistent mode, wait for its device, write only non-zero
 * data (the new disk reads as zeros, so zero regions are skipped and a thin
 * disk stays thin) in large aligned writes, flush, read the whole device back
 * and compare SHA-256, then detach without any file operation, wait until the
 * device is gone and resolve the row. Every path out (error, cancel) detaches.
 *
 * Network (NBDSSL over HTTPS, NBD over HTTP), new VM: the VM was created
 * through an import lease (restore-vm.ts); each disk is streamed from the
 * restore point to its upload URL as a thin disk — holes of the point are not
 * read and all-zero 64 KiB grains are not sent, so the disk gets blocks only
 * where there is data (uploadImported) — and, once the lease is complete, read
 * back with Range GETs of its flat extent (verifyImported).
 *
 * Network, into an existing VM's disk (or when the port cannot import): a
 * datastore PUT of the whole flat extent, zeros included (the log says the
 * disk was written in full), read back with Range GETs.
 *
 * A HotAdd that fails on a disk is retried over the network when the request
 * allows it, saying why; a damaged restore point or a cancel never is.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { transportLabel, type Transport } from '@vaultline/contracts';
import { DiskReader, nonZeroRuns, type Repository, type RestorePointRef } from '@vaultline/repository';
import type { CleanupJournal } from '../backup/journal.ts';
import { DiskMeter, mib, secondsSince, type DiskUpdate, type ProgressSink } from '../backup/progress.ts';
import type { TransportChoice } from '../backup/ports.ts';
import { CancelledError, DamagedPointError, RestoreError } from '../errors.ts';
import { flatExtentPath, parseDatastorePath } from '@vaultline/contracts';
import type { DiskImageSource, HardwareDisk, HotAddedDiskWriter, RestoreDevices, RestorePort, VmImport } from './ports.ts';

const STEP = 4 * 1024 * 1024;
/** Zero detection granularity: an all-zero block of this size is not written. */
const BLOCK = 64 * 1024;

export interface DiskWriteContext {
  vsphere: RestorePort;
  repo: Repository;
  ref: RestorePointRef;
  /** Needed for HotAdd (the attach is journaled). */
  journal?: CleanupJournal | undefined;
  devices?: RestoreDevices | undefined;
  proxyVm?: { moref: string; name: string } | null | undefined;
  /** The network transport of this vCenter (HTTPS → nbdssl, HTTP → nbd). */
  network: 'nbdssl' | 'nbd';
  failoverToNetwork: boolean;
  runId?: string | undefined;
  runVmId?: string | undefined;
  vcenterId?: string | undefined;
  datacenterOf(datastore: string): string;
  runLog(level: 'info' | 'warn' | 'error', message: string): void;
  progress: ProgressSink;
  diskPhase(deviceKey: number, u: DiskUpdate): Promise<void>;
  isCancelled(): boolean;
}

export interface DiskWriteJob {
  /** Key of the disk in the restore point (the source VM's device key). */
  sourceKey: string;
  label: string;
  capacity: number;
  /** The new, empty disk: "[ds] vm/vm.vmdk". */
  fileName: string;
  choice: TransportChoice;
  /** The whole image's SHA-256 as the restore point recorded it, when it did. */
  recordedSha256?: string | undefined;
}

export interface WrittenDisk {
  key: string;
  label: string;
  fileName: string;
  capacityBytes: number;
  sha256: string;
  transport: Transport;
  reasons: string[];
  bytesWritten: number;
  bytesSkipped: number;
}

const checkCancel = (ctx: DiskWriteContext) => {
  if (ctx.isCancelled()) throw new CancelledError();
};

const zeroBlock = Buffer.alloc(BLOCK);

function hashZeros(h: Hash, n: number): void {
  for (let done = 0; done < n; done += STEP) {
    const len = Math.min(STEP, n - done);
    h.update(len <= zeroBlock.length ? zeroBlock.subarray(0, len) : Buffer.alloc(len));
  }
}

export async function writeDisk(ctx: DiskWriteContext, job: DiskWriteJob): Promise<WrittenDisk> {
  const deviceKey = Number(job.sourceKey);
  const reasons = [...job.choice.reasons];
  const startedAt = new Date();
  await ctx.diskPhase(deviceKey, { phase: 'opening', label: job.label, capacityBytes: job.capacity, transport: job.choice.transport, reasons, startedAt });
  const meterFor = (transport: string) => {
    const m = new DiskMeter({ runId: ctx.runId ?? '', runVmId: ctx.runVmId ?? '', deviceKey, bytesTotal: job.capacity }, ctx.progress);
    m.transport = transport;
    // Every disk is read back whole after it is written: the verify pass is part of its progress and ETA.
    m.verifyTotal = job.capacity;
    return m;
  };
  let transport: Transport = job.choice.transport;
  let result: { sha256: string; bytesWritten: number; bytesSkipped: number };
  try {
    if (transport === 'hotadd') {
      try {
        result = await writeHotAdd(ctx, job, meterFor('hotadd'), reasons);
      } catch (err) {
        if (err instanceof CancelledError || err instanceof DamagedPointError || !ctx.failoverToNetwork) throw err;
        const why = `HotAdd failed: ${(err as Error).message}; failover to ${transportLabel(ctx.network)}`;
        ctx.runLog('warn', `disk ${job.label}: ${why}`);
        reasons.push(why);
        transport = ctx.network;
        await ctx.diskPhase(deviceKey, { phase: 'opening', transport, reasons });
        result = await writeNetwork(ctx, job, meterFor(transport), reasons);
      }
    } else {
      result = await writeNetwork(ctx, job, meterFor(transport), reasons);
    }
  } catch (err) {
    await ctx.diskPhase(deviceKey, { phase: err instanceof CancelledError ? 'cancelled' : 'failed', transport, reasons, error: (err as Error).message, finishedAt: new Date() }).catch(() => undefined);
    throw err;
  }
  await ctx.diskPhase(deviceKey, {
    phase: 'done',
    transport,
    reasons,
    bytesRead: result.bytesWritten,
    bytesWritten: result.bytesWritten,
    bytesSkipped: result.bytesSkipped,
    bytesVerified: job.capacity,
    finishedAt: new Date(),
  });
  return { key: job.sourceKey, label: job.label, fileName: job.fileName, capacityBytes: job.capacity, transport, reasons, ...result };
}

/** What the restore point's data hashed to must be what the point recorded (when it recorded one). */
function checkRecorded(ctx: DiskWriteContext, job: DiskWriteJob, want: string): void {
  if (job.recordedSha256 && job.recordedSha256 !== want) {
    throw new DamagedPointError(`restore point ${ctx.ref.id} is damaged: disk ${job.label} reads as SHA-256 ${want}, the point recorded ${job.recordedSha256}; run a repository verify`);
  }
}

/** Reads of the verify pass kept in flight: a round trip (or a device's queue) is not paid once per STEP. */
const READ_BACK_DEPTH = 4;

/**
 * SHA-256 of [0, capacity) through `read`, READ_BACK_DEPTH reads of STEP in flight (each into its own
 * buffer), hashed in order, checking for a cancel between reads.
 */
async function readBackSha(ctx: DiskWriteContext, capacity: number, read: (o: number, l: number, into: Buffer) => Promise<Buffer>, meter: DiskMeter): Promise<string> {
  const h = createHash('sha256');
  const free: Buffer[] = Array.from({ length: READ_BACK_DEPTH }, () => Buffer.allocUnsafe(STEP));
  const inFlight: { buf: Buffer; data: Promise<Buffer> }[] = [];
  let next = 0;
  const launch = () => {
    const buf = free.pop()!;
    const data = read(next, Math.min(STEP, capacity - next), buf);
    data.catch(() => undefined); // observed in order below
    inFlight.push({ buf, data });
    next += STEP;
  };
  meter.setPhase('verifying');
  try {
    while (next < capacity || inFlight.length > 0) {
      checkCancel(ctx);
      while (next < capacity && free.length > 0) launch();
      const head = inFlight.shift()!;
      const data = await meter.time('target', () => head.data);
      h.update(data);
      free.push(head.buf);
      meter.bytesVerified += data.length;
      meter.emit();
    }
  } finally {
    // On a failure or a cancel, let what is still in flight end before the caller closes the device.
    await Promise.allSettled(inFlight.map((f) => f.data));
  }
  return h.digest('hex');
}

async function writeHotAdd(ctx: DiskWriteContext, job: DiskWriteJob, meter: DiskMeter, reasons: string[]): Promise<{ sha256: string; bytesWritten: number; bytesSkipped: number }> {
  const proxy = ctx.proxyVm;
  const { devices, journal } = ctx;
  if (!proxy || !devices || !journal) throw new Error('this Transporter has no proxy VM or no block device access for HotAdd');
  const deviceKey = Number(job.sourceKey);
  const jctx = { ...(ctx.runVmId ? { runVmId: ctx.runVmId } : {}), ...(ctx.vcenterId ? { vcenterId: ctx.vcenterId } : {}) };
  const jid = await journal.add('disk_attach', { proxyVm: proxy.moref, fileName: job.fileName, deviceKey: null, restore: true }, jctx);
  let attached: { key: number; uuid: string } | null = null;
  try {
    const d = await ctx.vsphere.attachForWrite(proxy.moref, job.fileName);
    if (!d.uuid) throw new Error(`the attached disk ${job.fileName} reports no uuid; cannot find its device`);
    attached = { key: d.key, uuid: d.uuid };
  } catch (err) {
    // The attach may have happened on the server although the call failed: the sweep looks it up by file name.
    await journal.failed(jid, (err as Error).message).catch(() => undefined);
    throw err;
  }
  await journal.update(jid, { proxyVm: proxy.moref, fileName: job.fileName, deviceKey: attached.key, uuid: attached.uuid, restore: true });
  ctx.runLog('info', `disk ${job.label}: attached to ${proxy.name} as device ${attached.key} (independent_persistent)`);
  let dev: HotAddedDiskWriter | null = null;
  try {
    dev = await devices.openHotAddedForWrite(attached.uuid, job.capacity);
    const writer = dev;
    await ctx.diskPhase(deviceKey, { phase: 'writing', transport: 'hotadd', reasons });
    meter.setPhase('writing');
    const writeStarted = performance.now();
    const reader = await DiskReader.open(ctx.repo, ctx.ref, job.sourceKey);
    const expected = createHash('sha256');
    let pos = 0;
    const sinkErrors = new Set<unknown>();
    try {
      // forEachExtent may start the next run's sink before this one's writes finished:
      // everything order-dependent (hash, position) happens before the first await.
      // Busy time: waiting for the restore point's next decoded extent is reading it (source); hashing and
      // finding the zero runs are processing; the device writes are the target.
      let waitingSince = performance.now();
      await reader.forEachExtent(async (offset, data) => {
        try {
          meter.addBusy('source', Math.max(0, performance.now() - waitingSince));
          checkCancel(ctx);
          const runs = meter.timeSync('processing', () => {
            hashZeros(expected, offset - pos);
            expected.update(data);
            return nonZeroRuns(offset, data);
          });
          meter.bytesSkipped += offset - pos;
          pos = offset + data.length;
          waitingSince = performance.now();
          const written = runs.reduce((n, r) => n + r.end - r.start, 0);
          for (const r of runs) await meter.time('target', () => writer.write(offset + r.start, data.subarray(r.start, r.end)));
          meter.bytesRead += written;
          meter.bytesWritten += written;
          meter.bytesSkipped += data.length - written;
          // The first written bytes are shown at once; later ticks are throttled.
          meter.emit(meter.bytesWritten === written && written > 0);
        } catch (err) {
          sinkErrors.add(err);
          throw err;
        }
      }, STEP);
    } catch (err) {
      if (sinkErrors.has(err)) throw err;
      throw new DamagedPointError(`restore point ${ctx.ref.id} is damaged: ${(err as Error).message}; run a repository verify`);
    }
    hashZeros(expected, job.capacity - pos);
    meter.bytesSkipped += job.capacity - pos;
    checkCancel(ctx);
    await meter.time('target', () => writer.flush());
    const want = expected.digest('hex');
    checkRecorded(ctx, job, want);
    await ctx.diskPhase(deviceKey, { phase: 'verifying', bytesRead: meter.bytesRead, bytesWritten: meter.bytesWritten, bytesSkipped: meter.bytesSkipped });
    const wroteIn = secondsSince(writeStarted);
    const verifyStarted = performance.now();
    const got = await readBackSha(ctx, job.capacity, (o, l, into) => writer.read(o, l, into), meter);
    if (got !== want) throw new RestoreError(`disk ${job.label} reads back through HotAdd with SHA-256 ${got}, the restore point has ${want}`);
    ctx.runLog('info', `disk ${job.label}: wrote ${mib(meter.bytesWritten)}, skipped ${mib(meter.bytesSkipped)} of zeros in ${wroteIn} s; read back and verified SHA-256 ${got} in ${secondsSince(verifyStarted)} s`);
    meter.setPhase('done');
    return { sha256: got, bytesWritten: meter.bytesWritten, bytesSkipped: meter.bytesSkipped };
  } finally {
    await dev?.close().catch(() => undefined);
    try {
      await ctx.vsphere.detachDisk(proxy.moref, attached.key, job.fileName);
      await devices.waitGone(attached.uuid);
      await journal.resolve(jid);
      ctx.runLog('info', `disk ${job.label}: detached from ${proxy.name}`);
    } catch (err) {
      await journal.failed(jid, (err as Error).message).catch(() => undefined);
      ctx.runLog('error', `disk ${job.label}: could not detach it from ${proxy.name}: ${(err as Error).message}; the orphan sweep will retry`);
    }
  }
}

async function writeNetwork(ctx: DiskWriteContext, job: DiskWriteJob, meter: DiskMeter, reasons: string[]): Promise<{ sha256: string; bytesWritten: number; bytesSkipped: number }> {
  const deviceKey = Number(job.sourceKey);
  const { datastore, path } = parseDatastorePath(job.fileName);
  const file = { datacenter: ctx.datacenterOf(datastore), datastore, path: flatExtentPath(path) };
  const reader = await DiskReader.open(ctx.repo, ctx.ref, job.sourceKey).catch((err: unknown) => {
    throw new DamagedPointError(`restore point ${ctx.ref.id} is damaged: ${(err as Error).message}; run a repository verify`);
  });
  const expected = createHash('sha256');
  let readError: Error | null = null;
  let cancelled = false;
  async function* body(): AsyncGenerator<Buffer> {
    for (let off = 0; off < job.capacity; off += STEP) {
      if (ctx.isCancelled()) {
        cancelled = true;
        throw new CancelledError();
      }
      let chunk: Buffer;
      try {
        chunk = await meter.time('source', () => reader.read(off, Math.min(STEP, job.capacity - off)));
      } catch (err) {
        readError = err as Error;
        throw err;
      }
      meter.timeSync('processing', () => expected.update(chunk));
      meter.bytesRead += chunk.length;
      meter.bytesWritten += chunk.length;
      meter.emit(off === 0);
      // Until the upload asks for the next piece, it is sending this one: the target's time.
      const handedOver = performance.now();
      yield chunk;
      meter.addBusy('target', performance.now() - handedOver);
    }
  }
  await ctx.diskPhase(deviceKey, { phase: 'writing', transport: meter.transport ?? ctx.network, reasons });
  meter.setPhase('writing');
  const writeStarted = performance.now();
  try {
    await ctx.vsphere.putFile(file, Readable.from(body()), job.capacity);
  } catch (err) {
    // A failure of the repository read or a cancel surfaces as a failed upload: name the real cause.
    if (cancelled) throw new CancelledError();
    if (readError) throw new DamagedPointError(`restore point ${ctx.ref.id} is damaged: ${(readError as Error).message}; run a repository verify`);
    throw err;
  }
  const want = expected.digest('hex');
  checkRecorded(ctx, job, want);
  const wroteIn = secondsSince(writeStarted);
  await ctx.diskPhase(deviceKey, { phase: 'verifying', bytesRead: meter.bytesRead, bytesWritten: meter.bytesWritten, bytesSkipped: 0 });
  const verifyStarted = performance.now();
  const got = await readBackSha(ctx, job.capacity, (o, l, into) => ctx.vsphere.readFileRange(file, o, l, into), meter);
  if (got !== want) throw new RestoreError(`disk ${job.label} reads back from the datastore with SHA-256 ${got}, the restore point has ${want}`);
  ctx.runLog(
    'info',
    `disk ${job.label}: wrote ${mib(meter.bytesWritten)} of ${mib(job.capacity)} in full (every byte, zeros included: the disk is allocated whole) over ${transportLabel(meter.transport)} in ${wroteIn} s; read back and verified SHA-256 ${got} in ${secondsSince(verifyStarted)} s`,
  );
  meter.setPhase('done');
  return { sha256: got, bytesWritten: meter.bytesWritten, bytesSkipped: 0 };
}

/** A disk uploaded through an import lease, not yet verified (its lease is completed first). */
export interface ImportedDisk {
  job: DiskWriteJob;
  fileName: string;
  /** SHA-256 of the whole image as read from the restore point. */
  want: string;
  meter: DiskMeter;
  reasons: string[];
  wroteIn: string;
}

/** The restore point's non-hole chunks as ascending ranges (adjacent chunks merged). */
async function* pointExtents(reader: DiskReader): AsyncGenerator<{ offset: number; length: number }> {
  let start = -1;
  let end = 0;
  for (let ci = 0; ci < reader.count; ci++) {
    const off = ci * reader.chunkSize;
    if (reader.isHole(ci)) continue;
    if (start >= 0 && off === end) {
      end = off + reader.chunkLen(ci);
      continue;
    }
    if (start >= 0) yield { offset: start, length: end - start };
    start = off;
    end = off + reader.chunkLen(ci);
  }
  if (start >= 0) yield { offset: start, length: end - start };
}

const isZero = (b: Buffer) => b.equals(zeroBlock.subarray(0, b.length));

/**
 * Streams one disk of the restore point into a VM being imported (`imp`): only the point's non-hole chunks are
 * read, and the port sends only non-zero grains, so the new disk stays thin. Hashes the whole image as it goes.
 */
export async function uploadImported(ctx: DiskWriteContext, job: DiskWriteJob, imp: VmImport, disk: HardwareDisk, index: number): Promise<ImportedDisk> {
  const deviceKey = Number(job.sourceKey);
  const reasons = [...job.choice.reasons];
  const transport = job.choice.transport;
  await ctx.diskPhase(deviceKey, { phase: 'opening', label: job.label, capacityBytes: job.capacity, transport, reasons, startedAt: new Date() });
  const meter = new DiskMeter({ runId: ctx.runId ?? '', runVmId: ctx.runVmId ?? '', deviceKey, bytesTotal: job.capacity }, ctx.progress);
  meter.transport = transport;
  meter.verifyTotal = job.capacity;
  try {
    const reader = await DiskReader.open(ctx.repo, ctx.ref, job.sourceKey).catch((err: unknown) => {
      throw new DamagedPointError(`restore point ${ctx.ref.id} is damaged: ${(err as Error).message}; run a repository verify`);
    });
    const expected = createHash('sha256');
    let pos = 0;
    let readError: Error | null = null;
    let cancelled = false;
    const source: DiskImageSource = {
      capacity: job.capacity,
      extents: () => pointExtents(reader),
      read: async (offset, length) => {
        if (ctx.isCancelled()) {
          cancelled = true;
          throw new CancelledError();
        }
        if (offset < pos) throw new RestoreError(`disk ${job.label}: the upload read ${offset} after ${pos}; reads must ascend`);
        let data: Buffer;
        try {
          data = await meter.time('source', () => reader.read(offset, length));
        } catch (err) {
          readError = err as Error;
          throw err;
        }
        // What the upload sends: the non-zero 64 KiB grains (a streamOptimized VMDK leaves zero grains out).
        const sent = meter.timeSync('processing', () => {
          hashZeros(expected, offset - pos);
          expected.update(data);
          let n = 0;
          for (let o = 0; o < data.length; o += BLOCK) {
            const block = data.subarray(o, Math.min(data.length, o + BLOCK));
            if (!isZero(block)) n += block.length;
          }
          return n;
        });
        meter.bytesSkipped += offset - pos;
        pos = offset + data.length;
        meter.bytesRead += data.length;
        meter.bytesWritten += sent;
        meter.bytesSkipped += data.length - sent;
        meter.emit(meter.bytesWritten === sent && sent > 0);
        return data;
      },
    };
    await ctx.diskPhase(deviceKey, { phase: 'writing', transport, reasons });
    meter.setPhase('writing');
    const writeStarted = performance.now();
    let streamBytes: number;
    try {
      ({ streamBytes } = await imp.uploadDisk(disk, index, source));
    } catch (err) {
      if (cancelled) throw new CancelledError();
      if (readError) throw new DamagedPointError(`restore point ${ctx.ref.id} is damaged: ${(readError as Error).message}; run a repository verify`);
      throw err;
    }
    hashZeros(expected, job.capacity - pos);
    meter.bytesSkipped += job.capacity - pos;
    const want = expected.digest('hex');
    checkRecorded(ctx, job, want);
    const wroteIn = secondsSince(writeStarted);
    ctx.runLog(
      'info',
      `disk ${job.label}: wrote ${mib(meter.bytesWritten)} of ${mib(job.capacity)} as a thin disk through an import lease (${mib(streamBytes)} sent as a streamOptimized VMDK over ${transportLabel(transport)}; ${mib(meter.bytesSkipped)} of holes and zeros not written) in ${wroteIn} s`,
    );
    await ctx.diskPhase(deviceKey, { phase: 'verifying', bytesRead: meter.bytesRead, bytesWritten: meter.bytesWritten, bytesSkipped: meter.bytesSkipped });
    return { job, fileName: disk.fileName, want, meter, reasons, wroteIn };
  } catch (err) {
    await ctx.diskPhase(deviceKey, { phase: err instanceof CancelledError ? 'cancelled' : 'failed', transport, reasons, error: (err as Error).message, finishedAt: new Date() }).catch(() => undefined);
    throw err;
  }
}

/** Reads an imported disk back through the datastore (its lease completed) and compares SHA-256. */
export async function verifyImported(ctx: DiskWriteContext, d: ImportedDisk): Promise<WrittenDisk> {
  const { job, meter, reasons } = d;
  const deviceKey = Number(job.sourceKey);
  const transport = job.choice.transport;
  try {
    const { datastore, path } = parseDatastorePath(d.fileName);
    const file = { datacenter: ctx.datacenterOf(datastore), datastore, path: flatExtentPath(path) };
    const verifyStarted = performance.now();
    const got = await readBackSha(ctx, job.capacity, (o, l, into) => ctx.vsphere.readFileRange(file, o, l, into), meter);
    if (got !== d.want) throw new RestoreError(`disk ${job.label} reads back from the datastore with SHA-256 ${got}, the restore point has ${d.want}`);
    ctx.runLog('info', `disk ${job.label}: read back and verified SHA-256 ${got} in ${secondsSince(verifyStarted)} s`);
    meter.setPhase('done');
    await ctx.diskPhase(deviceKey, {
      phase: 'done',
      transport,
      reasons,
      bytesRead: meter.bytesRead,
      bytesWritten: meter.bytesWritten,
      bytesSkipped: meter.bytesSkipped,
      bytesVerified: job.capacity,
      finishedAt: new Date(),
    });
    return { key: job.sourceKey, label: job.label, fileName: d.fileName, capacityBytes: job.capacity, transport, reasons, sha256: got, bytesWritten: meter.bytesWritten, bytesSkipped: meter.bytesSkipped };
  } catch (err) {
    await ctx.diskPhase(deviceKey, { phase: err instanceof CancelledError ? 'cancelled' : 'failed', transport, reasons, error: (err as Error).message, finishedAt: new Date() }).catch(() => undefined);
    throw err;
  }
}
