/** Ground truth: the SHA-256 of a disk's bytes, as a backup's restore must reproduce them. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';

const MiB = 1024 ** 2;

const zeros = Buffer.alloc(4 * MiB);

/**
 * SHA-256 of the first `length` bytes of a file (zero-padded if shorter).
 * With `extents` (the file's data extents, [offset, length][]), holes are
 * hashed as zeros without being read, which makes multi-GiB sparse disks cheap.
 */
export async function sha256File(file: string, length: number, extents?: [number, number][]): Promise<string> {
  const h = createHash('sha256');
  const fd = await fs.promises.open(file, 'r');
  const hashZeros = (n: number) => {
    for (let done = 0; done < n; done += zeros.length) h.update(zeros.subarray(0, Math.min(zeros.length, n - done)));
  };
  try {
    const buf = Buffer.alloc(4 * MiB);
    const readRange = async (pos: number, end: number) => {
      while (pos < end) {
        const n = Math.min(buf.length, end - pos);
        const { bytesRead } = await fd.read(buf, 0, n, pos);
        if (bytesRead === 0) {
          hashZeros(end - pos); // past the end of the file
          return;
        }
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    };
    if (extents) {
      let pos = 0;
      for (const [off, len] of extents) {
        const start = Math.max(off, pos);
        const end = Math.min(off + len, length);
        if (end <= start) continue;
        hashZeros(start - pos);
        await readRange(start, end);
        pos = end;
      }
      hashZeros(length - pos);
      return h.digest('hex');
    }
    await readRange(0, length);
  } finally {
    await fd.close();
  }
  return h.digest('hex');
}
