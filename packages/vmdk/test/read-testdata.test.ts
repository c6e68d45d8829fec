import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openVmdk } from '../src/index.ts';
import type { VmdkImage } from '../src/index.ts';
import { md5, qemuImg, qemuToRaw, sha256, testdata, qemuTmpDir } from './helpers.ts';

const SAME_DISK_MD5 = '802645027360247b4cc349b44fd8cca3';

async function readAll(img: VmdkImage): Promise<Buffer> {
  return img.read(0, img.capacity);
}

/** Read in odd-sized, unaligned pieces to exercise grain and extent boundaries. */
async function readInPieces(img: VmdkImage, piece: number): Promise<Buffer> {
  const out = Buffer.alloc(img.capacity);
  for (let off = 0; off < img.capacity; off += piece) {
    await img.read(off, Math.min(piece, img.capacity - off), out.subarray(off));
  }
  return out;
}

describe('reading the shared real VMDK files in place', () => {
  const tmp = qemuTmpDir();

  it.each([
    ['monolithicSparse.vmdk', 'monolithicSparse'],
    ['streamOptimized.vmdk', 'streamOptimized'],
    ['twoGbMaxExtentSparse.vmdk', 'twoGbMaxExtentSparse'],
  ])('%s (same 10 MiB disk) reads as raw data with the known md5', async (name, format) => {
    const img = await openVmdk(testdata(name));
    try {
      expect(img.format).toBe(format);
      expect(img.capacity).toBe(10 * 1024 * 1024);
      expect(md5(await readAll(img))).toBe(SAME_DISK_MD5);
      expect(md5(await readInPieces(img, 12_345))).toBe(SAME_DISK_MD5);
    } finally {
      await img.close();
    }
  });

  it.each(['streamOptimizedWithMarkers.vmdk', 'vmfs_thick.vmdk', 'ext2.vmdk', 'monolithicSparse.vmdk', 'twoGbMaxExtentSparse.vmdk'])(
    '%s reads exactly what qemu-img convert -O raw produces',
    async (name) => {
      const expected = await qemuToRaw(testdata(name), tmp.dir);
      const img = await openVmdk(testdata(name));
      try {
        expect(img.capacity).toBe(expected.length);
        expect(sha256(await readAll(img))).toBe(sha256(expected));
        expect(sha256(await readInPieces(img, 65_536 + 511))).toBe(sha256(expected));
      } finally {
        await img.close();
      }
    },
  );

  it('vmfs_thick descriptor + flat extent: createType vmfs, descriptor exposed, MBR signature in sector 0', async () => {
    const img = await openVmdk(testdata('vmfs_thick.vmdk'));
    try {
      expect(img.format).toBe('vmfs');
      expect(img.descriptor?.extents).toEqual([{ access: 'RW', sectors: 4096, type: 'VMFS', fileName: 'vmfs_thick-flat.vmdk' }]);
      const mbr = await img.read(0, 512);
      expect(mbr.readUInt16LE(510)).toBe(0xaa55);
    } finally {
      await img.close();
    }
  });

  it('allocated extents of sparse files cover every non-zero byte and nothing unallocated reads non-zero', async () => {
    for (const name of ['monolithicSparse.vmdk', 'streamOptimized.vmdk', 'twoGbMaxExtentSparse.vmdk', 'ext2.vmdk', 'streamOptimizedWithMarkers.vmdk']) {
      const img = await openVmdk(testdata(name));
      try {
        const all = await readAll(img);
        const covered = Buffer.alloc(all.length);
        let last = -1;
        let total = 0;
        for await (const r of img.allocatedExtents()) {
          expect(r.offset).toBeGreaterThan(last);
          last = r.offset + r.length - 1;
          total += r.length;
          all.copy(covered, r.offset, r.offset, r.offset + r.length);
        }
        expect(covered.equals(all), name).toBe(true);
        expect(total).toBeLessThanOrEqual(img.capacity);
      } finally {
        await img.close();
      }
    }
  });

  it('an extent file opened directly is a disk of its own: twoGbMaxExtentSparse-s001 is a sparse extent, -flat is raw', async () => {
    const s001 = await openVmdk(testdata('twoGbMaxExtentSparse-s001.vmdk'));
    const flat = await openVmdk(testdata('vmfs_thick-flat.vmdk'));
    try {
      expect(s001.format).toBe('monolithicSparse');
      expect(s001.descriptor).toBeUndefined();
      expect(md5(await readAll(s001))).toBe(SAME_DISK_MD5);
      expect(flat.format).toBe('raw');
      expect(flat.capacity).toBe(2 * 1024 * 1024);
    } finally {
      await s001.close();
      await flat.close();
    }
  });

  it('qemu-img conversions of a real disk to every vmdk subformat read back identically', async () => {
    const expected = await qemuToRaw(testdata('ext2.vmdk'), tmp.dir);
    for (const sub of ['streamOptimized', 'monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat']) {
      const out = join(tmp.dir, `ext2-${sub}.vmdk`);
      const r = qemuImg(['convert', '-O', 'vmdk', '-o', `subformat=${sub}`, testdata('ext2.vmdk'), out]);
      expect(r.status, r.stderr).toBe(0);
      const img = await openVmdk(out);
      try {
        expect(img.format).toBe(sub);
        expect(sha256(await readAll(img)), sub).toBe(sha256(expected));
      } finally {
        await img.close();
      }
    }
    // qemu-img sometimes leaves an earlier, longer text's tail after the NUL that ends a descriptor it rewrote
    // (seen in CI: `…\0\n\0…`): the descriptor is the text up to that NUL, and the disk reads the same.
    const flat = join(tmp.dir, 'ext2-twoGbMaxExtentFlat.vmdk');
    const desc = readFileSync(flat);
    const nul = desc.indexOf(0);
    desc.write('\nstale tail', nul + 1, 'latin1');
    writeFileSync(flat, desc);
    const img = await openVmdk(flat);
    try {
      expect(sha256(await readAll(img))).toBe(sha256(expected));
    } finally {
      await img.close();
    }
  });
});
