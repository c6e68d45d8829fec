import { copyFile, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { openVmdk } from '../src/index.ts';
import { md5, prng, qemuImg, qemuToRaw, sha256, testdata, qemuTmpDir } from './helpers.ts';
import { spawnSync } from 'node:child_process';

function qemuIo(file: string, ...commands: string[]): void {
  const r = spawnSync('qemu-io', ['-f', 'vmdk', ...commands.flatMap((c) => ['-c', c]), file], { encoding: 'utf8' });
  if (r.status !== 0 || /error|fail/i.test(r.stdout + r.stderr)) throw new Error(`qemu-io failed: ${r.stdout}${r.stderr}`);
}

describe('reader details', () => {
  const tmp = qemuTmpDir();

  it('random unaligned reads, sequential and concurrent, match qemu-img raw output for every format', async () => {
    const rnd = prng(1234);
    for (const name of ['streamOptimizedWithMarkers.vmdk', 'streamOptimized.vmdk', 'twoGbMaxExtentSparse.vmdk', 'vmfs_thick.vmdk', 'ext2.vmdk']) {
      const expected = await qemuToRaw(testdata(name), tmp.dir);
      const img = await openVmdk(testdata(name));
      try {
        const r = rnd(64 * 8);
        const reads = Array.from({ length: 64 }, (_, i) => {
          const offset = r.readUInt32LE(i * 8) % img.capacity;
          const length = Math.min(img.capacity - offset, r.readUInt32LE(i * 8 + 4) % 300_000);
          return { offset, length };
        });
        for (const { offset, length } of reads) {
          expect((await img.read(offset, length)).equals(expected.subarray(offset, offset + length)), `${name} @${offset}+${length}`).toBe(true);
        }
        const concurrent = await Promise.all(reads.map(({ offset, length }) => img.read(offset, length)));
        concurrent.forEach((b, i) => {
          const { offset, length } = reads[i] ?? { offset: 0, length: 0 };
          expect(b.equals(expected.subarray(offset, offset + length))).toBe(true);
        });
      } finally {
        await img.close();
      }
    }
  });

  it('zeroed grains (GTE 1 with header flag bit 2, as qemu writes with zeroed_grain=on) read as zeros and are not allocated', async () => {
    const file = join(tmp.dir, 'zeroed.vmdk');
    const r = qemuImg(['create', '-f', 'vmdk', '-o', 'zeroed_grain=on', file, '4M']);
    expect(r.status, r.stderr).toBe(0);
    qemuIo(file, 'write -P 0xab 0 1M', 'write -z 256k 128k', 'write -P 0x11 3M 4k');
    const expected = await qemuToRaw(file, tmp.dir);
    expect(expected.subarray(256 * 1024, 384 * 1024).equals(Buffer.alloc(128 * 1024))).toBe(true);
    const img = await openVmdk(file);
    try {
      expect(img.format).toBe('monolithicSparse');
      expect(sha256(await img.read(0, img.capacity))).toBe(sha256(expected));
      const ranges = [];
      for await (const x of img.allocatedExtents()) ranges.push(x);
      expect(ranges).toEqual([
        { offset: 0, length: 256 * 1024 },
        { offset: 384 * 1024, length: 640 * 1024 },
        { offset: 3 * 1024 * 1024, length: 64 * 1024 },
      ]);
    } finally {
      await img.close();
    }
  });

  it('compressed sparse extents without the markers flag: VMware grain headers and qemu bare zlib grains both read', async () => {
    // (a) streamOptimized.vmdk (grain directory in the header) with the markers flag cleared.
    const noMarkers = join(tmp.dir, 'no-markers.vmdk');
    await copyFile(testdata('streamOptimized.vmdk'), noMarkers);
    const fh = await open(noMarkers, 'r+');
    const flags = Buffer.alloc(4);
    await fh.read(flags, 0, 4, 8);
    flags.writeUInt32LE(flags.readUInt32LE(0) & ~(1 << 17));
    await fh.write(flags, 0, 4, 8);
    await fh.close();
    const a = await openVmdk(noMarkers);
    expect(md5(await a.read(0, a.capacity))).toBe('802645027360247b4cc349b44fd8cca3');
    await a.close();

    // (b) hand-built: compressed, no markers, grains stored as bare zlib streams (qemu's reading of that layout).
    const grain = 64 * 1024;
    const g0 = Buffer.alloc(grain); // qemu reads at most one grain of bare zlib: keep it compressible
    prng(77)(16 * 1024).copy(g0, 1000);
    const g5 = Buffer.alloc(grain, 'compressible ');
    const c0 = deflateSync(g0);
    const c5 = deflateSync(g5);
    const sectors = (n: number) => Math.ceil(n / 512);
    const g0At = 8;
    const g5At = g0At + sectors(c0.length);
    const size = (g5At + sectors(c5.length)) * 512;
    const file = Buffer.alloc(size);
    file.write('KDMV', 0, 'latin1');
    file.writeUInt32LE(1, 4); // version
    file.writeUInt32LE(1 | (1 << 16), 8); // new-line test + compressed, no markers
    file.writeBigUInt64LE(2048n, 12); // 1 MiB
    file.writeBigUInt64LE(128n, 20);
    file.writeUInt32LE(512, 44);
    file.writeBigUInt64LE(1n, 28); // descriptor at sector 1, 1 sector (qemu insists on a CID line there)
    file.writeBigUInt64LE(1n, 36);
    file.write('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicSparse"\nRW 2048 SPARSE "bare-zlib.vmdk"\n', 512, 'latin1');
    file.writeBigUInt64LE(2n, 56); // GD at sector 2
    file.writeBigUInt64LE(8n, 64);
    file.write('\n \r\n', 73, 'latin1');
    file.writeUInt16LE(1, 77);
    file.writeUInt32LE(3, 1024); // GD[0] -> GT at sector 3
    file.writeUInt32LE(g0At, 1536);
    file.writeUInt32LE(g5At, 1536 + 5 * 4);
    c0.copy(file, g0At * 512);
    c5.copy(file, g5At * 512);
    const bare = join(tmp.dir, 'bare-zlib.vmdk');
    await writeFile(bare, file);
    const expected = Buffer.alloc(1024 * 1024);
    g0.copy(expected, 0);
    g5.copy(expected, 5 * grain);
    expect(sha256(await qemuToRaw(bare, tmp.dir))).toBe(sha256(expected));
    const b = await openVmdk(bare);
    expect(sha256(await b.read(0, b.capacity))).toBe(sha256(expected));
    await b.close();
  });
});
