/**
 * A restore point's disk as an NBD export: reads come from the repository's
 * DiskReader (random access, decoded-chunk cache), and the allocation map is
 * the disk index itself (a chunk stored as a hole reads as zeros).
 */
import type { DiskReader } from '@vaultline/repository';
import type { NbdExport, NbdExtent } from './server.ts';

export function diskExport(name: string, reader: DiskReader, description?: string): NbdExport {
  return {
    name,
    size: reader.capacity,
    ...(description ? { description } : {}),
    read: (offset, length) => reader.read(offset, length),
    extents(offset, length): NbdExtent[] {
      const out: NbdExtent[] = [];
      let pos = offset;
      const end = offset + length;
      while (pos < end) {
        const ci = Math.floor(pos / reader.chunkSize);
        const chunkEnd = Math.min((ci + 1) * reader.chunkSize, reader.capacity, end);
        const hole = reader.isHole(ci);
        const prev = out[out.length - 1];
        if (prev && prev.hole === hole) prev.length += chunkEnd - pos;
        else out.push({ length: chunkEnd - pos, hole });
        pos = chunkEnd;
      }
      return out;
    },
  };
}
