import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { openVmdk } from '../src/index.ts';
import type { FileOpener, RandomAccessFile } from '../src/index.ts';
import { md5, testdata } from './helpers.ts';

/** Serves files from memory under datastore-style paths, handing out at most `chunk` bytes per read. */
function memoryDatastore(files: Record<string, Buffer>, chunk: number): FileOpener & { opened: string[] } {
  const opened: string[] = [];
  return {
    opened,
    async open(path: string): Promise<RandomAccessFile> {
      const data = files[path];
      if (!data) throw new Error(`ENOENT ${path}`);
      opened.push(path);
      return {
        size: data.length,
        read: async (position, length, into, intoOffset) => data.copy(into, intoOffset, position, Math.min(data.length, position + Math.min(length, chunk))),
        close: async () => {},
      };
    },
  };
}

describe('pluggable file access (how the Transporter reads datastore files)', () => {
  it('fake datastore over byte ranges: a vmfs descriptor and its flat extent under "[ds1] vm/" paths', async () => {
    const ds = memoryDatastore(
      {
        '[ds1] web01/web01.vmdk': await readFile(testdata('vmfs_thick.vmdk')),
        '[ds1] web01/vmfs_thick-flat.vmdk': await readFile(testdata('vmfs_thick-flat.vmdk')),
      },
      1000,
    );
    const img = await openVmdk('[ds1] web01/web01.vmdk', { files: ds });
    try {
      expect(ds.opened).toEqual(['[ds1] web01/web01.vmdk', '[ds1] web01/vmfs_thick-flat.vmdk']);
      expect(img.format).toBe('vmfs');
      expect(md5(await img.read(0, img.capacity))).toBe(md5(await readFile(testdata('vmfs_thick-flat.vmdk'))));
    } finally {
      await img.close();
    }
  });

  it('fake datastore over byte ranges: sparse extents behind a descriptor read with short reads', async () => {
    const ds = memoryDatastore(
      {
        '[ds1] old/disk.vmdk': await readFile(testdata('twoGbMaxExtentSparse.vmdk')),
        '[ds1] old/twoGbMaxExtentSparse-s001.vmdk': await readFile(testdata('twoGbMaxExtentSparse-s001.vmdk')),
      },
      333,
    );
    const img = await openVmdk('[ds1] old/disk.vmdk', { files: ds });
    try {
      expect(md5(await img.read(0, img.capacity))).toBe('802645027360247b4cc349b44fd8cca3');
    } finally {
      await img.close();
    }
  });
});
