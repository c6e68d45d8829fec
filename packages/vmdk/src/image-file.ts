/**
 * A read-only file with positional, exact reads: a short read means the file
 * ends before a structure the format promises, which becomes a typed
 * `VmdkTruncatedError` instead of a buffer with stale or zero bytes.
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { VmdkTruncatedError } from './errors.ts';

export class ImageFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<ImageFile> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile() && !st.isBlockDevice()) throw new Error(`${path} is not a regular file or block device`);
      return new ImageFile(path, fh, st.size);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Read exactly `length` bytes at `position` into `into[intoOffset..]` (or a new buffer). */
  async readExact(position: number, length: number, what: string, into?: Buffer, intoOffset = 0): Promise<Buffer> {
    if (position + length > this.size) {
      throw new VmdkTruncatedError(`${what}: needs bytes ${position}..${position + length} but the file has ${this.size}`, { path: this.path });
    }
    const buf = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, intoOffset + done, length - done, position + done);
      if (bytesRead === 0) {
        throw new VmdkTruncatedError(`${what}: file ended after ${position + done} bytes`, { path: this.path });
      }
      done += bytesRead;
    }
    return into ? buf.subarray(intoOffset, intoOffset + length) : buf;
  }

  /** Read up to `length` bytes (fewer at end of file). */
  async readUpTo(position: number, length: number): Promise<Buffer> {
    const n = Math.max(0, Math.min(length, this.size - position));
    const buf = Buffer.allocUnsafe(n);
    let done = 0;
    while (done < n) {
      const { bytesRead } = await this.fh.read(buf, done, n - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
