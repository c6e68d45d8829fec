/**
 * In-memory FAKES of vSphere, the Transporter's block devices and the cleanup journal, for fast engine tests.
 * They are not vSphere: they implement exactly what the backup cycle (src/backup/cycle.ts) calls on its ports,
 * keep the bookkeeping a test asserts on (snapshots, attached disks, LUN mounts, open readers, journal rows)
 * and write every call to one shared timeline, so the order of operations across fakes can be checked.
 *
 * Faithfulness rules they keep:
 * - a snapshot freezes each disk's bytes: its disk reads what the disk held when it was taken, whatever the
 *   fake guest writes afterwards (writes go to the live disk and are tracked by the fake CBT);
 * - every reader (SAN, HotAdd, network) reads the snapshot's disk file, never the live disk; a file that
 *   belongs to no existing snapshot cannot be opened;
 * - removing a snapshot while one of its disks is still hot-added or being read fails (the file is locked),
 *   and is recorded as a violation;
 * - a detach of a device that is not attached fails; waitGone fails while the disk is still attached.
 *
 * The repository is a real @vaultline/repository on a temporary directory (cheap; see tempRepository()).
 */
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { Transport, TransportMode, JobOptions } from '@vaultline/contracts';
import { memoryLogger } from '@vaultline/logger';
import { DiskReader, Repository, RestorePointWriter, openDiskReader } from '@vaultline/repository';
import type { VmBackupDeps, VmBackupInput } from '../src/backup/cycle.ts';
import type { CleanupJournal, CleanupKind, CleanupRecord } from '../src/backup/journal.ts';
import type { Area, DatastoreInfo, LocalDevices, SourceReader, VmDisk, VmInfo, VSpherePort } from '../src/backup/ports.ts';
import { parseDatastorePath } from '@vaultline/contracts';
import type { DatastoreFile, HardwareDisk, HotAddedDiskWriter, NewVm, PlacementTargets, RestoreDevices, RestoreInventory, RestorePort, RestoreVmInfo, VmHardware } from '../src/restore/ports.ts';

// ---------------------------------------------------------------- timeline

/** Every call to a fake, in order, as "<who>.<what> <detail>". */
export class Timeline {
  readonly events: string[] = [];
  /** Called with each event as it happens (tests use it to cancel or fail at an exact point). */
  listener: ((event: string) => void) | null = null;
  note(event: string): void {
    this.events.push(event);
    this.listener?.(event);
  }
  /** Index of the first event matching; throws (failing the test) when there is none. */
  first(match: RegExp | string): number {
    const i = this.events.findIndex((e) => (typeof match === 'string' ? e === match : match.test(e)));
    if (i < 0) throw new Error(`no event matches ${String(match)}; events:\n${this.events.join('\n')}`);
    return i;
  }
  has(match: RegExp | string): boolean {
    return this.events.some((e) => (typeof match === 'string' ? e === match : match.test(e)));
  }
}

// ---------------------------------------------------------------- content helpers

/** Deterministic pseudo-random bytes (AES-128-CTR keystream of the seed): incompressible, never all-zero blocks. */
export function seededBytes(seed: number, n: number): Buffer {
  const key = createHash('sha256').update(`fake-disk:${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------- faults

export interface ReadFault {
  transport: Transport;
  /** Disk device key whose reader fails (any disk when absent). */
  diskKey?: number;
  /** Every read touching a byte at or beyond this offset fails (the device went away there). */
  fromOffset?: number;
  /** The n-th read call (1-based) of that reader fails, and every one after it. */
  onCall?: number;
  message: string;
}

export interface OpenFault {
  transport: Transport;
  diskKey?: number;
  message: string;
  /** Fail this many opens, then succeed (default: always). */
  times?: number;
}

type FailableOp = 'createSnapshot' | 'removeSnapshot' | 'attachDisk' | 'detachDisk' | 'snapshotHardware' | 'changedAreas' | 'probeSan' | 'waitGone';

/** Faults a test injects; shared by the fake vSphere and the fake devices. */
export class Faults {
  readonly reads: ReadFault[] = [];
  readonly opens: OpenFault[] = [];
  /** op -> how many times to fail (Infinity = always) and with what. */
  private readonly ops = new Map<FailableOp, { times: number; message: string }>();

  failOp(op: FailableOp, message: string, times = Infinity): void {
    this.ops.set(op, { times, message });
  }
  /** Throws when `op` is due to fail. */
  check(op: FailableOp): void {
    const f = this.ops.get(op);
    if (!f || f.times <= 0) return;
    f.times -= 1;
    throw new Error(f.message);
  }
  openFault(transport: Transport, diskKey: number): OpenFault | undefined {
    const f = this.opens.find((o) => o.transport === transport && (o.diskKey === undefined || o.diskKey === diskKey) && (o.times === undefined || o.times > 0));
    if (f && f.times !== undefined) f.times -= 1;
    return f;
  }
  readFault(transport: Transport, diskKey: number): ReadFault | undefined {
    return this.reads.find((r) => r.transport === transport && (r.diskKey === undefined || r.diskKey === diskKey));
  }
}

// ---------------------------------------------------------------- readers

/** A reader of one snapshot disk's frozen bytes, keeping what it was asked for. */
export class FakeReader implements SourceReader {
  readonly reads: Area[] = [];
  calls = 0;
  bytesServed = 0;
  closed = false;
  failedAt: number | null = null;
  /** Called after each successful read (tests use it to cancel or let the guest write mid-copy). */
  onRead?: (r: FakeReader, offset: number, length: number) => void;
  /** A hot-added device: reads fail once it was detached. */
  alive?: () => boolean;
  readonly readAhead = { segmentBytes: 256 * 1024, depth: 2 };

  constructor(
    readonly transport: Transport,
    readonly diskKey: number,
    readonly fileName: string,
    private readonly bytes: () => Buffer,
    readonly capacity: number,
    private readonly fault: ReadFault | undefined,
    private readonly timeline: Timeline,
    private readonly onClose: () => void,
  ) {}

  get describe(): string {
    return `fake ${this.transport} reader of ${this.fileName}`;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.calls += 1;
    // A real read completes later: let other tasks (the writer, a sibling disk) run in between.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closed) throw new Error(`fake ${this.transport} reader of ${this.fileName}: read after close`);
    if (this.alive && !this.alive()) throw new Error(`fake ${this.transport} device of ${this.fileName} is gone (detached)`);
    if (offset < 0 || length < 0 || offset + length > this.capacity) throw new RangeError(`read [${offset}, +${length}) outside ${this.capacity} bytes`);
    const f = this.fault;
    if (f && ((f.fromOffset !== undefined && offset + length > f.fromOffset) || (f.onCall !== undefined && this.calls >= f.onCall))) {
      this.failedAt ??= offset;
      throw new Error(f.message);
    }
    const src = this.bytes();
    const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    src.copy(out, 0, offset, offset + length);
    this.reads.push({ start: offset, length });
    this.bytesServed += length;
    this.onRead?.(this, offset, length);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) {
      this.timeline.note(`reader.close-again ${this.transport} ${this.diskKey}`);
      return;
    }
    this.closed = true;
    this.timeline.note(`reader.close ${this.transport} ${this.diskKey}`);
    this.onClose();
  }

  /** Lowest offset this reader delivered (Infinity when none). */
  get lowestOffset(): number {
    return Math.min(...this.reads.map((r) => r.start));
  }
}

// ---------------------------------------------------------------- fake vSphere

export interface FakeDiskSpec {
  key: number;
  label?: string;
  capacityBytes: number;
  datastore?: string;
  controller?: VmDisk['controller'];
  /** Initial contents (default: seeded pseudo-random bytes of the key). */
  contents?: Buffer;
  diskMode?: string;
}

interface FakeVm {
  info: VmInfo;
  live: Map<number, Buffer>;
  /** CBT: every guest write since CBT was on, with its sequence number. */
  cbtLog: { seq: number; start: number; length: number; key: number }[];
  cbtSeq: number;
  /** File name of each disk before any snapshot (what the snapshot freezes). */
  baseFile: Map<number, string>;
}

export interface FakeSnapshot {
  moref: string;
  vmMoref: string;
  vmName: string;
  runVmId: string;
  quiesced: boolean;
  disks: VmDisk[];
  frozen: Map<number, Buffer>;
  cbtSeq: number;
}

/** A FAKE of vSphere for the backup cycle: VMs with in-memory disks, snapshots that freeze them, CBT, HotAdd. */
export class FakeVSphere implements VSpherePort {
  readonly vms = new Map<string, FakeVm>();
  readonly datastores = new Map<string, DatastoreInfo>();
  /** Snapshots that exist now. */
  readonly snapshots = new Map<string, FakeSnapshot>();
  /** Every snapshot ever taken (removed ones too). */
  readonly snapshotsTaken: string[] = [];
  /** Devices hot-added to a proxy VM now: uuid -> where. */
  readonly attached = new Map<string, { proxyVm: string; deviceKey: number; fileName: string }>();
  readonly attachHistory: { proxyVm: string; deviceKey: number; fileName: string; uuid: string }[] = [];
  /** Readers of every transport, in the order they were opened. */
  readonly readers: FakeReader[] = [];
  /** What a faithful vSphere would have refused or a test must never see (e.g. a snapshot removed under a reader). */
  readonly violations: string[] = [];
  /** When set, createSnapshot with quiesce throws it (a test passes a QuiesceError, as the port contract says). */
  quiesceError: Error | null = null;
  /** The progress percentages the snapshot tasks report while they run (none: they finish at once, as vcsim's do). */
  taskProgress: number[] = [];
  /** Awaited before a network reader opens (tests hold it to let something else happen first). */
  beforeNetworkOpen: ((disk: VmDisk) => Promise<void>) | null = null;
  /** Called with each reader as it opens (tests hook its onRead). */
  onReaderOpen: ((r: FakeReader) => void) | null = null;
  private next = 1;

  constructor(
    readonly timeline: Timeline,
    readonly faults: Faults,
  ) {}

  addDatastore(ds: Partial<DatastoreInfo> & { name: string }): void {
    this.datastores.set(ds.name, { type: 'VMFS', naaIds: [], extents: [], hosts: ['host-1'], ...ds });
  }

  addVm(spec: { moref: string; name: string; host?: string; changeTrackingEnabled?: boolean; disks: FakeDiskSpec[]; instanceUuid?: string }): void {
    const live = new Map<number, Buffer>();
    const baseFile = new Map<number, string>();
    const disks: VmDisk[] = spec.disks.map((d, i) => {
      const ds = d.datastore ?? 'ds1';
      const fileName = `[${ds}] ${spec.name}/${spec.name}${i === 0 ? '' : `_${i}`}.vmdk`;
      const contents = d.contents ?? seededBytes(d.key, d.capacityBytes);
      if (contents.length !== d.capacityBytes) throw new Error(`disk ${d.key}: contents are ${contents.length} bytes, capacity ${d.capacityBytes}`);
      live.set(d.key, Buffer.from(contents));
      baseFile.set(d.key, fileName);
      return {
        key: d.key,
        label: d.label ?? `Hard disk ${i + 1}`,
        capacityBytes: d.capacityBytes,
        fileName,
        datastore: ds,
        controller: d.controller ?? 'pvscsi',
        busNumber: 0,
        unitNumber: i,
        uuid: `6000C29${spec.moref}-${d.key}`,
        ...(d.diskMode ? { diskMode: d.diskMode } : {}),
      };
    });
    this.vms.set(spec.moref, {
      info: {
        moref: spec.moref,
        name: spec.name,
        instanceUuid: spec.instanceUuid ?? `uuid-${spec.moref}`,
        biosUuid: `bios-${spec.moref}`,
        powerState: 'poweredOn',
        changeTrackingEnabled: spec.changeTrackingEnabled ?? true,
        host: spec.host ?? 'host-1',
        disks,
      },
      live,
      cbtLog: [],
      cbtSeq: 1,
      baseFile,
    });
  }

  private vm(moref: string): FakeVm {
    const vm = this.vms.get(moref);
    if (!vm) throw new Error(`ManagedObjectNotFound: ${moref}`);
    return vm;
  }

  /**
   * The fake guest writes to its live disk (tracked by CBT; never visible in an existing snapshot).
   * `cbtMisses` simulates a CBT bug: the write is not reported by changedAreas.
   */
  guestWrite(vmMoref: string, key: number, offset: number, data: Buffer, opts: { cbtMisses?: boolean } = {}): void {
    const vm = this.vm(vmMoref);
    const live = vm.live.get(key);
    if (!live) throw new Error(`no disk ${key}`);
    data.copy(live, offset);
    vm.cbtSeq += 1;
    if (!opts.cbtMisses) vm.cbtLog.push({ seq: vm.cbtSeq, start: offset, length: data.length, key });
    this.timeline.note(`guest.write ${vmMoref} ${key} ${offset}+${data.length}`);
  }

  liveBytes(vmMoref: string, key: number): Buffer {
    return this.vm(vmMoref).live.get(key)!;
  }

  snapshotBytes(snapshot: string, key: number): Buffer {
    const s = this.snapshots.get(snapshot);
    if (!s) throw new Error(`no snapshot ${snapshot}`);
    return s.frozen.get(key)!;
  }

  /** The snapshot disk behind a file name (only files of existing snapshots can be read). */
  private snapshotFile(fileName: string): { snap: FakeSnapshot; disk: VmDisk } {
    for (const snap of this.snapshots.values()) {
      const disk = snap.disks.find((d) => d.fileName === fileName);
      if (disk) return { snap, disk };
    }
    throw new Error(`FileNotFound: ${fileName} is not the disk of an existing snapshot`);
  }

  /** A reader over a snapshot's disk file (used by every transport). */
  openFileReader(transport: Transport, fileName: string, capacity: number, onClose: () => void = () => undefined): FakeReader {
    const { snap, disk } = this.snapshotFile(fileName);
    const open = this.faults.openFault(transport, disk.key);
    if (open) throw new Error(open.message);
    const frozen = snap.frozen.get(disk.key)!;
    if (capacity > frozen.length) throw new Error(`${fileName} has ${frozen.length} bytes, asked for ${capacity}`);
    const r = new FakeReader(transport, disk.key, fileName, () => frozen, capacity, this.faults.readFault(transport, disk.key), this.timeline, onClose);
    this.readers.push(r);
    this.timeline.note(`reader.open ${transport} ${disk.key}`);
    this.onReaderOpen?.(r);
    return r;
  }

  // ---- VSpherePort

  async getVm(moref: string): Promise<VmInfo> {
    const vm = this.vm(moref);
    return structuredClone(vm.info);
  }

  async datastore(name: string): Promise<DatastoreInfo> {
    const ds = this.datastores.get(name);
    if (!ds) throw new Error(`no datastore ${name}`);
    return structuredClone(ds);
  }

  async enableCbt(vmMoref: string): Promise<void> {
    this.vm(vmMoref).info.changeTrackingEnabled = true;
    this.timeline.note(`vsphere.enableCbt ${vmMoref}`);
  }

  async createSnapshot(vmMoref: string, runVmId: string, quiesce: boolean, onProgress?: (percent: number) => void): Promise<string> {
    this.timeline.note(`vsphere.createSnapshot.call ${vmMoref} quiesce=${quiesce}`);
    for (const p of this.taskProgress) onProgress?.(p);
    this.faults.check('createSnapshot');
    if (quiesce && this.quiesceError) throw this.quiesceError;
    const vm = this.vm(vmMoref);
    if ([...this.snapshots.values()].some((s) => s.vmMoref === vmMoref)) throw new Error(`the fake supports one snapshot per VM; ${vmMoref} has one`);
    const moref = `snapshot-${this.next++}`;
    const frozen = new Map([...vm.live].map(([k, b]) => [k, Buffer.from(b)]));
    const disks = vm.info.disks.map((d) => ({
      ...d,
      fileName: vm.baseFile.get(d.key)!,
      ...(vm.info.changeTrackingEnabled ? { changeId: `52 fake ${vmMoref}/${d.key}/${vm.cbtSeq}` } : {}),
    }));
    // The live disk now writes into a delta; the snapshot keeps the base file.
    for (const d of vm.info.disks) d.fileName = vm.baseFile.get(d.key)!.replace(/\.vmdk$/, '-000001.vmdk');
    this.snapshots.set(moref, { moref, vmMoref, vmName: vm.info.name, runVmId, quiesced: quiesce, disks, frozen, cbtSeq: vm.cbtSeq });
    this.snapshotsTaken.push(moref);
    this.timeline.note(`vsphere.createSnapshot ${moref}`);
    return moref;
  }

  async snapshotDisks(snapshotMoref: string): Promise<VmDisk[]> {
    const s = this.snapshots.get(snapshotMoref);
    if (!s) throw new Error(`ManagedObjectNotFound: ${snapshotMoref}`);
    return structuredClone(s.disks);
  }

  async snapshotHardware(snapshotMoref: string): Promise<unknown> {
    this.faults.check('snapshotHardware');
    const s = this.snapshots.get(snapshotMoref);
    if (!s) throw new Error(`ManagedObjectNotFound: ${snapshotMoref}`);
    return { fake: true, disks: s.disks.map((d) => ({ key: d.key, capacityBytes: d.capacityBytes })) };
  }

  async removeSnapshot(snapshotMoref: string, onProgress?: (percent: number) => void): Promise<void> {
    this.timeline.note(`vsphere.removeSnapshot.call ${snapshotMoref}`);
    for (const p of this.taskProgress) onProgress?.(p);
    const s = this.snapshots.get(snapshotMoref);
    if (!s) throw new Error(`ManagedObjectNotFound: ${snapshotMoref}`);
    const files = new Set(s.disks.map((d) => d.fileName));
    const attached = [...this.attached.values()].filter((a) => files.has(a.fileName));
    const open = this.readers.filter((r) => !r.closed && files.has(r.fileName));
    if (attached.length > 0 || open.length > 0) {
      const what = [...attached.map((a) => `attached to ${a.proxyVm} as ${a.deviceKey}`), ...open.map((r) => `open over ${r.transport}`)].join(', ');
      this.violations.push(`removeSnapshot ${snapshotMoref} while its disks are in use (${what})`);
      throw new Error(`FileLocked: a disk of ${snapshotMoref} is in use (${what})`);
    }
    this.faults.check('removeSnapshot');
    this.snapshots.delete(snapshotMoref);
    const vm = this.vms.get(s.vmMoref);
    if (vm) for (const d of vm.info.disks) d.fileName = vm.baseFile.get(d.key)!;
    this.timeline.note(`vsphere.removeSnapshot ${snapshotMoref}`);
  }

  async changedAreas(vmMoref: string, snapshotMoref: string, deviceKey: number, changeId: string, capacity: number): Promise<Area[]> {
    this.faults.check('changedAreas');
    const s = this.snapshots.get(snapshotMoref);
    if (!s || s.vmMoref !== vmMoref) throw new Error(`ManagedObjectNotFound: ${snapshotMoref}`);
    const frozen = s.frozen.get(deviceKey);
    if (!frozen) throw new Error(`no disk ${deviceKey} in ${snapshotMoref}`);
    if (changeId === '*') {
      // Allocated = every 64 KiB block that is not all zeros.
      const out: Area[] = [];
      const block = 64 * 1024;
      const zero = Buffer.alloc(block);
      for (let off = 0; off < capacity; off += block) {
        const n = Math.min(block, capacity - off);
        if (!frozen.subarray(off, off + n).equals(zero.subarray(0, n))) out.push({ start: off, length: n });
      }
      return out;
    }
    const m = /^52 fake (.+)\/(\d+)\/(\d+)$/.exec(changeId);
    if (!m || m[1] !== vmMoref || Number(m[2]) !== deviceKey || Number(m[3]) > s.cbtSeq) throw new Error(`FileFault: changeId ${changeId} is not valid for this disk`);
    const since = Number(m[3]);
    const vm = this.vm(vmMoref);
    return vm.cbtLog.filter((w) => w.key === deviceKey && w.seq > since && w.seq <= s.cbtSeq).map((w) => ({ start: w.start, length: w.length }));
  }

  async attachDisk(proxyVmMoref: string, fileName: string): Promise<{ deviceKey: number; uuid: string }> {
    this.timeline.note(`vsphere.attachDisk.call ${fileName}`);
    this.faults.check('attachDisk');
    this.snapshotFile(fileName); // only a snapshot's disk is attached
    // Like vSphere, the device key follows the free SCSI unit: a key freed by a detach is given out again.
    const used = new Set([...this.attached.values()].filter((a) => a.proxyVm === proxyVmMoref).map((a) => a.deviceKey));
    let deviceKey = 2001;
    while (used.has(deviceKey)) deviceKey++;
    const uuid = `6000C29-hotadd-${this.next++}`;
    this.attached.set(uuid, { proxyVm: proxyVmMoref, deviceKey, fileName });
    this.attachHistory.push({ proxyVm: proxyVmMoref, deviceKey, fileName, uuid });
    this.timeline.note(`vsphere.attachDisk ${deviceKey}`);
    return { deviceKey, uuid };
  }

  async detachDisk(proxyVmMoref: string, deviceKey: number, expectFileName: string): Promise<void> {
    this.timeline.note(`vsphere.detachDisk.call ${deviceKey}`);
    this.faults.check('detachDisk');
    const entry = [...this.attached].find(([, a]) => a.proxyVm === proxyVmMoref && a.deviceKey === deviceKey);
    if (!entry) throw new Error(`InvalidDeviceSpec: device ${deviceKey} is not attached to ${proxyVmMoref}`);
    // As the real port does: a reused key that now holds another disk is not detached.
    if (entry[1].fileName !== expectFileName) throw new Error(`disk ${deviceKey} on ${proxyVmMoref} is ${entry[1].fileName}, not ${expectFileName}; not detaching`);
    this.attached.delete(entry[0]);
    this.timeline.note(`vsphere.detachDisk ${deviceKey}`);
  }

  async findVmByBiosUuid(biosUuid: string): Promise<VmInfo | null> {
    const vm = [...this.vms.values()].find((v) => v.info.biosUuid === biosUuid);
    return vm ? structuredClone(vm.info) : null;
  }

  async findTaggedSnapshots(runVmId?: string): Promise<{ vmMoref: string; vmName: string; snapshot: string; runVmId: string }[]> {
    return [...this.snapshots.values()].filter((s) => runVmId === undefined || s.runVmId === runVmId).map((s) => ({ vmMoref: s.vmMoref, vmName: s.vmName, snapshot: s.moref, runVmId: s.runVmId }));
  }

  async vmDisks(vmMoref: string): Promise<VmDisk[]> {
    const disks = structuredClone(this.vms.get(vmMoref)?.info.disks ?? []);
    for (const a of this.attached.values()) {
      if (a.proxyVm === vmMoref) disks.push({ key: a.deviceKey, label: `hot-added ${a.deviceKey}`, capacityBytes: 0, fileName: a.fileName, datastore: '', controller: 'pvscsi' });
    }
    return disks;
  }

  async undoRestore(): Promise<{ removed: boolean; completed: boolean; done: string[] }> {
    throw new Error('FakeVSphere.undoRestore: not used by the backup cycle');
  }

  async consolidate(vmMoref: string): Promise<void> {
    this.timeline.note(`vsphere.consolidate ${vmMoref}`);
  }

  async openNetworkReader(disk: VmDisk, snapshotMoref: string, transport: 'nbdssl' | 'nbd'): Promise<SourceReader> {
    this.timeline.note(`vsphere.openNetworkReader.call ${disk.key} ${transport}`);
    await this.beforeNetworkOpen?.(disk);
    const s = this.snapshots.get(snapshotMoref);
    if (!s) throw new Error(`ManagedObjectNotFound: ${snapshotMoref}`);
    if (!s.disks.some((d) => d.fileName === disk.fileName)) throw new Error(`${disk.fileName} is not a disk of ${snapshotMoref}`);
    return this.openFileReader(transport, disk.fileName, disk.capacityBytes);
  }
}

// ---------------------------------------------------------------- fake local devices

/** A FAKE of the Transporter's block devices: visible LUNs, read-only mounts, hot-added disks appearing as devices. */
export class FakeDevices implements LocalDevices {
  /** NAA id -> local device. */
  readonly luns = new Map<string, string>();
  /** Mount points in use now. */
  readonly mounted = new Set<string>();
  readonly mountHistory: string[] = [];
  blockDevices = true;
  private mounts = 0;

  constructor(
    private readonly vsphere: FakeVSphere,
    private readonly timeline: Timeline,
    private readonly faults: Faults,
  ) {}

  async canUseBlockDevices(): Promise<boolean> {
    return this.blockDevices;
  }

  async findLun(naa: string): Promise<string | null> {
    return this.luns.get(naa) ?? null;
  }

  /** The cleanup descriptor of the next mount (journaled by the caller before the mount happens). */
  private nextMount(): { mountPoint: string } {
    return { mountPoint: `/run/vaultline/fake-mnt-${++this.mounts}` };
  }

  private mount(naa: string, mountPoint: string, preflight: boolean): void {
    this.mounted.add(mountPoint);
    this.mountHistory.push(mountPoint);
    this.timeline.note(`devices.mount ${mountPoint} ${naa}${preflight ? ' preflight' : ''}`);
  }

  private unmount(mountPoint: string): void {
    if (!this.mounted.delete(mountPoint)) throw new Error(`${mountPoint} is not mounted`);
    this.timeline.note(`devices.unmount ${mountPoint}`);
  }

  async probeSan(naa: string, device: string, partition: number, record?: (cleanup: unknown) => Promise<void>): Promise<string> {
    this.faults.check('probeSan');
    const cleanup = this.nextMount();
    await record?.(cleanup);
    this.mount(naa, cleanup.mountPoint, true);
    this.unmount(cleanup.mountPoint);
    return `partition ${partition} of ${device} (${naa}), fake VMFS, mounted read-only and unmounted`;
  }

  async openSan(
    naa: string,
    device: string,
    partition: number,
    fileName: string,
    capacity: number,
    record?: (cleanup: unknown) => Promise<void>,
  ): Promise<SourceReader & { cleanup: unknown; volume: string }> {
    if (this.luns.get(naa) !== device) throw new Error(`${device} is not LUN ${naa}`);
    const cleanup = this.nextMount();
    await record?.(cleanup);
    this.mount(naa, cleanup.mountPoint, false);
    let reader: FakeReader;
    try {
      reader = this.vsphere.openFileReader('san', fileName, capacity, () => this.unmount(cleanup.mountPoint));
    } catch (err) {
      this.unmount(cleanup.mountPoint);
      throw err;
    }
    return Object.assign(reader, { cleanup, volume: `fake LUN ${naa} partition ${partition}` });
  }

  async openHotAdded(diskUuid: string, capacity: number): Promise<SourceReader & { device: string }> {
    const a = this.vsphere.attached.get(diskUuid);
    if (!a) throw new Error(`the hot-added disk ${diskUuid} did not appear`);
    const reader = this.vsphere.openFileReader('hotadd', a.fileName, capacity);
    reader.alive = () => this.vsphere.attached.has(diskUuid);
    return Object.assign(reader, { device: `/dev/fake-${a.deviceKey}` });
  }

  async waitGone(diskUuid: string): Promise<void> {
    this.faults.check('waitGone');
    if (this.vsphere.attached.has(diskUuid)) throw new Error(`the hot-added disk ${diskUuid} is still present`);
    this.timeline.note(`devices.waitGone ${diskUuid}`);
  }

  async undoSan(cleanup: unknown): Promise<void> {
    this.unmount((cleanup as { mountPoint: string }).mountPoint);
  }
}

// ---------------------------------------------------------------- in-memory journal

export interface JournalRow extends CleanupRecord {
  status: 'pending' | 'resolved' | 'refused';
  lastError: string | null;
}

/** An in-memory CleanupJournal keeping every row and every call, in order. */
export class MemoryJournal implements CleanupJournal {
  readonly rows = new Map<string, JournalRow>();
  readonly calls: { op: 'add' | 'update' | 'resolve' | 'failed' | 'refuse'; id: string; kind: CleanupKind }[] = [];
  private next = 1;

  constructor(private readonly timeline: Timeline) {}

  private row(id: string): JournalRow {
    const r = this.rows.get(id);
    if (!r) throw new Error(`no journal row ${id}`);
    return r;
  }

  async add(kind: CleanupKind, target: Record<string, unknown>, ctx: { runVmId?: string; vcenterId?: string }): Promise<string> {
    const id = `j${this.next++}`;
    this.rows.set(id, { id, kind, target: structuredClone(target), attempts: 0, runVmId: ctx.runVmId ?? null, vcenterId: ctx.vcenterId ?? null, status: 'pending', lastError: null });
    this.calls.push({ op: 'add', id, kind });
    this.timeline.note(`journal.add ${kind} ${id}`);
    return id;
  }

  async update(id: string, target: Record<string, unknown>): Promise<void> {
    const r = this.row(id);
    r.target = structuredClone(target);
    this.calls.push({ op: 'update', id, kind: r.kind });
    this.timeline.note(`journal.update ${r.kind} ${id}`);
  }

  async resolve(id: string): Promise<void> {
    const r = this.row(id);
    if (r.status === 'resolved') this.timeline.note(`journal.resolve-again ${r.kind} ${id}`);
    r.status = 'resolved';
    this.calls.push({ op: 'resolve', id, kind: r.kind });
    this.timeline.note(`journal.resolve ${r.kind} ${id}`);
  }

  async failed(id: string, error: string): Promise<void> {
    const r = this.row(id);
    r.attempts += 1;
    r.lastError = error;
    this.calls.push({ op: 'failed', id, kind: r.kind });
    this.timeline.note(`journal.failed ${r.kind} ${id}`);
  }

  async refuse(id: string, reason: string): Promise<void> {
    const r = this.row(id);
    r.status = 'refused';
    r.lastError = reason;
    this.calls.push({ op: 'refuse', id, kind: r.kind });
  }

  async pending(): Promise<CleanupRecord[]> {
    return [...this.rows.values()].filter((r) => r.status === 'pending').map(({ id, kind, target, attempts, runVmId, vcenterId }) => ({ id, kind, target, attempts, runVmId, vcenterId }));
  }

  /** Rows still pending (what the orphan sweep would replay). */
  get open(): JournalRow[] {
    return [...this.rows.values()].filter((r) => r.status === 'pending');
  }
}

// ---------------------------------------------------------------- a real repository in a tmp dir

export interface TempRepository {
  repo: Repository;
  dir: string;
  dispose(): Promise<void>;
}

export async function tempRepository(): Promise<TempRepository> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-core-fake-'));
  await Repository.init(dir, { chunkSize: 64 * 1024 });
  const repo = await Repository.open(dir, { workers: 1 });
  return {
    repo,
    dir,
    dispose: async () => {
      await repo.close().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A disk of a committed restore point, read back whole through the repository's DiskReader. */
export async function readPointDisk(repo: Repository, ref: { vmId: string; id: string }, key: number): Promise<Buffer> {
  const r = await openDiskReader(repo, ref, String(key));
  return r.read(0, r.capacity);
}

// ---------------------------------------------------------------- a lab of fakes + the cycle's inputs

export const PROXY = { moref: 'vm-proxy', name: 'vaultline-proxy', freeScsiUnits: 10, host: 'host-1' };

export interface FakeLab {
  timeline: Timeline;
  faults: Faults;
  vsphere: FakeVSphere;
  devices: FakeDevices;
  journal: MemoryJournal;
  /** Run-log lines the cycle wrote. */
  runLog: { level: string; message: string }[];
  phases: string[];
  /** Every phase call with what it said it waits on, in order. */
  phaseDetails: { phase: string; detail: string | null }[];
  diskPhases: { key: number; phase: string }[];
  /** What isCancelled() answers (tests set it from hooks, at the point they want the cancel). */
  cancelled: boolean;
  isCancelledCalls: number;
}

export function fakeLab(): FakeLab {
  const timeline = new Timeline();
  const faults = new Faults();
  const vsphere = new FakeVSphere(timeline, faults);
  const devices = new FakeDevices(vsphere, timeline, faults);
  return { timeline, faults, vsphere, devices, journal: new MemoryJournal(timeline), runLog: [], phases: [], phaseDetails: [], diskPhases: [], cancelled: false, isCancelledCalls: 0 };
}

/**
 * A VM "vm-1" (web01) with two disks on datastore ds1, a VMFS datastore on LUN naa.1 that this Transporter sees
 * (so automatic mode picks SAN), and HotAdd possible through the proxy VM.
 */
export function twoDiskLab(opts: { sizes?: [number, number]; lunVisible?: boolean } = {}): FakeLab {
  const lab = fakeLab();
  const [a, b] = opts.sizes ?? [6 * MiB, 3 * MiB];
  lab.vsphere.addDatastore({ name: 'ds1', naaIds: ['naa.1'], extents: [{ naa: 'naa.1', partition: 1 }], hosts: ['host-1'] });
  if (opts.lunVisible ?? true) lab.devices.luns.set('naa.1', '/dev/fake-sdb');
  lab.vsphere.addVm({
    moref: 'vm-1',
    name: 'web01',
    disks: [
      { key: 2000, capacityBytes: a },
      { key: 2001, capacityBytes: b },
    ],
  });
  return lab;
}

export const defaultOptions = (over: Partial<JobOptions> = {}): JobOptions => ({
  quiesce: 'off',
  failoverToNetwork: true,
  enableCbt: false,
  cbtSanityRate: 0,
  retention: { keepLast: 14, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 },
  retries: { count: 0, delayMinutes: 10 },
  window: null,
  ...over,
});

export function backupInput(over: Partial<VmBackupInput> & { transportMode?: TransportMode } = {}): VmBackupInput {
  return {
    runId: 'run-1',
    runVmId: 'runvm-1',
    vcenterId: 'vc-1',
    vmMoref: 'vm-1',
    transportMode: 'automatic',
    options: defaultOptions(),
    previous: null,
    repositoryVmId: (vm) => vm.instanceUuid ?? vm.moref,
    ...over,
  };
}

export function backupDeps(lab: FakeLab, repo: Repository, over: Partial<VmBackupDeps> = {}): VmBackupDeps {
  return {
    vsphere: lab.vsphere,
    devices: lab.devices,
    journal: lab.journal,
    repo,
    openWriter: (r, o) => RestorePointWriter.open(r, o),
    openParentReader: (r, ref, key) => DiskReader.open(r, ref, key),
    transporter: { blockDevices: true, proxyVm: PROXY, networkTransport: 'nbdssl' },
    progress: { disk: () => undefined },
    log: memoryLogger('core-fake-test', 'warn').log,
    runLog: (level, message) => {
      lab.runLog.push({ level, message });
    },
    phase: async (phase, detail) => {
      lab.phaseDetails.push({ phase, detail: detail ?? null });
      if (lab.phases.at(-1) === phase && lab.phaseDetails.at(-2)?.phase === phase) return;
      lab.phases.push(phase);
      lab.timeline.note(`phase ${phase}`);
    },
    diskPhase: async (key, u) => {
      lab.diskPhases.push({ key, phase: u.phase });
      lab.timeline.note(`diskPhase ${key} ${u.phase}`);
    },
    isCancelled: () => {
      lab.isCancelledCalls += 1;
      return lab.cancelled;
    },
    maxParallelDisks: 2,
    // Retried as in production, without the production pauses.
    snapshotRemoval: { attempts: 3, delayMs: 1 },
    ...over,
  };
}

// ---------------------------------------------------------------- restore: fake RestorePort + devices

export interface FakeRestoreVm {
  info: RestoreVmInfo;
  /** The restore marker CreateVM gave it, if any. */
  marker?: string;
}

/** A write fault: the n-th byte written to a file (over `via`) fails, and every write after it. */
export interface WriteFault {
  via: 'hotadd' | 'network';
  /** Datastore path (e.g. "app01-r/app01-r_1-flat.vmdk") or a hot-added descriptor file name; any when absent. */
  file?: RegExp;
  afterBytes: number;
  message: string;
}

/**
 * A FAKE of vSphere for the restore engine: an inventory with one datacenter, host, pool, datastore and network;
 * CreateVM with a marker; datastore files as Buffers (a disk "x.vmdk" stores its bytes in "x-flat.vmdk"); HotAdd
 * for writing; PUT and ranged GET of datastore files. Every call goes to the shared timeline.
 */
export class FakeRestorePort implements RestorePort {
  readonly networkTransport = 'nbdssl' as const;
  readonly standaloneHost = undefined;
  readonly vmsByMoref = new Map<string, FakeRestoreVm>();
  /** "ds/path" -> bytes */
  readonly files = new Map<string, Buffer>();
  /** Hot-added for writing now: uuid -> where. */
  readonly attached = new Map<string, { vm: string; key: number; fileName: string }>();
  readonly destroyed: { moref: string; name: string; restoreId: string }[] = [];
  readonly writeFaults: WriteFault[] = [];
  readonly violations: string[] = [];
  private next = 100;

  constructor(readonly timeline: Timeline) {
    this.addVm({ moref: 'vm-proxy', name: 'vaultline-proxy', powerState: 'poweredOn', template: false, datastores: ['ds1'], disks: [] });
  }

  addVm(info: RestoreVmInfo, marker?: string): void {
    this.vmsByMoref.set(info.moref, { info, ...(marker ? { marker } : {}) });
  }

  static fileKey(fileName: string): string {
    const { datastore, path: p } = parseDatastorePath(fileName);
    return `${datastore}/${p.replace(/\.vmdk$/, '-flat.vmdk')}`;
  }

  /** The bytes of a disk ("[ds] a/b.vmdk"). */
  diskBytes(fileName: string): Buffer {
    const b = this.files.get(FakeRestorePort.fileKey(fileName));
    if (!b) throw new Error(`FileNotFound: ${fileName}`);
    return b;
  }

  writeFault(via: WriteFault['via'], file: string): WriteFault | undefined {
    return this.writeFaults.find((f) => f.via === via && (!f.file || f.file.test(file)));
  }

  private get(moref: string): FakeRestoreVm {
    const vm = this.vmsByMoref.get(moref);
    if (!vm) throw new Error(`ManagedObjectNotFound: ${moref}`);
    return vm;
  }

  async inventory(): Promise<RestoreInventory> {
    return {
      datacenters: [{ vmFolder: 'group-v1' }],
      clusters: [{ hosts: ['host-1'], resourcePool: 'resgroup-1' }],
      hosts: [{ moref: 'host-1', name: 'esx1' }],
      datastores: [{ name: 'ds1', type: 'VMFS', datacenter: 'DC0', freeBytes: 2 ** 40, accessible: true, mountedOn: ['host-1'] }],
      networks: [{ moref: 'network-1', name: 'VM Network' }],
      vms: [...this.vmsByMoref.values()].map((v) => structuredClone(v.info)),
    };
  }

  async placementTargets(): Promise<PlacementTargets> {
    return { folders: [{ moref: 'group-v1', name: 'vm', datacenter: 'DC0', path: 'vm' }], resourcePools: [{ moref: 'resgroup-1', name: 'Resources', hosts: ['host-1'] }] };
  }

  async vmPlacement(): Promise<{ folder?: string; resourcePool?: string; host?: string }> {
    return { folder: 'group-v1', resourcePool: 'resgroup-1', host: 'host-1' };
  }

  async vm(moref: string): Promise<RestoreVmInfo> {
    return structuredClone(this.get(moref).info);
  }

  async vms(): Promise<{ moref: string; name: string }[]> {
    return [...this.vmsByMoref.values()].map((v) => ({ moref: v.info.moref, name: v.info.name }));
  }

  async createVm(hw: VmHardware, target: NewVm): Promise<string> {
    this.timeline.note(`restore.createVm.call ${target.name}`);
    if ([...this.vmsByMoref.values()].some((v) => v.info.name === target.name)) throw new Error(`DuplicateName: ${target.name}`);
    const moref = `vm-${this.next++}`;
    const disks: HardwareDisk[] = hw.disks.map((d, i) => {
      const fileName = `[${target.datastore}] ${target.name}/${target.name}${i === 0 ? '' : `_${i}`}.vmdk`;
      this.files.set(FakeRestorePort.fileKey(fileName), Buffer.alloc(d.capacityBytes));
      return { ...d, key: 2000 + i, fileName };
    });
    this.addVm({ moref, name: target.name, powerState: 'poweredOff', template: false, vmPathName: `[${target.datastore}] ${target.name}/${target.name}.vmx`, datastores: [target.datastore], disks }, target.restoreId);
    this.timeline.note(`restore.createVm ${moref}`);
    return moref;
  }

  async restoreIdOf(moref: string): Promise<string | undefined> {
    return this.get(moref).marker;
  }

  async destroyRestored(moref: string, restoreId: string): Promise<void> {
    const vm = this.get(moref);
    if (vm.marker !== restoreId) throw new Error(`refused: ${moref} does not carry restore marker ${restoreId}`);
    const inUse = [...this.attached.values()].filter((a) => vm.info.disks.some((d) => d.fileName === a.fileName));
    if (inUse.length > 0) {
      this.violations.push(`destroyRestored ${moref} while its disks are attached to ${inUse.map((a) => a.vm).join(', ')}`);
      throw new Error(`FileLocked: a disk of ${moref} is attached elsewhere`);
    }
    for (const d of vm.info.disks) this.files.delete(FakeRestorePort.fileKey(d.fileName));
    this.vmsByMoref.delete(moref);
    this.destroyed.push({ moref, name: vm.info.name, restoreId });
    this.timeline.note(`restore.destroyRestored ${moref}`);
  }

  async powerOn(moref: string): Promise<void> {
    this.get(moref).info.powerState = 'poweredOn';
  }

  async powerOff(moref: string): Promise<void> {
    this.get(moref).info.powerState = 'poweredOff';
  }

  async rename(moref: string, name: string): Promise<void> {
    this.get(moref).info.name = name;
  }

  async freeDiskSlot(vmMoref: string): Promise<{ controllerKey: number; unitNumber: number; diskKeys: number[] }> {
    const vm = this.get(vmMoref);
    const used = new Set(vm.info.disks.map((d) => d.unitNumber));
    let unit = 0;
    while (used.has(unit) || unit === 7) unit++;
    return { controllerKey: 1000, unitNumber: unit, diskKeys: vm.info.disks.map((d) => d.key) };
  }

  async createDisk(vmMoref: string, disk: { controllerKey: number; unitNumber: number; fileName: string; capacityBytes: number }): Promise<void> {
    const vm = this.get(vmMoref);
    const key = 2000 + vm.info.disks.length + this.next++;
    this.files.set(FakeRestorePort.fileKey(disk.fileName), Buffer.alloc(disk.capacityBytes));
    vm.info.disks.push({ key, controllerKey: disk.controllerKey, controller: 'pvscsi', busNumber: 0, unitNumber: disk.unitNumber, capacityBytes: disk.capacityBytes, fileName: disk.fileName });
    this.timeline.note(`restore.createDisk ${vmMoref} ${key}`);
  }

  async attachForWrite(vmMoref: string, fileName: string): Promise<{ key: number; uuid?: string }> {
    this.timeline.note(`restore.attachForWrite.call ${fileName}`);
    this.get(vmMoref);
    this.diskBytes(fileName);
    const key = 3000 + this.next++;
    const uuid = `6000C29-write-${key}`;
    this.attached.set(uuid, { vm: vmMoref, key, fileName });
    this.timeline.note(`restore.attachForWrite ${key}`);
    return { key, uuid };
  }

  async detachDisk(vmMoref: string, deviceKey: number, expectFileName: string): Promise<void> {
    this.timeline.note(`restore.detachDisk.call ${vmMoref} ${deviceKey}`);
    const hot = [...this.attached].find(([, a]) => a.vm === vmMoref && a.key === deviceKey);
    if (hot) {
      if (hot[1].fileName !== expectFileName) throw new Error(`refused: device ${deviceKey} is ${hot[1].fileName}, not ${expectFileName}`);
      this.attached.delete(hot[0]);
    } else {
      const vm = this.get(vmMoref);
      const i = vm.info.disks.findIndex((d) => d.key === deviceKey);
      if (i < 0) throw new Error(`InvalidDeviceSpec: no device ${deviceKey} on ${vmMoref}`);
      if (vm.info.disks[i]!.fileName !== expectFileName) throw new Error(`refused: device ${deviceKey} is ${vm.info.disks[i]!.fileName}, not ${expectFileName}`);
      vm.info.disks.splice(i, 1); // detached; the file stays on the datastore
    }
    this.timeline.note(`restore.detachDisk ${vmMoref} ${deviceKey}`);
  }

  async putFile(file: DatastoreFile, body: Readable, size: number): Promise<void> {
    const key = `${file.datastore}/${file.path}`;
    const dest = this.files.get(key);
    if (!dest) throw new Error(`FileNotFound: ${key}`);
    if (dest.length !== size) throw new Error(`PUT of ${size} bytes into ${key} of ${dest.length}`);
    const fault = this.writeFault('network', key);
    let pos = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (fault && pos + chunk.length > fault.afterBytes) {
        body.destroy();
        throw new Error(fault.message);
      }
      chunk.copy(dest, pos);
      pos += chunk.length;
    }
    if (pos !== size) throw new Error(`PUT of ${key}: body had ${pos} bytes, announced ${size}`);
    this.timeline.note(`restore.putFile ${key}`);
  }

  async readFileRange(file: DatastoreFile, offset: number, length: number, into: Buffer): Promise<Buffer> {
    const src = this.files.get(`${file.datastore}/${file.path}`);
    if (!src) throw new Error(`FileNotFound: ${file.path}`);
    src.copy(into, 0, offset, offset + length);
    return into.subarray(0, length);
  }
}

/** A FAKE of the Transporter's block devices for restores: a hot-added disk opened for writing is its file's bytes. */
export class FakeRestoreDevices implements RestoreDevices {
  readonly opened: { uuid: string; closed: boolean; bytesWritten: number }[] = [];
  constructor(
    private readonly port: FakeRestorePort,
    private readonly timeline: Timeline,
  ) {}

  async canUseBlockDevices(): Promise<boolean> {
    return true;
  }

  async openHotAddedForWrite(diskUuid: string, capacity: number): Promise<HotAddedDiskWriter> {
    const a = this.port.attached.get(diskUuid);
    if (!a) throw new Error(`the hot-added disk ${diskUuid} did not appear`);
    const bytes = this.port.diskBytes(a.fileName);
    if (bytes.length < capacity) throw new Error(`device has ${bytes.length} bytes, the disk ${capacity}`);
    const fault = this.port.writeFault('hotadd', a.fileName);
    const state = { uuid: diskUuid, closed: false, bytesWritten: 0 };
    this.opened.push(state);
    const port = this.port;
    const live = () => {
      if (state.closed) throw new Error('write after close');
      if (!port.attached.has(diskUuid)) throw new Error(`device of ${diskUuid} is gone`);
    };
    return {
      device: `/dev/fake-w${a.key}`,
      capacity,
      async write(offset, data) {
        live();
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (fault && state.bytesWritten + data.length > fault.afterBytes) throw new Error(fault.message);
        data.copy(bytes, offset);
        state.bytesWritten += data.length;
      },
      async flush() {
        live();
      },
      async read(offset, length, into) {
        live();
        const out = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
        bytes.copy(out, 0, offset, offset + length);
        return out;
      },
      close: async () => {
        state.closed = true;
        this.timeline.note(`restoreDevices.close ${diskUuid}`);
      },
    };
  }

  async waitGone(diskUuid: string): Promise<void> {
    if (this.port.attached.has(diskUuid)) throw new Error(`${diskUuid} is still present`);
    this.timeline.note(`restoreDevices.waitGone ${diskUuid}`);
  }
}

/** A restore point of VM "app01" (moref vm-src, gone from the inventory) with hardware and two disks, written directly. */
export async function restorePointWithHardware(repo: Repository, disks: { key: number; bytes: Buffer }[]): Promise<{ ref: { vmId: string; id: string }; hardware: VmHardware }> {
  const hardware: VmHardware = {
    controllers: [{ key: 1000, kind: 'pvscsi', busNumber: 0 }],
    disks: disks.map((d, i) => ({ key: d.key, label: `Hard disk ${i + 1}`, controllerKey: 1000, controller: 'pvscsi', busNumber: 0, unitNumber: i, capacityBytes: d.bytes.length, fileName: `[ds1] app01/app01${i ? `_${i}` : ''}.vmdk` })),
    nics: [{ networkName: 'VM Network' }],
  };
  const w = await RestorePointWriter.open(repo, { vmId: 'uuid-src', vm: { moref: 'vm-src', name: 'app01', hardware } });
  for (const d of disks) {
    const dw = await w.openDisk({ key: String(d.key), capacity: d.bytes.length, mode: 'full', fullImageSha256: true });
    await dw.write(0, d.bytes);
  }
  const m = await w.commit();
  return { ref: { vmId: m.vmId, id: m.id }, hardware };
}
