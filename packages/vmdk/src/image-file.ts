/**
 * File access for the readers. Images are read through `RandomAccessFile`, so the
 * same readers work on local files (the default `localFiles` opener) and on
 * anything else that can serve byte ranges — e.g. a Transporter reading a
 * datastore over HTTPS range requests supplies its own `FileOpener`.
 *
 * `ImageFile` adds exact reads on top: a short read means the file ends before
 * a structure the format promises, which becomes a typed `VmdkTruncatedError`
 * instead of a buffer with stale or zero bytes.
 */
import { open } from 'node:fs/promises';
import { VmdkTruncatedError } from './errors.ts';

export interface RandomAccessFile {
  /** Size in bytes. */
  readonly size: number;
  /** Read up to `length` bytes at `position` into `into[intoOffset..]`; returns bytes read (0 at end of file). */
  read(position: number, length: number, into: Buffer, intoOffset: number): Promise<number>;
  close(): Promise<void>;
}

export interface FileOpener {
  /** Open `path` (as given, or joined from the descriptor's directory and an extent file name) for reading. */
  open(path: string): Promise<RandomAccessFile>;
}

/** The default opener: local files and block devices through node:fs. */
export const localFiles: FileOpener = {
  async open(path: string): Promise<RandomAccessFile> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile() && !st.isBlockDevice()) throw new Error(`${path} is not a regular file or block device`);
      return {
        size: st.size,
        read: async (position, length, into, intoOffset) => (await fh.read(into, intoOffset, length, position)).bytesRead,
        close: () => fh.close(),
      };
    } catch (e) {
      await fh.close();
      throw e;
    }
  },
};

export class ImageFile {
  private constructor(
    readonly path: string,
    private readonly file: RandomAccessFile,
    readonly size: number,
  ) {}

  static async open(path: string, opener: FileOpener = localFiles): Promise<ImageFile> {
    const f = await opener.open(path);
    return new ImageFile(path, f, f.size);
  }

  /** Read exactly `length` bytes at `position` into `into[intoOffset..]` (or a new buffer). */
  async readExact(position: number, length: number, what: string, into?: Buffer, intoOffset = 0): Promise<Buffer> {
    if (position + length > this.size) {
      throw new VmdkTruncatedError(`${what}: needs bytes ${position}..${position + length} but the file has ${this.size}`, { path: this.path });
    }
    const buf = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = await this.file.read(position + done, length - done, buf, intoOffset + done);
      if (n <= 0) throw new VmdkTruncatedError(`${what}: file ended after ${position + done} bytes`, { path: this.path });
      done += n;
    }
    return into ? buf.subarray(intoOffset, intoOffset + length) : buf;
  }

  /** Read up to `length` bytes (fewer at end of file). */
  async readUpTo(position: number, length: number): Promise<Buffer> {
    const want = Math.max(0, Math.min(length, this.size - position));
    const buf = Buffer.allocUnsafe(want);
    let done = 0;
    while (done < want) {
      const n = await this.file.read(position + done, want - done, buf, done);
      if (n <= 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
