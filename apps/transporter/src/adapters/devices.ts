/**
 * Local block devices for Direct SAN and HotAdd. Read-only discipline:
 * - backups open devices O_RDONLY, never O_RDWR, and a LUN is marked read-only
 *   with `blockdev --setro` before anything touches it; the one exception is a
 *   restore, which opens O_RDWR only the new, empty disk it created and
 *   attached in a persistent mode (openHotAddedForWrite), never a LUN;
 * - a LUN's filesystem is mounted read-only without journal replay (`ro,noload`
 *   for the lab's ext4 stand-in; VMFS through the read-only FUSE drivers);
 * - stale page cache is dropped (`blockdev --flushbufs`) before reading, since
 *   the array (or the lab) changes the LUN behind our back.
 * Discovery looks in a by-id folder (/dev/disk/by-id on a real Transporter,
 * the lab's folder in tests), so the same code runs in both.
 * LUN filesystems are mounted under <data dir>/mnt (mountDir); undoing a
 * journaled mount touches only a mount point under it, a device the LUN's
 * by-id link resolves to (journal-trust.ts) and a loop device that is over
 * that device at the recorded offset.
 * A real LUN is partitioned (VMFS in partition 1 of a GPT, or an MBR entry
 * of type 0xFB): the partition is opened through its own device node (the
 * LUN's `-partN` by-id link, as udev makes it) or else through a read-only
 * loop device over the partition's bytes.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, realpath, rmdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { deviceMatching, DEVICE_PATTERNS, JournalTrustError, pathUnder } from '@vaultline/appliance';
import type { Logger } from '@vaultline/logger';
import { alignedBuffer } from '@vaultline/repository';
import { localFiles, type FileOpener } from '@vaultline/vmdk';
import { openDiskByDescriptor } from './datastore-disk.ts';
import type { HotAddedDiskWriter, LocalDevices, RestoreDevices, SourceReader } from '@vaultline/core';
import { chooseVmfsPartition, formatOffset, PartitionTableError, readPartitionTable, type Partition, type PartitionTable } from './partitions.ts';

const run = promisify(execFile);

export class DeviceError extends Error {
  override name = 'DeviceError';
}

/** "6000C29a-bc..." / "60 00 c2 9a ..." / "naa.6000c29a..." → "6000c29abc..." */
export function normaliseId(id: string): string {
  return id.toLowerCase().replace(/^(naa\.|wwn-0x|scsi-3)/, '').replace(/[^0-9a-f]/g, '');
}

async function byIdLinks(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const m = /^(?:wwn-0x|naa\.|scsi-3)([0-9a-fA-F]+)$/.exec(name);
    if (!m) continue;
    try {
      out.set(m[1]!.toLowerCase(), await realpath(path.join(dir, name)));
    } catch {
      /* dangling link: device already gone */
    }
  }
  return out;
}

/** O_DIRECT offsets and lengths are multiples of this (the largest logical block size in use). */
const DIRECT_ALIGN = 4096;

async function isBlockDevice(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isBlockDevice();
  } catch {
    return false;
  }
}

async function deviceSize(device: string): Promise<number> {
  const { stdout } = await run('blockdev', ['--getsize64', device]);
  return Number(stdout.trim());
}

/**
 * A read-only positional reader over a block device or file. With `direct`, aligned reads bypass the page
 * cache (O_DIRECT, as `dd iflag=direct` does): a backup reads each byte once, and filling page-cache pages
 * costs more than the read itself on these hosts. A read O_DIRECT cannot take (unaligned, or a filesystem
 * that refuses it) goes through the page cache instead.
 */
export class ReadOnlyFileReader implements SourceReader {
  readonly readAhead: { segmentBytes: number; depth: number };

  private constructor(
    private readonly fh: FileHandle,
    private readonly direct: FileHandle | null,
    readonly capacity: number,
    readonly path: string,
  ) {
    // Direct reads wait on the device, not the cache: larger requests, as many in flight as libuv runs at once.
    this.readAhead = direct ? { segmentBytes: 4 * 1024 * 1024, depth: 4 } : { segmentBytes: 1024 * 1024, depth: 4 };
  }

  static async open(p: string, capacity: number, opts: { direct?: boolean } = {}): Promise<ReadOnlyFileReader> {
    const fh = await open(p, constants.O_RDONLY);
    let direct: FileHandle | null = null;
    if (opts.direct && constants.O_DIRECT) direct = await open(p, constants.O_RDONLY | constants.O_DIRECT).catch(() => null);
    return new ReadOnlyFileReader(fh, direct, capacity, p);
  }

  /** Buffers fit for direct reads (page-aligned). */
  allocate(bytes: number): Buffer {
    return this.direct ? alignedBuffer(bytes) : Buffer.allocUnsafe(bytes);
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (offset < 0 || offset + length > this.capacity) throw new DeviceError(`read [${offset}, +${length}) outside ${this.path} (${this.capacity} bytes)`);
    const out = into && into.length >= length ? into.subarray(0, length) : this.allocate(length);
    if (this.direct && offset % DIRECT_ALIGN === 0 && length % DIRECT_ALIGN === 0) {
      try {
        return await this.readWith(this.direct, out, offset);
      } catch (err) {
        // EINVAL: this buffer or this filesystem does not do O_DIRECT; read it through the cache below.
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      }
    }
    return this.readWith(this.fh, out, offset);
  }

  private async readWith(fh: FileHandle, out: Buffer, offset: number): Promise<Buffer> {
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await fh.read(out, done, out.length - done, offset + done);
      if (bytesRead === 0) {
        // Past the end of a sparse or short file: the disk reads as zeros there.
        out.fill(0, done);
        break;
      }
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    try {
      await this.direct?.close();
    } finally {
      await this.fh.close();
    }
  }
}

/**
 * Files of a datastore mounted at `mountPoint` for the VMDK readers. Every path must stay inside the mount:
 * a descriptor names its extent and parent, and a crafted one ("../../dev/sda") must never make this root
 * process back up a file of its own host. ESXi's absolute paths name the datastore (/vmfs/volumes/<name>/…):
 * this one maps to the mount; another datastore cannot be reached from here (the network can).
 */
function mountedFiles(mountPoint: string, datastore: string): FileOpener & { confine(p: string): Promise<string> } {
  const confine = async (p: string): Promise<string> => {
    let local = p;
    const vmfs = /^\/vmfs\/volumes\/([^/]+)\/(.+)$/.exec(p);
    if (vmfs) {
      if (vmfs[1] !== datastore) throw new DeviceError(`${p} is on another datastore than ${datastore}; a chain across datastores is read over the network`);
      local = path.join(mountPoint, vmfs[2]!);
    }
    // Resolved with symlinks followed; a missing file stays missing (ENOENT when it is opened).
    return pathUnder(local, mountPoint, 'disk file').catch((err: unknown) => {
      throw new DeviceError(`${p} lies outside the datastore; refused (${(err as Error).message})`);
    });
  };
  return {
    confine,
    open: async (p) => localFiles.open(await confine(p)),
  };
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > end) throw new DeviceError(`${what} (waited ${Math.round(timeoutMs / 1000)} s)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface SanCleanup {
  kind: 'lun_mount';
  mountPoint: string;
  device: string;
  /** The LUN, so an undo can check that `device` still is it. */
  naa: string;
  /** We set the device read-only and must clear the flag afterwards. */
  restoreRw?: boolean;
  /** The read-only loop device we set up over the VMFS partition of `device` (bytes [offset, offset + sizeLimit)); detached on undo. */
  loop?: { device: string; offset: number; sizeLimit: number };
}

/** What `device` (a LUN or one of its partitions) holds: 'ext4' (the lab's LUN stand-in), 'vmfs5'/'vmfs6' (by the LVM volume version), or 'unknown'. */
async function fsType(device: string, at = 0): Promise<string> {
  const head = Buffer.alloc(4096);
  const fh = await open(device, constants.O_RDONLY);
  try {
    await fh.read(head, 0, head.length, at);
    // ext2/3/4: magic 0xEF53 at byte 1080.
    if (head.readUInt16LE(1080) === 0xef53) return 'ext4';
  } finally {
    await fh.close();
  }
  const vmfs = Buffer.alloc(8);
  const fh2 = await open(device, constants.O_RDONLY);
  try {
    // VMFS volume header at 1 MiB: magic 0xc001d00d, then the major version (5 = VMFS5, 6 = VMFS6).
    await fh2.read(vmfs, 0, 8, at + 0x100000);
    if (vmfs.readUInt32LE(0) === 0xc001d00d) return vmfs.readUInt32LE(4) >= 6 ? 'vmfs6' : 'vmfs5';
  } finally {
    await fh2.close();
  }
  return 'unknown';
}

async function undoMount(c: SanCleanup): Promise<void> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  if (mounts.split('\n').some((l) => l.split(' ')[1] === c.mountPoint)) {
    await run('umount', [c.mountPoint]).catch(async () => run('umount', ['-l', c.mountPoint]));
  }
  await rmdir(c.mountPoint).catch(() => undefined);
  // Still held by the exiting FUSE driver, the loop device is detached when it lets go (autoclear).
  if (c.loop && (await loopState(c.loop.device))) await run('losetup', ['-d', c.loop.device]);
  if (c.restoreRw) await run('blockdev', ['--setrw', c.device]).catch(() => undefined);
}

/** What a loop device is set up over (from sysfs), or null when it is not set up. */
async function loopState(loop: string): Promise<{ backingFile: string; offset: number; sizeLimit: number } | null> {
  const sys = `/sys/block/${path.basename(loop)}/loop`;
  let backingFile: string;
  try {
    backingFile = (await readFile(`${sys}/backing_file`, 'utf8')).trim();
  } catch {
    return null;
  }
  const num = async (f: string) => Number((await readFile(`${sys}/${f}`, 'utf8')).trim());
  return { backingFile, offset: await num('offset'), sizeLimit: await num('sizelimit') };
}

async function sameBlockDevice(a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.isBlockDevice() && sb.isBlockDevice() && sa.rdev === sb.rdev;
  } catch {
    return false;
  }
}

/** The LUN's partition table (null: none), read from its first and last sectors. */
async function partitionTableOf(device: string, size: number): Promise<PartitionTable | null> {
  const ss = Number((await run('blockdev', ['--getss', device])).stdout.trim()) || 512;
  const fh = await open(device, constants.O_RDONLY);
  try {
    return await readPartitionTable(
      {
        size,
        read: async (offset, length) => {
          const b = Buffer.alloc(length);
          const { bytesRead } = await fh.read(b, 0, length, offset);
          return b.subarray(0, bytesRead);
        },
      },
      { mbrSectorSize: ss },
    );
  } finally {
    await fh.close();
  }
}

/**
 * Where on the LUN the datastore is: its partition table (null: none) and the VMFS partition vSphere
 * reports, or the table's one VMFS partition (null: the whole, unpartitioned device). A table that says
 * otherwise is a DeviceError naming the LUN.
 */
async function datastoreRegion(naa: string, device: string, partition: number): Promise<{ table: PartitionTable | null; part: Partition | null }> {
  try {
    const table = await partitionTableOf(device, await deviceSize(device));
    return { table, part: chooseVmfsPartition(table, partition) };
  } catch (err) {
    if (err instanceof PartitionTableError) throw new DeviceError(`LUN ${naa} (${device}): ${err.message}`);
    throw err;
  }
}

/**
 * The device node of partition `p` of the LUN, from its `-partN` by-id link
 * (as udev makes: wwn-0x<naa>-part1 → /dev/sdb1), when the kernel's idea of
 * that partition (sysfs: parent disk, start, size) is the table's. null
 * otherwise: the caller sets up a loop device over the partition's bytes.
 */
async function partitionNode(byIdDir: string, naa: string, lunDevice: string, p: Partition, log: Logger): Promise<string | null> {
  const want = normaliseId(naa);
  for (const name of await readdir(byIdDir).catch(() => [] as string[])) {
    const m = /^(?:wwn-0x|naa\.|scsi-3)([0-9a-fA-F]+)-part(\d+)$/.exec(name);
    if (!m || m[1]!.toLowerCase() !== want || Number(m[2]) !== p.number) continue;
    const node = await realpath(path.join(byIdDir, name)).catch(() => null);
    if (!node || !(await isBlockDevice(node))) continue;
    const sys = `/sys/class/block/${path.basename(node)}`;
    try {
      const parent = path.basename(await realpath(`${sys}/..`));
      const start = Number((await readFile(`${sys}/start`, 'utf8')).trim()) * 512;
      const size = Number((await readFile(`${sys}/size`, 'utf8')).trim()) * 512;
      if (parent === path.basename(lunDevice) && start === p.start && size === p.size) return node;
      log.warn({ link: name, node, parent, start, size, table: { start: p.start, size: p.size } }, 'the partition link does not match the LUN\'s partition table; reading the partition through a loop device');
    } catch {
      /* not a kernel partition of a disk (a device-mapper node): read through a loop device */
    }
  }
  return null;
}

/** A read-write positional writer over a hot-added disk (restores only). */
class HotAddedWriter implements HotAddedDiskWriter {
  constructor(
    private readonly fh: FileHandle,
    readonly capacity: number,
    readonly device: string,
  ) {}

  async write(offset: number, data: Buffer): Promise<void> {
    if (offset < 0 || offset + data.length > this.capacity) throw new DeviceError(`write [${offset}, +${data.length}) outside ${this.device} (${this.capacity} bytes)`);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
      if (bytesWritten <= 0) throw new DeviceError(`write to ${this.device} at ${offset + done} made no progress`);
      done += bytesWritten;
    }
  }

  async flush(): Promise<void> {
    await this.fh.sync();
    await run('blockdev', ['--flushbufs', this.device]);
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (offset < 0 || offset + length > this.capacity) throw new DeviceError(`read [${offset}, +${length}) outside ${this.device} (${this.capacity} bytes)`);
    const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) throw new DeviceError(`short read of ${this.device} at ${offset + done}`);
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/**
 * A journaled LUN mount, checked before it is undone: the mount point must lie
 * under `mountDir`; the device (only touched to clear the read-only flag we
 * set) must be what the LUN's by-id link resolves to now; a loop device to
 * detach must be a /dev/loopN that is, now, a loop over that LUN device at
 * the recorded offset and size (one no longer set up is left alone).
 * JournalTrustError otherwise, before anything is done.
 */
async function trustedSanCleanup(c: Record<string, unknown>, mountDir: string, byIdDir: string): Promise<SanCleanup> {
  const mountPoint = await pathUnder(c.mountPoint, mountDir, 'LUN mount point');
  let lun: string | null = null;
  const trustedLun = async () => {
    if (lun) return lun;
    const device = await deviceMatching(c.device, DEVICE_PATTERNS.scsi, 'LUN device');
    const naa = typeof c.naa === 'string' ? normaliseId(c.naa) : '';
    if (!naa) throw new JournalTrustError(`LUN device ${device}: the row names no LUN`);
    // A LUN no longer visible here cannot be told from a device that never was one: the operator looks.
    const current = (await byIdLinks(byIdDir)).get(naa);
    if (current !== device) throw new JournalTrustError(`LUN device ${device} is not LUN ${naa} (${current ? `that is ${current}` : 'not visible here'})`);
    return (lun = device);
  };
  let loop: SanCleanup['loop'];
  if (c.loop !== undefined) {
    const l = (c.loop ?? {}) as Record<string, unknown>;
    const device = await deviceMatching(l.device, DEVICE_PATTERNS.loop, 'partition loop device');
    const offset = l.offset;
    const sizeLimit = l.sizeLimit;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(sizeLimit) || (offset as number) < 0 || (sizeLimit as number) <= 0) {
      throw new JournalTrustError(`partition loop device ${device}: offset ${JSON.stringify(offset)} and size ${JSON.stringify(sizeLimit)} are not byte counts`);
    }
    const now = await loopState(device);
    if (now) {
      const over = await trustedLun();
      const backing = now.backingFile.replace(/ \(deleted\)$/, '');
      if (backing !== now.backingFile || !(await sameBlockDevice(backing, over)) || now.offset !== offset || now.sizeLimit !== sizeLimit) {
        throw new JournalTrustError(`loop device ${device} is over ${now.backingFile} at byte ${now.offset} (${now.sizeLimit} bytes), not the partition of ${over} at byte ${offset as number} (${sizeLimit as number} bytes) Vaultline set up`);
      }
      loop = { device, offset: offset as number, sizeLimit: sizeLimit as number };
    }
  }
  const device = c.restoreRw ? await trustedLun() : (lun ?? '');
  return { kind: 'lun_mount', mountPoint, device, naa: String(c.naa ?? ''), ...(c.restoreRw ? { restoreRw: true } : {}), ...(loop ? { loop } : {}) };
}

export function createLocalDevices(opts: { byIdDir: string; mountDir: string; log: Logger; appearTimeoutMs?: number }): LocalDevices & RestoreDevices {
  const timeout = opts.appearTimeoutMs ?? 60_000;
  const realById = path.resolve(opts.byIdDir) === '/dev/disk/by-id';

  const rescan = async () => {
    if (!realById) return;
    // A real proxy VM needs a SCSI rescan to see a hot-added disk.
    for (const host of await readdir('/sys/class/scsi_host').catch(() => [] as string[])) {
      await import('node:fs/promises').then((fs) => fs.writeFile(`/sys/class/scsi_host/${host}/scan`, '- - -')).catch(() => undefined);
    }
  };

  /**
   * Mounts the LUN's datastore read-only (the LUN marked read-only, a loop device over the partition when the
   * kernel has no node for it): `record` is given the cleanup descriptor before anything is mounted, to journal
   * it. Undone (everything it did) when it fails; the caller undoes it with undoMount otherwise.
   */
  const mountVolume = async (naa: string, device: string, partition: number, record?: (cleanup: unknown) => Promise<void>, region?: Awaited<ReturnType<typeof datastoreRegion>>) => {
    // Mark the LUN read-only for as long as we use it. The flag outlives the
    // device's user (even a loop device's detach), so it is put back as found.
    const wasRo = (await run('blockdev', ['--getro', device])).stdout.trim() === '1';
    if (!wasRo) await run('blockdev', ['--setro', device]);
    await mkdir(opts.mountDir, { recursive: true, mode: 0o700 });
    const mountPoint = await mkdtemp(path.join(opts.mountDir, 'lun-'));
    const cleanup: SanCleanup = { kind: 'lun_mount', mountPoint, device, naa, restoreRw: !wasRo };
    try {
      await run('blockdev', ['--flushbufs', device]);
      // Which part of the LUN holds the datastore: vSphere's partition, the one VMFS partition, or the whole
      // (unpartitioned) device; read here unless the caller just read it (after a flush, as here).
      const { table, part } = region ?? (await datastoreRegion(naa, device, partition));
      for (const note of table?.notes ?? []) opts.log.warn({ naa, device }, `LUN ${naa}: ${note}`);
      let volume = device;
      if (part) {
        const node = await partitionNode(opts.byIdDir, naa, device, part, opts.log);
        if (node) {
          volume = node;
        } else {
          const { stdout } = await run('losetup', ['-f', '--show', '-r', '-o', String(part.start), '--sizelimit', String(part.size), device]);
          const loop = stdout.trim();
          if (!DEVICE_PATTERNS.loop.test(loop)) throw new DeviceError(`losetup answered ${JSON.stringify(loop)} instead of a loop device`);
          cleanup.loop = { device: loop, offset: part.start, sizeLimit: part.size };
          volume = loop;
        }
      }
      // Journaled before the mount: a crash from here on leaves a row that undoes the loop device and the mount.
      await record?.(cleanup);
      const type = await fsType(volume);
      const scheme = table?.scheme.toUpperCase() ?? '';
      const where = part ? `partition ${part.number} of LUN ${naa} (${device}, ${scheme} at ${formatOffset(part.start)})` : `LUN ${naa} (${device})`;
      if (type === 'ext4') {
        await run('mount', ['-t', 'ext4', '-o', 'ro,noload', volume, mountPoint]);
      } else if (type === 'vmfs5' || type === 'vmfs6') {
        // Debian's read-only VMFS drivers (vmfs-tools for VMFS5, vmfs6-tools for VMFS6), through FUSE.
        const driver = type === 'vmfs6' ? 'vmfs6-fuse' : 'vmfs-fuse';
        await run(driver, [volume, mountPoint]).catch((err: Error & { code?: string }) => {
          throw new DeviceError(err.code === 'ENOENT' ? `${driver} is not installed (apt-get install ${type === 'vmfs6' ? 'vmfs6-tools' : 'vmfs-tools'})` : `${driver} could not mount ${where}: ${err.message}`);
        });
      } else {
        throw new DeviceError(`${where} holds no filesystem Vaultline can read (not VMFS)`);
      }
      return { mountPoint, cleanup, type, volume, part, scheme };
    } catch (err) {
      await undoMount(cleanup).catch(() => undefined);
      throw err instanceof DeviceError ? err : new DeviceError(`cannot mount the datastore of LUN ${naa} (${device}): ${(err as Error).message}`);
    }
  };

  return {
    async canUseBlockDevices() {
      if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
      try {
        await run('blockdev', ['--version']);
        return true;
      } catch {
        return false;
      }
    },

    async findLun(naa) {
      const dev = (await byIdLinks(opts.byIdDir)).get(normaliseId(naa));
      return dev && (await isBlockDevice(dev)) ? dev : null;
    },

    async probeSan(naa, device, partition, record) {
      // A read-only look at the LUN first: its partition table, the filesystem where vSphere says the datastore
      // is, and the driver that would read it. The region is read once, after a flush, and mounted as read.
      await run('blockdev', ['--flushbufs', device]).catch(() => undefined);
      const region = await datastoreRegion(naa, device, partition).catch((err: unknown) => {
        throw err instanceof DeviceError ? err : new DeviceError(`LUN ${naa} (${device}) cannot be read: ${(err as Error).message}`);
      });
      const { table, part } = region;
      const type = await fsType(device, part?.start ?? 0).catch((err: Error) => {
        throw new DeviceError(`LUN ${naa} (${device}) cannot be read: ${err.message}`);
      });
      const where = part ? `partition ${part.number} of LUN ${naa} (${table!.scheme.toUpperCase()} at ${formatOffset(part.start)})` : `LUN ${naa}`;
      if (type === 'unknown') throw new DeviceError(`${where} holds no filesystem Vaultline can read (no VMFS header)`);
      if (type === 'vmfs5' || type === 'vmfs6') {
        const driver = type === 'vmfs6' ? 'vmfs6-fuse' : 'vmfs-fuse';
        const found = await Promise.any(['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map(async (d) => (await stat(path.join(d, driver))).isFile())).catch(() => false);
        if (!found) throw new DeviceError(`${where} is ${type.toUpperCase()}, but ${driver} is not installed (apt-get install ${type === 'vmfs6' ? 'vmfs6-tools' : 'vmfs-tools'})`);
      }
      // Then mount it read-only and list its root, as the copy will: a volume the driver cannot open is known
      // now, before the snapshot, not after. `record` journals the mount while it exists.
      const m = await mountVolume(naa, device, partition, record, region);
      try {
        await readdir(m.mountPoint);
      } catch (err) {
        throw new DeviceError(`${where} was mounted, but its files cannot be listed: ${(err as Error).message}`);
      } finally {
        await undoMount(m.cleanup).catch((err: unknown) => {
          throw Object.assign(new DeviceError(`${where}: undoing the preflight mount at ${m.cleanup.mountPoint} failed: ${(err as Error).message}`), { leftMounted: true });
        });
      }
      return `${where}, ${type === 'ext4' ? type : type.toUpperCase()}, mounted read-only and unmounted`;
    },

    async openSan(naa, device, partition, fileName, capacity, record) {
      const m = await mountVolume(naa, device, partition, record);
      const { mountPoint, cleanup, type, volume, part, scheme } = m;
      try {
        // The disk as its descriptor lays it out: its flat extent, or the snapshot chain it is a link of.
        const files = mountedFiles(mountPoint, /^\[([^\]]+)\]/.exec(fileName)?.[1] ?? '');
        const descriptor = path.join(mountPoint, fileName.replace(/^\[[^\]]+\]\s*/, ''));
        const reader = await openDiskByDescriptor(descriptor, capacity, files, async (extent) => ReadOnlyFileReader.open(await files.confine(extent), capacity, { direct: true }), {
          how: `from LUN ${naa}`,
          readAhead: { segmentBytes: 4 * 1024 * 1024, depth: 4 },
        });
        const fsName = type === 'ext4' ? type : type.toUpperCase();
        return {
          capacity,
          cleanup,
          // For the run log: "LUN naa.… partition 1 (GPT, VMFS6 at 1 MiB)".
          volume: part
            ? `LUN ${naa} partition ${part.number} (${scheme}, ${fsName} at ${formatOffset(part.start)}${cleanup.loop ? `, through ${volume}` : ''})`
            : `LUN ${naa} whole device (no partition table, ${fsName})`,
          describe: reader.describe,
          ...(reader.readAhead ? { readAhead: reader.readAhead } : {}),
          // Page-aligned buffers where the reader reads with O_DIRECT (without them every read fell back to the cache).
          ...(reader.allocate ? { allocate: (n: number) => reader.allocate!(n) } : {}),
          read: (o: number, l: number, into?: Buffer) => reader.read(o, l, into),
          close: async () => {
            await reader.close();
            await undoMount(cleanup);
          },
        };
      } catch (err) {
        await undoMount(cleanup).catch(() => undefined);
        throw err instanceof DeviceError ? err : new DeviceError(`cannot open ${fileName} on LUN ${naa}: ${(err as Error).message}`);
      }
    },

    async openHotAdded(diskUuid, capacity) {
      await rescan();
      const id = normaliseId(diskUuid);
      const device = await waitFor(`the hot-added disk ${diskUuid} did not appear in ${opts.byIdDir}`, timeout, async () => {
        const dev = (await byIdLinks(opts.byIdDir)).get(id);
        return dev && (await isBlockDevice(dev)) ? dev : null;
      });
      await run('blockdev', ['--flushbufs', device]).catch(() => undefined);
      const size = await deviceSize(device);
      if (size < capacity) throw new DeviceError(`device ${device} for disk ${diskUuid} has ${size} bytes, the disk ${capacity}`);
      const reader = await ReadOnlyFileReader.open(device, capacity, { direct: true });
      return Object.assign(reader, { device });
    },

    async openHotAddedForWrite(diskUuid, capacity) {
      await rescan();
      const id = normaliseId(diskUuid);
      const device = await waitFor(`the hot-added disk ${diskUuid} did not appear in ${opts.byIdDir}`, timeout, async () => {
        const dev = (await byIdLinks(opts.byIdDir)).get(id);
        return dev && (await isBlockDevice(dev)) ? dev : null;
      });
      const size = await deviceSize(device);
      if (size < capacity) throw new DeviceError(`device ${device} for disk ${diskUuid} has ${size} bytes, the disk ${capacity}`);
      if ((await run('blockdev', ['--getro', device])).stdout.trim() === '1') {
        throw new DeviceError(`device ${device} for disk ${diskUuid} is read-only (was the disk attached in a persistent mode?)`);
      }
      const fh = await open(device, constants.O_RDWR);
      return new HotAddedWriter(fh, capacity, device);
    },

    async waitGone(diskUuid) {
      const id = normaliseId(diskUuid);
      await waitFor(`the detached disk ${diskUuid} is still visible in ${opts.byIdDir}`, timeout, async () => ((await byIdLinks(opts.byIdDir)).has(id) ? null : true));
    },

    async undoSan(cleanup) {
      const c = cleanup as Record<string, unknown> | null;
      if (c?.kind === 'lun_mount') await undoMount(await trustedSanCleanup(c, opts.mountDir, opts.byIdDir));
    },
  };
}
