/**
 * Converting a restore point's disk to raw and qcow2 from a real repository with the real qemu-img:
 * bit-exact (qemu-img reads the image back as raw; SHA-256 equal to the original), thin (the file takes
 * about the space of the data), holes stay holes, and a full target fails clearly with the partial
 * file removed (a small tmpfs; mounting needs root, which CI has).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Repository, openRestorePointWriter, shutdownWorkerPools, type Manifest } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertDisk, imageInfo, TargetFullError } from '../src/convert.ts';

const MiB = 2 ** 20;
// CI runs as root: mounting the small tmpfs for the full-target case needs it.
const isRoot = process.getuid?.() === 0;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A 64 MiB disk: data, a never-written hole, zeros written explicitly, a lone 4 KiB block, data at the end. */
function makeDisk(): { img: Buffer; writes: Array<[number, number]>; dataBytes: number } {
  const img = Buffer.alloc(64 * MiB);
  const writes: Array<[number, number]> = [];
  const put = (off: number, len: number, fill: 'random' | 'zero') => {
    if (fill === 'random') randomBytes(len).copy(img, off);
    writes.push([off, len]);
  };
  put(0, 4 * MiB, 'random');
  // 4–30 MiB: never written (a hole of the point).
  put(30 * MiB, 8 * MiB, 'random');
  put(40 * MiB, 8 * MiB, 'zero'); // written as zeros: the repository stores them as holes too
  put(50 * MiB + 123 * 4096, 4096, 'random');
  put(63 * MiB, MiB, 'random');
  return { img, writes, dataBytes: 4 * MiB + 8 * MiB + 4096 + MiB };
}

let root = '';
let out = '';
let repo: Repository;
let manifest: Manifest;
const disk = makeDisk();

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-repo-'));
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-out-'));
  await Repository.init(root);
  repo = await Repository.open(root);
  const w = await openRestorePointWriter(repo, { vmId: 'vm-convert' });
  const d = await w.openDisk({ key: '2000', capacity: disk.img.length, mode: 'full' });
  for (const [o, l] of disk.writes) await d.write(o, disk.img.subarray(o, o + l));
  manifest = await w.commit();
}, 120_000);

afterAll(async () => {
  await repo?.close();
  await shutdownWorkerPools();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
});

/** The image as qemu-img reads it, flattened to raw bytes. */
function readBack(file: string, format: string): Buffer {
  const flat = `${file}.readback`;
  execFileSync('qemu-img', ['convert', '-f', format, '-O', 'raw', file, flat]);
  try {
    return fs.readFileSync(flat);
  } finally {
    fs.rmSync(flat);
  }
}

/** Data extents of a raw file, as SEEK_DATA/SEEK_HOLE see them (qemu-img map of a raw file). */
function dataExtents(file: string): Array<{ start: number; length: number }> {
  const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'raw', file], { encoding: 'utf8' })) as Array<{ start: number; length: number; data: boolean }>;
  return map.filter((e) => e.data).map(({ start, length }) => ({ start, length }));
}

describe('convert a restore point disk', () => {
  it('raw: bit-exact, sparse, only the data allocated, the hole a hole', async () => {
    const file = path.join(out, 'disk0.raw');
    const r = await convertDisk({ repo, ref: { vmId: manifest.vmId, id: manifest.id }, diskKey: '2000', path: file, format: 'raw' });
    expect(r.capacity).toBe(64 * MiB);
    expect(fs.statSync(file).size).toBe(64 * MiB);
    expect(sha(readBack(file, 'raw'))).toBe(sha(disk.img));
    expect(sha(fs.readFileSync(file))).toBe(sha(disk.img));
    // Thin: the allocation is the data (plus at most a few filesystem blocks), not 64 MiB.
    expect(r.allocatedBytes).toBeGreaterThanOrEqual(disk.dataBytes);
    expect(r.allocatedBytes).toBeLessThan(disk.dataBytes + MiB);
    const extents = dataExtents(file);
    const inHole = extents.filter((e) => e.start < 30 * MiB && e.start + e.length > 4 * MiB);
    expect(inHole).toEqual([]);
    const inZeros = extents.filter((e) => e.start < 48 * MiB && e.start + e.length > 40 * MiB);
    expect(inZeros).toEqual([]);
    expect(fs.existsSync(`${file}.partial`)).toBe(false);
  });

  it('qcow2: bit-exact through qemu-img, thin (disk size ≈ the data), holes unallocated', async () => {
    const file = path.join(out, 'disk0.qcow2');
    const r = await convertDisk({ repo, ref: { vmId: manifest.vmId, id: manifest.id }, diskKey: '2000', path: file, format: 'qcow2' });
    const info = await imageInfo(file);
    expect(info.format).toBe('qcow2');
    expect(info.virtualSize).toBe(64 * MiB);
    expect(sha(readBack(file, 'qcow2'))).toBe(sha(disk.img));
    // qcow2 allocates 64 KiB clusters plus its metadata: the lone 4 KiB block costs one cluster.
    expect(info.actualSize).toBeGreaterThanOrEqual(disk.dataBytes);
    expect(info.actualSize).toBeLessThan(disk.dataBytes + 2 * MiB);
    expect(r.allocatedBytes).toBe(info.actualSize);
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', file], { encoding: 'utf8' })) as Array<{ start: number; length: number; data: boolean }>;
    const allocated = map.filter((e) => e.data).reduce((n, e) => n + e.length, 0);
    expect(allocated).toBe(4 * MiB + 8 * MiB + 64 * 1024 + MiB);
    expect(map.filter((e) => e.data && e.start < 30 * MiB && e.start + e.length > 4 * MiB)).toEqual([]);
  });

  it('refuses to overwrite an existing file, and a disk the point does not hold', async () => {
    const file = path.join(out, 'exists.raw');
    fs.writeFileSync(file, 'keep me');
    await expect(convertDisk({ repo, ref: { vmId: manifest.vmId, id: manifest.id }, diskKey: '2000', path: file, format: 'raw' })).rejects.toThrow(/exists already/);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
    await expect(convertDisk({ repo, ref: { vmId: manifest.vmId, id: manifest.id }, diskKey: '2001', path: path.join(out, 'nope.raw'), format: 'raw' })).rejects.toThrow(/2001/);
    expect(fs.existsSync(path.join(out, 'nope.raw.partial'))).toBe(false);
  });

  describe.skipIf(!isRoot)('on a full target (an 8 MiB tmpfs)', () => {
    let mnt = '';
    beforeAll(() => {
      mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
    });
    afterAll(() => {
      execFileSync('umount', [mnt]);
      fs.rmSync(mnt, { recursive: true, force: true });
    });

    for (const format of ['raw', 'qcow2'] as const) {
      it(`${format}: a clear error and no partial file left`, async () => {
        const file = path.join(mnt, `disk0.${format}`);
        const err = await convertDisk({ repo, ref: { vmId: manifest.vmId, id: manifest.id }, diskKey: '2000', path: file, format }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TargetFullError);
        expect((err as Error).message).toMatch(new RegExp(`filesystem of ${mnt} is full.*partial image was removed`));
        expect(fs.readdirSync(mnt)).toEqual([]);
        // The space is back.
        expect(fs.statfsSync(mnt).bfree).toBe(fs.statfsSync(mnt).blocks);
      });
    }
  });
});
