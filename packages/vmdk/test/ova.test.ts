import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { OvfError, adapterTypeFor, createOva, openVmdk, ovfDescriptor, parseOvfHardware, tarEnd, tarHeader, tarPadding, virtualSystemType, writeOva } from '../src/index.ts';
import type { OvaDisk, OvaOptions, OvfHardware } from '../src/index.ts';
import { SyntheticDisk, prng, qemuImg, qemuTmpDir, qemuToRaw, sha256, testdata } from './helpers.ts';
import { comparableHardware, hardwareFromOvf, readManifest, readTar, summariseOvf, systemTarList } from './ova-check.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A VM with a disk on each of two controllers of different kinds, an IDE disk and two NICs. */
function hardware(): OvfHardware {
  return {
    name: 'app01 & "friends"',
    guestId: 'ubuntu64Guest',
    guestFullName: 'Ubuntu Linux (64-bit)',
    numCpu: 4,
    numCoresPerSocket: 2,
    memoryMiB: 3072,
    firmware: 'efi',
    controllers: [
      { key: 200, kind: 'ide', busNumber: 0 },
      { key: 201, kind: 'ide', busNumber: 1 },
      { key: 100, kind: 'other', busNumber: 0 }, // PCI
      { key: 1000, kind: 'pvscsi', busNumber: 0 },
      { key: 15000, kind: 'sata', busNumber: 0 },
    ],
    disks: [
      { key: 2000, label: 'Hard disk 1', controllerKey: 1000, unitNumber: 0, capacityBytes: 4 * MiB },
      { key: 16000, label: 'Hard disk 2', controllerKey: 15000, unitNumber: 1, capacityBytes: 3 * MiB + 512 },
      { key: 3001, label: 'Hard disk 3', controllerKey: 201, unitNumber: 1, capacityBytes: MiB },
    ],
    nics: [
      { key: 4000, type: 'VirtualVmxnet3', label: 'Network adapter 1', networkName: 'VM Network' },
      { key: 4001, type: 'VirtualE1000e', networkName: 'backup <lan>' },
    ],
  };
}

function disksFor(hw: OvfHardware): { sources: OvaDisk[]; bytes: Map<number, Buffer> } {
  const bytes = new Map<number, Buffer>();
  const sources = hw.disks.map((d, i) => {
    const rnd = prng(7 + i);
    const disk = new SyntheticDisk(d.capacityBytes).put(0, rnd(300 * KiB)).put(Math.floor(d.capacityBytes / 2), Buffer.from('x'.repeat(200 * KiB))).put(d.capacityBytes - 512, rnd(512));
    bytes.set(d.key, disk.bytes());
    return Object.assign(disk, { key: d.key }) as OvaDisk;
  });
  return { sources, bytes };
}

async function writeOvaFile(path: string, hw: OvfHardware, sources: OvaDisk[], opts: OvaOptions): Promise<Buffer> {
  await pipeline(writeOva(createOva(hw, sources, opts)), createWriteStream(path));
  return readFile(path);
}

function untar(path: string, dir: string): void {
  const r = spawnSync('tar', ['-xf', path, '-C', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar xf failed: ${r.stderr}`);
}

function expectCleanStreamOptimized(path: string): void {
  const r = qemuImg(['check', path]);
  expect(r.status, `qemu-img check ${path}: ${r.stdout}${r.stderr}`).toBe(0);
  const info = JSON.parse(qemuImg(['info', '--output=json', path]).stdout) as { 'format-specific'?: { data?: { 'create-type'?: string } } };
  expect(info['format-specific']?.data?.['create-type']).toBe('streamOptimized');
}

describe('tar headers', () => {
  const tmp = qemuTmpDir();

  it('GNU tar lists and extracts entries of every padding case exactly as written', async () => {
    const sizes = [0, 1, 511, 512, 513, 4096 + 7];
    const parts: Buffer[] = [];
    const files = sizes.map((n, i) => ({ name: `dir/f${i}.bin`, data: prng(i + 1)(n) }));
    for (const f of files) parts.push(tarHeader({ name: f.name, size: f.data.length, mtime: new Date(1_700_000_000_000) }), f.data, tarPadding(f.data.length));
    parts.push(tarEnd());
    const tar = Buffer.concat(parts);
    const path = join(tmp.dir, 'sizes.tar');
    await writeFile(path, tar);
    expect(systemTarList(path)).toEqual(files.map((f) => ({ name: f.name, size: f.data.length })));
    expect(readTar(tar).map((e) => [e.name, e.size, e.mode])).toEqual(files.map((f) => [f.name, f.data.length, 0o644]));
    const out = join(tmp.dir, 'sizes');
    await mkdir(out);
    untar(path, out);
    for (const f of files) expect(sha256(await readFile(join(out, f.name)))).toBe(sha256(f.data));
  });

  it('a size above 8 GiB goes into a pax record that GNU tar reads', async () => {
    const big = 9 * 1024 * MiB + 123;
    const header = tarHeader({ name: 'big.vmdk', size: big });
    expect(header.length).toBe(3 * 512); // pax header + its record + the entry header
    // The data itself is left out: GNU tar lists the entry, then reports the short archive.
    const r = spawnSync('tar', ['-tvf', '-'], { input: header, encoding: 'utf8' });
    expect(r.stdout).toMatch(new RegExp(`\\s${big}\\s.*big\\.vmdk`));
    expect(r.stderr).toMatch(/Unexpected EOF/);
    expect(r.status).not.toBe(0);
  });

  it('refuses names tar cannot hold', () => {
    expect(() => tarHeader({ name: 'x'.repeat(101), size: 1 })).toThrow(/1-100 printable ASCII/);
    expect(() => tarHeader({ name: '../etc/passwd', size: 1 })).toThrow(/without "\.\."/);
    expect(() => tarHeader({ name: '/abs', size: 1 })).toThrow(/relative/);
    expect(() => tarHeader({ name: 'ok', size: -1 })).toThrow(/non-negative/);
  });
});

describe('OVF descriptor', () => {
  it('describes CPU, memory, every controller, each disk on its controller and unit, NICs on their networks, firmware', () => {
    const hw = hardware();
    const xml = ovfDescriptor(hw, hw.disks.map((d, i) => ({ diskKey: d.key, href: `app-disk${i + 1}.vmdk`, capacity: d.capacityBytes, chunkSize: 512 * KiB })));
    const s = summariseOvf(xml);
    expect(s.root).toBe('{http://schemas.dmtf.org/ovf/envelope/1}Envelope');
    expect(s.first).toBe('{http://schemas.dmtf.org/ovf/envelope/1}References');
    expect(hardwareFromOvf(s)).toEqual(comparableHardware(hw));
    expect(s.system).toEqual({ id: hw.name, name: hw.name, osId: '1', osType: 'ubuntu64Guest', virtualSystemType: 'vmx-10' });
    expect(s.references).toEqual(hw.disks.map((_, i) => ({ id: `file${i + 1}`, href: `app-disk${i + 1}.vmdk`, size: null, chunkSize: String(512 * KiB) })));
    expect(s.disks.map((d) => d.format)).toEqual(hw.disks.map(() => 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized'));
    expect(s.networks).toEqual(['VM Network', 'backup <lan>']);
    // Every item has the two fields the RASD schema requires.
    for (const i of s.items) expect(Object.keys(i)).toEqual(expect.arrayContaining(['ElementName', 'InstanceID']));
    // rasd children in the schema's (alphabetical) sequence.
    const rasdKeys = (xml.match(/<Item>[\s\S]*?<\/Item>/g) ?? []).map((it) => [...it.matchAll(/<rasd:(\w+)>/g)].map((m) => m[1]!));
    for (const keys of rasdKeys) expect(keys).toEqual([...keys].sort());
    expect(xml).not.toMatch(/macAddress|rasd:Address>[0-9a-f]{2}:/i);
  });

  it('maps a recorded controller kind to the VMDK adapter type, lsilogic when it is unknown', () => {
    expect(['pvscsi', 'lsisas', 'sata', 'nvme', 'ide', 'buslogic'].map(adapterTypeFor)).toEqual(['pvscsi', 'lsisas', 'sata', 'nvme', 'ide', 'buslogic']);
    expect([undefined, 'other', 'floppy'].map(adapterTypeFor)).toEqual(['lsilogic', 'lsilogic', 'lsilogic']);
  });

  it('picks the oldest hardware family that runs the VM (vmx-13 for NVMe) and leaves firmware out when it is not bios or efi', () => {
    const hw: OvfHardware = { name: 'n', controllers: [{ key: 31000, kind: 'nvme', busNumber: 0 }], disks: [{ key: 32000, controllerKey: 31000, unitNumber: 0, capacityBytes: MiB }], nics: [] };
    const s = summariseOvf(ovfDescriptor(hw, [{ diskKey: 32000, href: 'n-disk1.vmdk', capacity: MiB, size: 1234 }]));
    expect(s.system.virtualSystemType).toBe('vmx-13');
    expect(s.config).toEqual([]);
    expect(s.references[0]!.size).toBe('1234');
    expect(hardwareFromOvf(s)).toEqual(comparableHardware(hw));
    const noNvme = { ...hw, controllers: [{ key: 31000, kind: 'sata' as const, busNumber: 0 }] };
    expect([virtualSystemType(noNvme), virtualSystemType({ ...noNvme, numCpu: 65 }), virtualSystemType({ ...noNvme, memoryMiB: 1024 * 1024 + 1 }), virtualSystemType({ ...hw, memoryMiB: 4080 * 1024 + 1 })]).toEqual([
      'vmx-10',
      'vmx-11',
      'vmx-11',
      'vmx-14',
    ]);
  });

  it('reads a stored hardware description field by field and names what is wrong', () => {
    const hw = hardware();
    expect(parseOvfHardware(JSON.parse(JSON.stringify(hw)))).toEqual(hw);
    expect(() => parseOvfHardware(undefined)).toThrow(new OvfError('the restore point holds no hardware description'));
    expect(() => parseOvfHardware({ ...hw, numCpu: 'two' })).toThrow(/hardware\.numCpu must be an integer/);
    expect(() => parseOvfHardware({ ...hw, disks: [{ ...hw.disks[0], capacityBytes: 0 }] })).toThrow(/hardware\.disks\[0\]\.capacityBytes must be an integer >= 1/);
    expect(() => parseOvfHardware({ ...hw, controllers: [{ key: 1, kind: 'floppy', busNumber: 0 }] })).toThrow(/controllers\[0\]\.kind "floppy" is not a known controller kind/);
    expect(() => parseOvfHardware({ ...hw, nics: [{ key: 1 }] })).toThrow(/hardware\.nics\[0\]\.type is missing/);
  });

  it('refuses disks it cannot place', () => {
    const hw = hardware();
    const files = hw.disks.map((d, i) => ({ diskKey: d.key, href: `d${i}.vmdk`, capacity: d.capacityBytes }));
    const on = (controllerKey: number, unitNumber = 0): OvfHardware => ({ ...hw, disks: [{ ...hw.disks[0]!, controllerKey, unitNumber }, ...hw.disks.slice(1)] });
    expect(() => ovfDescriptor(on(9999), files)).toThrow(/Hard disk 1 is on controller 9999, which the hardware description does not list/);
    expect(() => ovfDescriptor(on(100), files)).toThrow(/Hard disk 1 is on a controller OVF cannot describe/);
    expect(() => ovfDescriptor({ ...hw, disks: [...hw.disks, { ...hw.disks[1]!, key: 16001, label: 'Hard disk 9' }] }, files)).toThrow(/Hard disk 9 and Hard disk 2 are both on unit 1 of controller 15000/);
    expect(() => ovfDescriptor(hw, files.slice(1))).toThrow(/Hard disk 1 \(key 2000\) has no data in the package/);
  });
});

describe('OVA package (GNU tar, Python XML and qemu-img as the independent readers)', () => {
  const tmp = qemuTmpDir();

  it('chunked: descriptor first, every VMDK in chunks of exactly chunkSize but the last, manifest last; each disk comes back byte for byte', async () => {
    const hw = hardware();
    const { sources, bytes } = disksFor(hw);
    const chunkSize = 128 * KiB;
    const path = join(tmp.dir, 'chunked.ova');
    const tar = await writeOvaFile(path, hw, sources, { chunkSize, baseName: 'app01' });
    const entries = readTar(tar);
    expect(systemTarList(path)).toEqual(entries.map((e) => ({ name: e.name, size: e.size })));
    expect(entries[0]!.name).toBe('app01.ovf');
    expect(entries.at(-1)!.name).toBe('app01.mf');

    const s = summariseOvf(tar.subarray(entries[0]!.offset, entries[0]!.offset + entries[0]!.size));
    expect(hardwareFromOvf(s)).toEqual(comparableHardware(hw));
    expect(s.references.map((r) => [r.href, r.chunkSize, r.size])).toEqual(hw.disks.map((_, i) => [`app01-disk${i + 1}.vmdk`, String(chunkSize), null]));

    // Chunk entries follow References order, numbered from 0, each full but the last.
    const chunks = entries.slice(1, -1);
    const expectedOrder = s.references.flatMap((r) => chunks.filter((c) => c.name.startsWith(`${r.href}.`)).map((c) => c.name));
    expect(chunks.map((c) => c.name)).toEqual(expectedOrder);
    const out = join(tmp.dir, 'chunked');
    await mkdir(out);
    untar(path, out);
    for (const [i, r] of s.references.entries()) {
      const mine = chunks.filter((c) => c.name.startsWith(`${r.href}.`));
      expect(mine.length).toBeGreaterThan(1);
      expect(mine.map((c) => c.name)).toEqual(mine.map((_, n) => `${r.href}.${String(n).padStart(9, '0')}`));
      expect(mine.slice(0, -1).every((c) => c.size === chunkSize)).toBe(true);
      expect(mine.at(-1)!.size).toBeGreaterThan(0);
      expect(mine.at(-1)!.size).toBeLessThanOrEqual(chunkSize);
      const vmdk = Buffer.concat(await Promise.all(mine.map((c) => readFile(join(out, c.name)))));
      const file = join(out, r.href);
      await writeFile(file, vmdk);
      expectCleanStreamOptimized(file);
      const raw = await qemuToRaw(file, tmp.dir);
      const want = bytes.get(hw.disks[i]!.key)!;
      // qemu pads a capacity that is not sector aligned; ours are.
      expect(sha256(raw)).toBe(sha256(want));
    }

    const mf = readManifest((await readFile(join(out, 'app01.mf'))).toString('ascii'));
    expect([...mf.keys()]).toEqual(entries.slice(0, -1).map((e) => e.name));
    for (const [name, digest] of mf) expect(sha256(await readFile(join(out, name)))).toBe(digest);
  });

  it('whole: descriptor, manifest, one VMDK per disk with ovf:size and populatedSize; the second pass is checked against the first', async () => {
    const hw = hardware();
    const { sources, bytes } = disksFor(hw);
    const path = join(tmp.dir, 'whole.ova');
    const tar = await writeOvaFile(path, hw, sources, { layout: 'whole', baseName: 'app01' });
    const entries = readTar(tar);
    expect(systemTarList(path)).toEqual(entries.map((e) => ({ name: e.name, size: e.size })));
    expect(entries.map((e) => e.name)).toEqual(['app01.ovf', 'app01.mf', 'app01-disk1.vmdk', 'app01-disk2.vmdk', 'app01-disk3.vmdk']);
    const s = summariseOvf(tar.subarray(entries[0]!.offset, entries[0]!.offset + entries[0]!.size));
    expect(hardwareFromOvf(s)).toEqual(comparableHardware(hw));
    expect(s.references.map((r) => [r.href, r.size, r.chunkSize])).toEqual(entries.slice(2).map((e) => [e.name, String(e.size), null]));
    const out = join(tmp.dir, 'whole');
    await mkdir(out);
    untar(path, out);
    for (const [i, d] of hw.disks.entries()) {
      const file = join(out, `app01-disk${i + 1}.vmdk`);
      expectCleanStreamOptimized(file);
      expect(sha256(await qemuToRaw(file, tmp.dir))).toBe(sha256(bytes.get(d.key)!));
      // populatedSize: the data grains the VMDK holds (three areas of our disks, each within one or two 64 KiB grains).
      const populated = Number(s.disks[i]!.populatedSize);
      expect(populated % (64 * KiB) === 0 || populated === d.capacityBytes).toBe(true);
      expect(populated).toBeGreaterThanOrEqual(300 * KiB + 200 * KiB);
      expect(populated).toBeLessThan(d.capacityBytes);
    }
    const mf = readManifest((await readFile(join(out, 'app01.mf'))).toString('ascii'));
    expect([...mf.keys()]).toEqual(['app01.ovf', 'app01-disk1.vmdk', 'app01-disk2.vmdk', 'app01-disk3.vmdk']);
    for (const [name, digest] of mf) expect(sha256(await readFile(join(out, name)))).toBe(digest);
  });

  it('whole: a disk that reads differently the second time fails the stream instead of writing a wrong archive', async () => {
    const hw: OvfHardware = { name: 'v', controllers: [{ key: 1000, kind: 'lsilogic', busNumber: 0 }], disks: [{ key: 2000, controllerKey: 1000, unitNumber: 0, capacityBytes: MiB }], nics: [] };
    let pass = 0;
    const flaky: OvaDisk = {
      key: 2000,
      capacity: MiB,
      read: async (offset, length) => {
        if (offset === 0) pass++;
        return Buffer.alloc(length, pass === 1 ? 1 : 2);
      },
    };
    const chunks: Buffer[] = [];
    await expect(
      (async () => {
        for await (const c of createOva(hw, [flaky], { layout: 'whole' }).chunks()) chunks.push(c);
      })(),
    ).rejects.toThrow(/v-disk1\.vmdk: the second pass gave \d+ bytes with SHA-256 [0-9a-f]{64}, the first \d+ bytes with [0-9a-f]{64}; the disk changed while it was read/);
    expect(chunks.some((c) => c.includes(Buffer.from('ustar')))).toBe(true); // the descriptor went out, the archive never ended
  });

  it('real VMDK files as the disks: each converts back to what qemu-img reads from the original', async () => {
    const names = ['streamOptimized.vmdk', 'monolithicSparse.vmdk'];
    const images = await Promise.all(names.map((n) => openVmdk(testdata(n))));
    try {
      const hw: OvfHardware = {
        name: 'testdata',
        controllers: [
          { key: 1000, kind: 'lsisas', busNumber: 0 },
          { key: 1001, kind: 'buslogic', busNumber: 1 },
        ],
        disks: images.map((img, i) => ({ key: 2000 + i, controllerKey: 1000 + i, unitNumber: 0, capacityBytes: img.capacity })),
        nics: [{ key: 4000, type: 'VirtualPCNet32' }],
      };
      const path = join(tmp.dir, 'testdata.ova');
      const tar = await writeOvaFile(
        path,
        hw,
        images.map((img, i) => Object.assign(img, { key: 2000 + i })),
        { chunkSize: 64 * KiB },
      );
      const entries = readTar(tar);
      const out = join(tmp.dir, 'testdata');
      await mkdir(out);
      untar(path, out);
      const s = summariseOvf(await readFile(join(out, 'testdata.ovf')));
      expect(hardwareFromOvf(s)).toEqual(comparableHardware(hw));
      const files = await readdir(out);
      for (const [i, n] of names.entries()) {
        const href = `testdata-disk${i + 1}.vmdk`;
        const parts = entries.filter((e) => e.name.startsWith(`${href}.`)).map((e) => e.name);
        expect(files).toEqual(expect.arrayContaining(parts));
        const file = join(out, href);
        await writeFile(file, Buffer.concat(await Promise.all(parts.map((p) => readFile(join(out, p))))));
        expectCleanStreamOptimized(file);
        const ours = await qemuToRaw(file, tmp.dir);
        const theirs = await qemuToRaw(testdata(n), tmp.dir);
        expect(ours.length).toBe(theirs.length);
        expect(createHash('sha256').update(ours).digest('hex')).toBe(createHash('sha256').update(theirs).digest('hex'));
      }
    } finally {
      await Promise.all(images.map((img) => img.close()));
    }
  });

  it('refuses, before the first byte, disks without data, data without a disk, and bad chunk sizes', () => {
    const hw = hardware();
    const { sources } = disksFor(hw);
    expect(() => createOva(hw, sources.slice(0, 2))).toThrow(/Hard disk 3 \(key 3001\) has no data in the restore point/);
    expect(() => createOva(hw, [...sources, Object.assign(new SyntheticDisk(MiB), { key: 7777 })])).toThrow(/holds data for disk 7777, which its hardware description does not list/);
    expect(() => createOva(hw, sources, { chunkSize: 1000 })).toThrow(/chunkSize must be a positive multiple of 512/);
    expect(() => createOva(hw, sources, { layout: 'zip' as never })).toThrow(/layout must be "chunked" or "whole"/);
  });
});
