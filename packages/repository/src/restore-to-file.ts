/**
 * Restore to a file: the runs of a disk's extents that are not all zeros,
 * written sparsely into a raw image file.
 */
import * as fs from 'node:fs';
import { ALIGN, openDirect } from './backends/direct.ts';
import type { ExtentSource } from './types.ts';

function writeAsync(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, 0, buf.length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

const ZERO_BLOCK = 64 * 1024;
const zeroBlock = Buffer.alloc(ZERO_BLOCK);

/**
 * The runs of `data` (which sits at disk offset `offset`) left when all-zero
 * 64 KiB blocks of the disk's grid are cut out: what a restore has to write to
 * a target that already reads as zeros (a new sparse file, a new thin disk).
 */
export function nonZeroRuns(offset: number, data: Buffer): Array<{ start: number; end: number }> {
  const runs: Array<{ start: number; end: number }> = [];
  let runStart = -1;
  for (let p = 0; p < data.length; ) {
    // Blocks follow the disk's grid, so the runs stay aligned.
    const next = Math.min(data.length, p + ZERO_BLOCK - ((offset + p) % ZERO_BLOCK));
    const zero = data.subarray(p, next).equals(zeroBlock.subarray(0, next - p));
    if (!zero && runStart < 0) runStart = p;
    if (zero && runStart >= 0) {
      runs.push({ start: runStart, end: p });
      runStart = -1;
    }
    p = next;
  }
  if (runStart >= 0) runs.push({ start: runStart, end: data.length });
  return runs;
}

/**
 * Fast sequential restore into a raw image file. Holes are not written (the
 * file is sized to the capacity, so they read back as zeros), nor are
 * all-zero 64 KiB blocks inside stored chunks (an image's zero extents rarely
 * end on a chunk boundary: ~9% of a typical restore's bytes). Aligned runs go
 * out with O_DIRECT where the filesystem supports it, several in flight while
 * the next runs are decoded and scanned.
 */
export async function restoreToFile(reader: ExtentSource, path: string): Promise<number> {
  const fd = fs.openSync(path, 'w');
  fs.ftruncateSync(fd, reader.capacity);
  const dfd = openDirect(path, fs.constants.O_WRONLY);
  try {
    await reader.forEachExtent((offset, data, retain) => {
      for (const { start: s, end: e } of nonZeroRuns(offset, data)) {
        const aligned = dfd !== null ? e - ((e - s) % ALIGN) : s;
        if (aligned > s) {
          const run = data.subarray(s, aligned);
          retain(
            (async () => {
              let off = 0;
              while (off < run.length) off += await writeAsync(dfd!, run.subarray(off), offset + s + off);
            })(),
          );
        }
        let off = aligned;
        while (off < e) off += fs.writeSync(fd, data, off, e - off, offset + off);
      }
    });
    if (dfd !== null) fs.fsyncSync(dfd);
    fs.fsyncSync(fd);
  } finally {
    if (dfd !== null) fs.closeSync(dfd);
    fs.closeSync(fd);
  }
  return reader.capacity;
}
