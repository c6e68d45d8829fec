/**
 * The appliance VM's hardware and its OVA: one streamOptimized VMDK (written
 * by @vaultline/vmdk's writer from the raw image, reading only its allocated
 * ranges), the OVF descriptor (@vaultline/vmdk's ovfDescriptor) and the
 * classic package layout: descriptor, manifest, disk — each entry's size is
 * known (the VMDK is a file first), so any importer reads it.
 *
 * Hardware for HotAdd (the Transporter runs in this VM): the system disk on a
 * ParaVirtual SCSI controller (bus 0), three more empty PVSCSI controllers so
 * hot-added disks never need a new controller (adding one may stun the VM),
 * vmxnet3, and disk.EnableUUID=TRUE so the guest sees every disk's UUID
 * (/dev/disk/by-id/wwn-0x6000c29…) to find the hot-added ones.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { ovfDescriptor, streamOptimizedChunks, tarEnd, tarHeader, tarPadding, type ByteRange, type DiskSource, type OvfHardware } from '@vaultline/vmdk';
import { run } from './exec.ts';

export const APPLIANCE_HW = {
  numCpu: 4,
  numCoresPerSocket: 2,
  memoryMiB: 8192,
  virtualSystemType: 'vmx-13',
  guestId: 'debian10_64Guest',
  guestFullName: 'Debian GNU/Linux 12 (64-bit)',
} as const;

export const APPLIANCE_EXTRA_CONFIG: Record<string, string> = {
  // Disk UUIDs visible in the guest: how the Transporter finds a hot-added disk.
  'disk.EnableUUID': 'TRUE',
};

export function applianceHardware(capacityBytes: number): OvfHardware {
  return {
    name: 'Vaultline',
    guestId: APPLIANCE_HW.guestId,
    guestFullName: APPLIANCE_HW.guestFullName,
    numCpu: APPLIANCE_HW.numCpu,
    numCoresPerSocket: APPLIANCE_HW.numCoresPerSocket,
    memoryMiB: APPLIANCE_HW.memoryMiB,
    firmware: 'bios',
    controllers: [0, 1, 2, 3].map((bus) => ({ key: 1000 + bus, kind: 'pvscsi' as const, busNumber: bus })),
    disks: [{ key: 2000, label: 'System disk', controllerKey: 1000, unitNumber: 0, capacityBytes }],
    nics: [{ key: 4000, type: 'VirtualVmxnet3', label: 'Network adapter 1', networkName: 'VM Network' }],
  };
}

/** Allocated (data-holding) ranges of a raw image, as qemu-img map reports them. */
export async function allocatedRanges(rawFile: string): Promise<ByteRange[]> {
  const { stdout } = await run('qemu-img', ['map', '--output=json', '-f', 'raw', rawFile]);
  const entries = JSON.parse(stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
  const out: ByteRange[] = [];
  for (const e of entries) {
    if (!e.data) continue;
    const last = out.at(-1);
    if (last && last.offset + last.length === e.start) last.length += e.length;
    else out.push({ offset: e.start, length: e.length });
  }
  return out;
}

/** Writes `rawFile` as a streamOptimized VMDK; returns its size and SHA-256. */
export async function writeVmdk(rawFile: string, vmdkFile: string, opts: { fileName: string }): Promise<{ size: number; sha256: string; populated: number }> {
  const capacity = (await stat(rawFile)).size;
  const ranges = await allocatedRanges(rawFile);
  const fh = await open(rawFile, 'r');
  const source: DiskSource = {
    capacity,
    read: async (offset, length) => {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf;
    },
    allocatedExtents: async function* () {
      yield* ranges;
    },
  };
  const tmp = `${vmdkFile}.tmp`;
  const hash = createHash('sha256');
  const stats = { grains: 0 };
  let size = 0;
  try {
    const out = createWriteStream(tmp);
    const cid = randomBytes(4).toString('hex');
    for await (const chunk of streamOptimizedChunks(source, { adapterType: 'pvscsi', fileName: opts.fileName, uuid: randomUUID(), cid, longContentId: randomBytes(12).toString('hex') + cid, stats })) {
      hash.update(chunk);
      size += chunk.length;
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    out.end();
    await finished(out);
    await rename(tmp, vmdkFile);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await fh.close();
  }
  return { size, sha256: hash.digest('hex'), populated: Math.min(capacity, stats.grains * 64 * 1024) };
}

export interface ApplianceOva {
  file: string;
  descriptor: string;
  size: number;
}

/** The .ova: descriptor, manifest, disk (ustar; names and sizes known up front). */
export async function writeApplianceOva(opts: {
  vmdkFile: string;
  vmdk: { size: number; sha256: string; populated: number };
  capacity: number;
  version: string;
  baseName: string;
  outFile: string;
}): Promise<ApplianceOva> {
  const hw = applianceHardware(opts.capacity);
  const diskName = `${opts.baseName}-disk1.vmdk`;
  const descriptor = ovfDescriptor(hw, [{ diskKey: 2000, href: diskName, capacity: opts.capacity, size: opts.vmdk.size, populatedSize: opts.vmdk.populated }], {
    annotation: `Vaultline ${opts.version}: agentless backup for VMware vSphere. After power-on, the VM console shows the web console's address and the one-time admin password.`,
    virtualSystemType: APPLIANCE_HW.virtualSystemType,
    extraConfig: APPLIANCE_EXTRA_CONFIG,
    product: { product: 'Vaultline backup appliance', vendor: 'Vaultline', version: opts.version, fullVersion: opts.version },
  });
  const ovfName = `${opts.baseName}.ovf`;
  const mfName = `${opts.baseName}.mf`;
  const desc = Buffer.from(descriptor, 'utf8');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const mf = Buffer.from(`SHA256(${ovfName})= ${sha(desc)}\nSHA256(${diskName})= ${opts.vmdk.sha256}\n`, 'ascii');
  const mtime = new Date();
  const tmp = `${opts.outFile}.tmp`;
  const out = createWriteStream(tmp);
  const put = async (b: Buffer) => {
    if (!out.write(b)) await new Promise<void>((r) => out.once('drain', () => r()));
  };
  try {
    for (const [name, data] of [
      [ovfName, desc],
      [mfName, mf],
    ] as const) {
      await put(tarHeader({ name, size: data.length, mtime }));
      await put(data);
      await put(tarPadding(data.length));
    }
    await put(tarHeader({ name: diskName, size: opts.vmdk.size, mtime }));
    let seen = 0;
    for await (const chunk of createReadStream(opts.vmdkFile)) {
      seen += (chunk as Buffer).length;
      await put(chunk as Buffer);
    }
    if (seen !== opts.vmdk.size) throw new Error(`${opts.vmdkFile} is ${seen} bytes, expected ${opts.vmdk.size}`);
    await put(tarPadding(seen));
    await put(tarEnd());
    out.end();
    await finished(out);
    await rename(tmp, opts.outFile);
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
  return { file: opts.outFile, descriptor, size: (await stat(opts.outFile)).size };
}

export const ovaBase = (version: string) => `vaultline-${version}`;
export const vmdkNameFor = (version: string) => `${ovaBase(version)}-disk1.vmdk`;
