/**
 * The network transport reads a disk as its descriptor lays it out, over the lab's /folder: a flat disk from
 * the extent its descriptor names, a snapshot link (vmfsSparse, seSparse) as the composed chain, and anything
 * else refused with the layout named. Direct SAN does the same from the LUN's mounted filesystem (root),
 * and never reads a file outside it however a descriptor names it.
 *
 * The lab's own snapshots are complete images, so the chains here are written into its datastore with the
 * VMDK package's delta writers (the format ESXi writes, checked against qemu-img in packages/vmdk), on top of
 * a lab VM's disk. The expected bytes are composed here by applying each link's writes to the base, not by
 * the reader under test.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normaliseAreas, pieces, ReadAhead, readAheadFor, type SourceReader, type VmDisk } from '@vaultline/core';
import { createLogger } from '@vaultline/logger';
import { buildDeltaLink, openVmdkChain, writeDeltaLink, type DeltaFormat, type DeltaOp, type FileOpener } from '@vaultline/vmdk';
import { VSphereClient } from '@vaultline/vsphere';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from './fixture.ts';
import { datastoreFiles, openDiskByDescriptor } from '../src/adapters/datastore-disk.ts';
import { createLocalDevices } from '../src/adapters/devices.ts';
import { vspherePort } from '../src/adapters/vsphere-port.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const CAPACITY = 48 * MiB;

let lab: Lab;
let client: VSphereClient;
let port: ReturnType<typeof vspherePort>;
let dir: string;
let base: Buffer;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Reads the whole disk the way a backup does: through the read-ahead, in the writer's 256 KiB chunks. */
async function copy(reader: SourceReader): Promise<Buffer> {
  const out = Buffer.alloc(reader.capacity);
  const areas = [{ start: 0, length: reader.capacity }];
  const ahead = new ReadAhead(reader, areas, readAheadFor(reader));
  for (const p of pieces(areas, 4 * MiB)) {
    for (let at = p.start; at < p.start + p.length; at += 256 * KiB) await ahead.readInto(out.subarray(at, at + 256 * KiB), at);
  }
  return out;
}

/** Writes a link over `parent` (its file name and CID, its bytes `below`) and returns the composed bytes above it. */
async function link(format: DeltaFormat, name: string, parent: { file: string; cid: string }, below: Buffer, ops: DeltaOp[]) {
  const link = await buildDeltaLink({ format, capacity: CAPACITY, name, parentFileName: parent.file, parentCid: parent.cid, ops, parent: { read: async (o, l) => below.subarray(o, o + l) } });
  await writeDeltaLink(dir, link);
  const above = Buffer.from(below);
  for (const op of ops) {
    if ('data' in op) op.data.copy(above, op.offset);
    else above.fill(0, op.offset, op.offset + op.length);
  }
  return { file: link.descriptorFileName, cid: link.cid, bytes: above };
}

/** A disk of the VM as the backup sees it, its backing at `fileName` (chains here are written by hand, not by a snapshot). */
function diskAt(fileName: string, capacityBytes: number): VmDisk {
  return { key: 2000, label: 'Hard disk 1', capacityBytes, fileName, datastore: 'datastore1', controller: 'pvscsi', busNumber: 0, unitNumber: 0 };
}

beforeAll(async () => {
  lab = await startLab();
  client = await VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
  port = vspherePort(client, { nbdStreams: 4 });
  await lab.createVm({ name: 'chain01', disks: [{ capacityBytes: CAPACITY }] });
  await lab.guestWrite('chain01', 0, [
    { offset: 0, length: 3 * MiB, pattern: 'random', seed: 1 },
    { offset: 20 * MiB, length: 5 * MiB + 512, pattern: 'text', seed: 2 },
    { offset: 47 * MiB, length: MiB, pattern: 'random', seed: 3 },
  ]);
  dir = path.join(lab.datastores[0]!.path, 'chain01');
  base = fs.readFileSync(path.join(dir, 'chain01-flat.vmdk'));
  expect(base.length).toBe(CAPACITY);
});

afterAll(async () => {
  await client?.close();
  await lab?.stop();
});

describe('network reads of a disk as its descriptor lays it out', () => {
  it('a flat disk: the extent its descriptor names, bit-exact', async () => {
    const reader = await port.openNetworkReader(diskAt('[datastore1] chain01/chain01.vmdk', CAPACITY), 'snapshot-unused', 'nbdssl');
    expect(reader.describe).toBe('flat extent chain01-flat.vmdk through vCenter (vCenter does not say which host runs the VM)');
    expect(sha(await copy(reader))).toBe(sha(base));
    await reader.close();
  });

  for (const format of ['vmfsSparse', 'seSparse'] as const) {
    it(`a ${format} chain of two links: the composed disk, bit-exact, read over Range GETs`, async () => {
      const grain = format === 'seSparse' ? 4 * KiB : 512;
      const baseCid = /^CID=([0-9a-f]{8})$/m.exec(fs.readFileSync(path.join(dir, 'chain01.vmdk'), 'utf8'))![1]!;
      // Link 1: writes over data, over a hole, across the base's data/hole border, unaligned to grains.
      const one = await link(format, `${format}-a-000001`, { file: 'chain01.vmdk', cid: baseCid }, base, [
        { offset: MiB + 100, data: randomBytes(2 * MiB) },
        { offset: 10 * MiB, data: randomBytes(300 * KiB) },
        { offset: 25 * MiB - 7 * KiB, data: randomBytes(64 * KiB) },
      ]);
      // Link 2 on top: overwrites part of link 1's data, and (seSparse) zeroes whole grains of the base.
      const twoOps: DeltaOp[] = [
        { offset: MiB + 64 * KiB, data: randomBytes(128 * KiB + 3) },
        { offset: 40 * MiB, data: randomBytes(grain * 3) },
      ];
      if (format === 'seSparse') twoOps.push({ offset: 21 * MiB, length: 64 * KiB, zero: true }, { offset: 47 * MiB, length: 128 * KiB, unmap: true });
      const two = await link(format, `${format}-a-000002`, one, one.bytes, twoOps);
      expect(sha(two.bytes)).not.toBe(sha(base));

      const reader = await port.openNetworkReader(diskAt(`[datastore1] chain01/${two.file}`, CAPACITY), 'snapshot-unused', 'nbdssl');
      expect(reader.describe).toBe(`snapshot chain of 2 ${format} links over its base through vCenter (vCenter does not say which host runs the VM)`);
      expect(sha(await copy(reader))).toBe(sha(two.bytes));
      // Reads at any offset and length, as CBT areas ask for them.
      for (const [o, l] of [[MiB + 64 * KiB - 5, 9000], [25 * MiB - 8 * KiB, 70 * KiB], [CAPACITY - 4096, 4096]] as const) {
        expect((await reader.read(o, l)).equals(two.bytes.subarray(o, o + l)), `read at ${o}`).toBe(true);
      }
      await reader.close();
      // The same chain read from the files themselves agrees (the reader under test only supplies the files).
      const local = await openVmdkChain(path.join(dir, two.file));
      expect(sha(await local.read(0, CAPACITY))).toBe(sha(two.bytes));
      await local.close();
    });
  }

  for (const format of ['vmfsSparse', 'seSparse'] as const) {
    it(`a ${format} chain of three links fetches at most 1.2× the bytes a backup reads (the disk's allocated areas)`, async () => {
      const baseCid = /^CID=([0-9a-f]{8})$/m.exec(fs.readFileSync(path.join(dir, 'chain01.vmdk'), 'utf8'))![1]!;
      const one = await link(format, `${format}-amp-000001`, { file: 'chain01.vmdk', cid: baseCid }, base, [
        { offset: MiB + 100, data: randomBytes(MiB) },
        { offset: 12 * MiB, data: randomBytes(512 * KiB) },
      ]);
      const two = await link(format, `${format}-amp-000002`, one, one.bytes, [{ offset: 21 * MiB + 3, data: randomBytes(200 * KiB) }, { offset: 12 * MiB + 64 * KiB, data: randomBytes(64 * KiB) }]);
      const three = await link(format, `${format}-amp-000003`, two, two.bytes, [{ offset: 30 * MiB, data: randomBytes(2 * MiB) }, { offset: 47 * MiB + 4 * KiB, data: randomBytes(8 * KiB) }]);
      // What a full backup reads: the allocated areas (as CBT's "*" reports them, in 64 KiB blocks).
      const written: [number, number][] = [
        [0, 3 * MiB], [20 * MiB, 5 * MiB + 512], [47 * MiB, MiB], // the base
        [MiB + 100, MiB], [12 * MiB, 512 * KiB], [21 * MiB + 3, 200 * KiB], [30 * MiB, 2 * MiB], [47 * MiB + 4 * KiB, 8 * KiB],
      ];
      const blocks = new Set<number>();
      for (const [o, l] of written) for (let b = Math.floor(o / (64 * KiB)); b * 64 * KiB < o + l; b++) blocks.add(b);
      const areas = normaliseAreas([...blocks].map((b) => ({ start: b * 64 * KiB, length: 64 * KiB })), CAPACITY);
      const wanted = areas.reduce((n, a) => n + a.length, 0);
      // Every byte fetched from the datastore, descriptors and tables included.
      let fetched = 0;
      const inner = datastoreFiles(client, new Map([['datastore1', { datacenter: lab.datacenter }]]));
      const counting: FileOpener = {
        async open(p) {
          const f = await inner.open(p);
          return { size: f.size, read: async (pos, len, into, at) => { const n = await f.read(pos, len, into, at); fetched += n; return n; }, close: () => f.close() };
        },
      };
      const reader = await openDiskByDescriptor(`[datastore1] chain01/${three.file}`, CAPACITY, counting, async (extent) => { throw new Error(`no flat read expected: ${extent}`); }, { how: 'over the network', readAhead: { segmentBytes: 4 * MiB, depth: 4 } });
      const got = Buffer.alloc(CAPACITY);
      for (const p of pieces(areas, 4 * MiB)) (await reader.read(p.start, p.length)).copy(got, p.start);
      await reader.close();
      for (const a of areas) expect(got.subarray(a.start, a.start + a.length).equals(three.bytes.subarray(a.start, a.start + a.length)), `area at ${a.start}`).toBe(true);
      const amplification = fetched / wanted;
      expect(amplification, `${fetched} bytes fetched for ${wanted} read`).toBeLessThanOrEqual(1.2);
    });
  }

  it('a parent named by its absolute ESXi path (/vmfs/volumes/<datastore>/…) is found on that datastore', async () => {
    const baseCid = /^CID=([0-9a-f]{8})$/m.exec(fs.readFileSync(path.join(dir, 'chain01.vmdk'), 'utf8'))![1]!;
    const one = await link('seSparse', 'abs-000001', { file: '/vmfs/volumes/datastore1/chain01/chain01.vmdk', cid: baseCid }, base, [{ offset: 4 * MiB, data: randomBytes(8 * KiB) }]);
    const reader = await port.openNetworkReader(diskAt(`[datastore1] chain01/${one.file}`, CAPACITY), 'snapshot-unused', 'nbd');
    expect(sha(await copy(reader))).toBe(sha(one.bytes));
    await reader.close();
    const elsewhere = await link('seSparse', 'abs-000002', { file: '/vmfs/volumes/no-such-volume/chain01/chain01.vmdk', cid: baseCid }, base, []);
    await expect(port.openNetworkReader(diskAt(`[datastore1] chain01/${elsewhere.file}`, CAPACITY), 'snapshot-unused', 'nbd')).rejects.toThrow(/no datastore of this vCenter is named or has the UUID no-such-volume/);
  });

  it('refuses what it cannot read correctly, naming why: a broken chain, a vSAN object, a size that does not match', async () => {
    // A link whose parent changed since it was taken (parentCID no longer the parent's CID).
    const broken = await link('vmfsSparse', 'broken-000001', { file: 'chain01.vmdk', cid: '12345678' }, base, [{ offset: 0, data: randomBytes(512) }]);
    await expect(port.openNetworkReader(diskAt(`[datastore1] chain01/${broken.file}`, CAPACITY), 'snapshot-unused', 'nbdssl')).rejects.toThrow(/cannot be read over the network: .*CID/i);
    // A missing parent.
    const orphan = await link('vmfsSparse', 'orphan-000001', { file: 'gone.vmdk', cid: 'fffffffe' }, base, [{ offset: 0, data: randomBytes(512) }]);
    await expect(port.openNetworkReader(diskAt(`[datastore1] chain01/${orphan.file}`, CAPACITY), 'snapshot-unused', 'nbdssl')).rejects.toThrow(/parent disk not found/);
    // vSAN objects have no file behind their descriptor's extent.
    fs.writeFileSync(
      path.join(dir, 'vsan01.vmdk'),
      `# Disk DescriptorFile\nversion=4\nencoding="UTF-8"\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\n# Extent description\nRW ${CAPACITY / 512} VMFS "vsan://52a0c2e4-0d1c-4a4c-9d43-2c1f1b9f8e11"\n`,
    );
    await expect(port.openNetworkReader(diskAt('[datastore1] chain01/vsan01.vmdk', CAPACITY), 'snapshot-unused', 'nbdssl')).rejects.toThrow(/vsan01\.vmdk cannot be read over the network/);
    await expect(port.openNetworkReader(diskAt('[datastore1] chain01/chain01.vmdk', CAPACITY + MiB), 'snapshot-unused', 'nbdssl')).rejects.toThrow(/describes 50331648 bytes, the VM's disk has 51380224/);
  });
});

// Root: the lab's LUN is an ext4 image on a loop device, mounted read-only by the product as it would a VMFS LUN.
describe.runIf(isRoot)('Direct SAN reads a disk as its descriptor lays it out, inside the LUN only', () => {
  let sanLab: Lab;
  let ds: { name: string; path: string; naa?: string; lunDevice?: string };
  let mountDir: string;
  const devices = () => createLocalDevices({ byIdDir: sanLab.byIdDir, mountDir, log: createLogger({ name: 'test', level: 'silent' }) });
  beforeAll(async () => {
    sanLab = await startLab({ san: true });
    ds = sanLab.datastores[0]!;
    mountDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-san-chain-'));
    await sanLab.createVm({ name: 'sanchain', disks: [{ capacityBytes: CAPACITY }] });
    await sanLab.guestWrite('sanchain', 0, [{ offset: 2 * MiB, length: 6 * MiB, pattern: 'random', seed: 9 }]);
  });
  afterAll(async () => {
    await sanLab?.stop();
    fs.rmSync(mountDir, { recursive: true, force: true });
  });

  it('a seSparse link over the base, composed from the mounted LUN; an extent naming a file outside it is refused', async () => {
    const vmDir = path.join(ds.path, 'sanchain');
    const below = fs.readFileSync(path.join(vmDir, 'sanchain-flat.vmdk'));
    const baseCid = /^CID=([0-9a-f]{8})$/m.exec(fs.readFileSync(path.join(vmDir, 'sanchain.vmdk'), 'utf8'))![1]!;
    const built = await buildDeltaLink({ format: 'seSparse', capacity: CAPACITY, name: 'sanchain-000001', parentFileName: 'sanchain.vmdk', parentCid: baseCid, ops: [{ offset: 3 * MiB, data: randomBytes(256 * KiB) }], parent: { read: async (o, l) => below.subarray(o, o + l) } });
    await writeDeltaLink(vmDir, built);
    const local = await openVmdkChain(path.join(vmDir, built.descriptorFileName));
    const truth = await local.read(0, CAPACITY);
    await local.close();
    expect(sha(truth)).not.toBe(sha(below));
    // A descriptor that names the Transporter's own files as its extent.
    fs.writeFileSync(path.join(vmDir, 'escape.vmdk'), `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\nRW ${CAPACITY / 512} VMFS "../../../../../../../../etc/hostname"\n`);
    execFileSync('sync');

    const reader = await devices().openSan(ds.naa!, ds.lunDevice!, 0, `[${ds.name}] sanchain/${built.descriptorFileName}`, CAPACITY);
    try {
      expect(reader.describe).toBe('snapshot chain of 1 seSparse link over its base');
      expect(sha(await copy(reader))).toBe(sha(truth));
    } finally {
      await reader.close();
    }
    const flat = await devices().openSan(ds.naa!, ds.lunDevice!, 0, `[${ds.name}] sanchain/sanchain.vmdk`, CAPACITY);
    try {
      expect(flat.describe).toBe('flat extent sanchain-flat.vmdk');
      expect(flat.allocate, 'page-aligned buffers for O_DIRECT are passed through').toBeDefined();
      expect(sha(await copy(flat))).toBe(sha(below));
    } finally {
      await flat.close();
    }
    await expect(devices().openSan(ds.naa!, ds.lunDevice!, 0, `[${ds.name}] sanchain/escape.vmdk`, CAPACITY)).rejects.toThrow(/lies outside the datastore; refused/);
    // Nothing is left mounted.
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(mountDir);
  });
});
