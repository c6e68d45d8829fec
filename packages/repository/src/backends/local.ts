/**
 * Local filesystem backend (the default). Also exposes `absolute()` and a pread
 * fd cache so the repository's hot paths can bypass the generic methods; the
 * on-disk bytes are the same either way.
 *
 * Hardened (`LocalBackend.open(root, { hardened: true })`): the storage itself refuses to delete what a
 * restore point locks, like S3 Object Lock. Files are made immutable by the root helper
 * (immutable-helper.ts, which also says who may do what); `retention` is present when this process can
 * lock (root, on a filesystem with the immutable attribute), else `cannotLock` says why. `remove` of a
 * locked file fails with ImmutableError in every process, and the kernel refuses it to anyone else.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { CorruptDataError, ImmutableError, NotFoundError, classifyFsError } from '../errors.ts';
import { dirOf, tmpName } from './backend.ts';
import { ALIGN, DirectAppender, DirectWindowReader, alignedBuffer, openDirect } from './direct.ts';
import { ImmutableHelper } from './immutable-helper.ts';
import type { Backend, FileStat, FileWriter, LocalFiles, Retention } from './backend.ts';

async function fsyncDirAsync(dir: string): Promise<void> {
  const h = await fsp.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * mkdir -p that gives up instead of spinning. Node's recursive mkdir retries a
 * directory for as long as its parent exists and mkdir answers ENOENT, which is
 * forever on kernel filesystems (`mkdir /proc/x` is ENOENT under an existing
 * /proc): the thread spins at 100% CPU. Here each level is tried at most twice.
 */
function mkdirs(dir: string): void {
  const once = () => {
    try {
      fs.mkdirSync(dir);
    } catch (err) {
      if (!((err as NodeJS.ErrnoException).code === 'EEXIST' && fs.statSync(dir).isDirectory())) throw err;
    }
  };
  try {
    once();
  } catch (err) {
    const parent = path.dirname(dir);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) throw err;
    mkdirs(parent);
    once();
  }
}

async function mkdirsAsync(dir: string): Promise<void> {
  const once = async () => {
    try {
      await fsp.mkdir(dir);
    } catch (err) {
      if (!((err as NodeJS.ErrnoException).code === 'EEXIST' && (await fsp.stat(dir)).isDirectory())) throw err;
    }
  };
  try {
    await once();
  } catch (err) {
    const parent = path.dirname(dir);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) throw err;
    await mkdirsAsync(parent);
    await once();
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class LocalBackend implements Backend, LocalFiles {
  readonly kind = 'local';
  readonly local: LocalFiles = this;
  readonly root: string;
  private readonly fds = new Map<string, number>();
  /** Present when the repository is hardened (see the header). */
  private readonly immutable: ImmutableHelper | undefined;

  constructor(root: string, immutable?: ImmutableHelper) {
    this.root = path.resolve(root);
    this.immutable = immutable;
  }

  /** A backend at `root`; hardened, it first finds out whether this process can lock there. */
  static async open(root: string, opts: { hardened?: boolean } = {}): Promise<LocalBackend> {
    const resolved = path.resolve(root);
    return new LocalBackend(resolved, opts.hardened ? await ImmutableHelper.open(resolved) : undefined);
  }

  get hardened(): boolean {
    return this.immutable !== undefined;
  }

  get retention(): Retention | undefined {
    const helper = this.immutable;
    return helper && !helper.cannotLock ? helper : undefined;
  }

  get cannotLock(): string | undefined {
    return this.immutable?.cannotLock;
  }

  /** EPERM on a hardened repository is the immutable attribute (with the lock date when a record has it). */
  private async immutableRefusal(err: unknown, p: string): Promise<unknown> {
    if (!this.immutable || (err as NodeJS.ErrnoException).code !== 'EPERM') return err;
    const until = await this.immutable.recorded(p).catch(() => null);
    if (until && until.getTime() > Date.now()) return new ImmutableError(`${p} is immutable until ${until.toISOString()}`);
    return new ImmutableError(
      until
        ? `${p} was immutable until ${until.toISOString()}; only root (the Transporter) can clear the attribute now that the lock has ended`
        : `${p} has the immutable attribute set (chattr +i) without a lock record; an operator must check and clear it`,
    );
  }

  get location(): string {
    return `file://${this.root}`;
  }

  absolute(p: string): string {
    return p === '' ? this.root : path.join(this.root, p);
  }

  async readFile(p: string): Promise<Buffer> {
    try {
      return await fsp.readFile(this.absolute(p));
    } catch (err) {
      throw classifyFsError(err, p);
    }
  }

  /** Cached read-only fd (packs are immutable once named). */
  fdFor(p: string): number {
    let fd = this.fds.get(p);
    if (fd === undefined) {
      try {
        fd = fs.openSync(this.absolute(p), 'r');
      } catch (err) {
        throw classifyFsError(err, p);
      }
      if (this.fds.size > 256) this.dropFds();
      this.fds.set(p, fd);
    }
    return fd;
  }

  private directFds = new Map<string, number | null>();
  private directScratch: Buffer | null = null;

  /**
   * Read a range through O_DIRECT (aligned covering read into a reused aligned
   * buffer, then copied into `into`); falls back to a buffered read. Used for
   * scattered reads of pack data that is not in the page cache (merges).
   */
  readRangeDirect(p: string, offset: number, length: number, into: Buffer): Buffer {
    let fd = this.directFds.get(p);
    if (fd === undefined) {
      fd = openDirect(this.absolute(p), fs.constants.O_RDONLY);
      if (this.directFds.size > 256) this.dropFds();
      this.directFds.set(p, fd);
    }
    const start = offset - (offset % ALIGN);
    const end = Math.ceil((offset + length) / ALIGN) * ALIGN;
    if (fd === null || end - start > 16 * 1024 * 1024) return this.readRangeSync(p, offset, length, into);
    if (!this.directScratch || this.directScratch.length < end - start) this.directScratch = alignedBuffer(Math.max(end - start, 1024 * 1024));
    const buf = this.directScratch;
    let got = 0;
    while (got < end - start) {
      const n = fs.readSync(fd, buf, got, end - start - got, start + got);
      if (n === 0) break;
      got += n;
    }
    if (got < offset + length - start) throw new CorruptDataError(`short read: ${p} has fewer than ${offset + length} bytes`);
    buf.copy(into, 0, offset - start, offset - start + length);
    return into.subarray(0, length);
  }

  /** O_DIRECT windowed reader for sequential scans of packs (restore). */
  windowReader(): DirectWindowReader {
    return new DirectWindowReader((p) => this.absolute(p));
  }

  dropFds(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
    for (const fd of this.directFds.values()) if (fd !== null) fs.closeSync(fd);
    this.directFds.clear();
  }

  readRangeSync(p: string, offset: number, length: number, into?: Buffer): Buffer {
    const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    const fd = this.fdFor(p);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) throw new CorruptDataError(`short read: ${p} has fewer than ${offset + length} bytes`);
      done += n;
    }
    return buf;
  }

  async readRange(p: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.readRangeSync(p, offset, length, into);
  }

  /** Asynchronous (libuv pool), so several metadata files can become durable at once. */
  async writeFileAtomic(p: string, data: Uint8Array): Promise<void> {
    const abs = this.absolute(p);
    const tmp = tmpName(abs);
    try {
      mkdirs(path.dirname(abs));
      const h = await fsp.open(tmp, 'w', 0o640);
      try {
        let off = 0;
        while (off < data.length) off += (await h.write(data, off, data.length - off)).bytesWritten;
        await h.sync();
      } finally {
        await h.close();
      }
      fs.renameSync(tmp, abs);
      await fsyncDirAsync(path.dirname(abs));
    } catch (err) {
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* already gone */
      }
      throw classifyFsError(await this.immutableRefusal(err, p), p);
    }
  }

  async createExclusive(p: string, data: Uint8Array): Promise<boolean> {
    const abs = this.absolute(p);
    mkdirs(path.dirname(abs));
    // Write the content to a tmp file, then link() it: link fails with EEXIST
    // atomically, and readers never observe a half-written file.
    const tmp = tmpName(abs);
    try {
      fs.writeFileSync(tmp, data);
      const fd = fs.openSync(tmp, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      try {
        fs.linkSync(tmp, abs);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
      fsyncDir(path.dirname(abs));
      return true;
    } catch (err) {
      throw classifyFsError(err, p);
    } finally {
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* ignore */
      }
    }
  }

  async openWriter(p: string): Promise<FileWriter> {
    const abs = this.absolute(p);
    const tmp = tmpName(abs);
    let fd: number;
    let direct: DirectAppender | null = null;
    try {
      mkdirs(path.dirname(abs));
      const dfd = openDirect(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC);
      if (dfd !== null) {
        fd = dfd;
        direct = new DirectAppender(fd);
      } else fd = fs.openSync(tmp, 'w', 0o640);
    } catch (err) {
      throw classifyFsError(err, p);
    }
    let size = 0;
    let closed = false;
    return {
      get size() {
        return size;
      },
      async write(data: Uint8Array, pad = 0) {
        try {
          if (direct) await direct.write(data, pad);
          else {
            const all = pad > 0 ? [Buffer.alloc(pad), data] : [data];
            for (const d of all) {
              let off = 0;
              while (off < d.length) off += fs.writeSync(fd, d, off, d.length - off);
            }
          }
          size += pad + data.length;
        } catch (err) {
          throw classifyFsError(err, p);
        }
      },
      async commit() {
        try {
          // fsync in the libuv pool so the caller's pipeline keeps running.
          if (direct) await direct.finish();
          else await new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
          fs.closeSync(fd);
          closed = true;
          fs.renameSync(tmp, abs);
          await fsyncDirAsync(path.dirname(abs));
        } catch (err) {
          throw classifyFsError(err, p);
        }
      },
      async abort() {
        direct?.release();
        if (!closed) {
          closed = true;
          try {
            fs.closeSync(fd);
          } catch {
            /* ignore */
          }
        }
        try {
          fs.unlinkSync(tmp);
        } catch {
          /* ignore */
        }
      },
    };
  }

  async list(dir: string): Promise<string[]> {
    try {
      return fs.readdirSync(this.absolute(dir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async stat(p: string): Promise<FileStat | null> {
    try {
      const s = fs.statSync(this.absolute(p));
      return { size: s.size, mtimeMs: s.mtimeMs };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async remove(p: string): Promise<void> {
    const dfd = this.directFds.get(p);
    if (dfd != null) fs.closeSync(dfd);
    this.directFds.delete(p);
    const fd = this.fds.get(p);
    if (fd !== undefined) {
      fs.closeSync(fd);
      this.fds.delete(p);
    }
    // Refuses while locked; clears the attribute of a file whose lock has ended (root only).
    await this.immutable?.release(p);
    try {
      fs.unlinkSync(this.absolute(p));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw await this.immutableRefusal(err, p);
    }
  }

  async removeDir(p: string): Promise<void> {
    try {
      fs.rmdirSync(this.absolute(p));
    } catch {
      /* missing or not empty */
    }
  }

  async mkdirp(dir: string): Promise<void> {
    await mkdirsAsync(this.absolute(dir));
  }

  async close(): Promise<void> {
    this.dropFds();
  }
}

export function ensureNotFound(err: unknown): boolean {
  return err instanceof NotFoundError;
}
export { dirOf };
