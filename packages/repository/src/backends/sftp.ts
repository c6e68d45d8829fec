/**
 * SFTP backend (ssh2). Same format as the local backend. Durability uses the
 * OpenSSH extensions: fsync@openssh.com on the file, posix-rename@openssh.com
 * for atomic replace, hardlink@openssh.com for create-exclusive. (SFTP has no
 * directory fsync; the server's filesystem journal orders the rename.)
 * Status code 2 (no such file) maps to NotFoundError; 4 (failure) with an
 * ENOSPC-like message maps to RepositoryFullError.
 */
import { createHash } from 'node:crypto';
import { Client } from 'ssh2';
import type { SFTPWrapper, ConnectConfig } from 'ssh2';
import { CorruptDataError, NotFoundError, RepositoryError, RepositoryFullError } from '../errors.ts';
import { dirOf, tmpName } from './backend.ts';
import type { Backend, FileStat, FileWriter } from './backend.ts';

export interface SftpOptions {
  host: string;
  port?: number;
  username: string;
  privateKey: Buffer | string;
  /** Expected host key (OpenSSH public key line or raw key); verified when given. */
  hostKey?: Buffer;
  /** Expected host key fingerprint as OpenSSH prints it (`SHA256:…`); verified when given. */
  hostKeySha256?: string;
  /** Repository directory on the server (absolute). */
  root: string;
  readyTimeout?: number;
}

function mapErr(err: unknown, what: string): unknown {
  const e = err as { code?: number; message?: string } | undefined;
  if (e?.code === 2) return new NotFoundError(what, { cause: err });
  if (e && /no space|quota/i.test(e.message ?? '')) return new RepositoryFullError(`no space left on the SFTP server while writing ${what}`, { cause: err });
  if (e instanceof Error) return new RepositoryError('BACKEND', `sftp ${what}: ${e.message}`, { cause: err });
  return err;
}

function cb<T>(fn: (done: (err: Error | null | undefined, v?: T) => void) => void, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(mapErr(err, what)) : resolve(v as T))));
}

/** The OpenSSH SHA-256 fingerprint of a raw host key: `SHA256:` + unpadded base64. */
export function sshFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Thrown when the server's host key is not the pinned one (both fingerprints named). */
export class HostKeyMismatchError extends RepositoryError {
  constructor(
    readonly host: string,
    readonly presented: string,
    readonly expected: string,
  ) {
    super('BACKEND', `${host} presents SSH host key ${presented}, not the pinned ${expected}; refusing to connect (if the server was reinstalled, confirm its new key)`);
  }
}

/** The SSH host key fingerprint a server presents, read before any sign-in. */
export async function probeSftpHostKey(host: string, port = 22, timeoutMs = 10_000): Promise<string> {
  const client = new Client();
  let seen: string | null = null;
  return new Promise<string>((resolve, reject) => {
    client.once('error', (e) => (seen ? resolve(seen) : reject(new RepositoryError('BACKEND', `cannot reach the SSH server ${host}:${port}: ${e.message}`, { cause: e }))));
    client.connect({
      host,
      port,
      username: 'vaultline-host-key-probe',
      readyTimeout: timeoutMs,
      // Record the key and refuse it: the connection ends before any credential is sent.
      hostVerifier: (key: Buffer) => {
        seen = sshFingerprint(key);
        return false;
      },
    });
  }).finally(() => client.end());
}

export class SftpBackend implements Backend {
  readonly kind = 'sftp';
  private constructor(
    private readonly client: Client,
    private readonly sftp: SFTPWrapper,
    private readonly opts: SftpOptions,
  ) {}

  get location(): string {
    return `sftp://${this.opts.username}@${this.opts.host}:${this.opts.port ?? 22}${this.opts.root}`;
  }

  static async connect(opts: SftpOptions): Promise<SftpBackend> {
    const client = new Client();
    const cfg: ConnectConfig = { host: opts.host, port: opts.port ?? 22, username: opts.username, privateKey: opts.privateKey, readyTimeout: opts.readyTimeout ?? 10_000 };
    let mismatch: HostKeyMismatchError | null = null;
    if (opts.hostKey || opts.hostKeySha256) {
      const expected = opts.hostKey;
      cfg.hostVerifier = (key: Buffer) => {
        if (opts.hostKeySha256 && sshFingerprint(key) !== opts.hostKeySha256) {
          mismatch = new HostKeyMismatchError(opts.host, sshFingerprint(key), opts.hostKeySha256);
          return false;
        }
        if (!expected) return true;
        const line = expected.toString().trim().split(/\s+/);
        const raw = line.length >= 2 ? Buffer.from(line[1]!, 'base64') : expected;
        return raw.equals(key);
      };
    }
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', (e) => reject(mismatch ?? new RepositoryError('BACKEND', `sftp connect to ${opts.host}: ${e.message}`, { cause: e })));
      client.connect(cfg);
    });
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
    const be = new SftpBackend(client, sftp, opts);
    await be.mkdirp('');
    return be;
  }

  private abs(p: string): string {
    return p === '' ? this.opts.root : `${this.opts.root}/${p}`;
  }

  async readFile(p: string): Promise<Buffer> {
    return cb<Buffer>((d) => this.sftp.readFile(this.abs(p), (e, b) => d(e, b)), p);
  }

  async readRange(p: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const handle = await cb<Buffer>((d) => this.sftp.open(this.abs(p), 'r', (e, h) => d(e, h)), p);
    try {
      const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = await cb<number>((d) => this.sftp.read(handle, buf, done, Math.min(length - done, 256 * 1024), offset + done, (e, bytes) => d(e, bytes)), p).catch((e) => {
          throw e;
        });
        if (!n) throw new CorruptDataError(`short read: ${p} has fewer than ${offset + length} bytes`);
        done += n;
      }
      return buf;
    } finally {
      await cb<void>((d) => this.sftp.close(handle, (e) => d(e)), p).catch(() => undefined);
    }
  }

  private async writeAll(handle: Buffer, data: Uint8Array, pos: number, p: string): Promise<void> {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let off = 0;
    const step = 256 * 1024;
    // Several writes in flight: SFTP is round-trip bound otherwise.
    const inflight: Promise<void>[] = [];
    while (off < buf.length) {
      const n = Math.min(step, buf.length - off);
      const o = off;
      inflight.push(cb<void>((d) => this.sftp.write(handle, buf, o, n, pos + o, (e) => d(e)), p));
      off += n;
      if (inflight.length >= 8) await inflight.shift();
    }
    await Promise.all(inflight);
  }

  async writeFileAtomic(p: string, data: Uint8Array): Promise<void> {
    await this.mkdirp(dirOf(p));
    const tmp = tmpName(this.abs(p));
    const handle = await cb<Buffer>((d) => this.sftp.open(tmp, 'w', (e, h) => d(e, h)), p);
    try {
      await this.writeAll(handle, data, 0, p);
      await cb<void>((d) => this.sftp.ext_openssh_fsync(handle, (e) => d(e)), p);
    } catch (err) {
      await cb<void>((d) => this.sftp.close(handle, (e) => d(e)), p).catch(() => undefined);
      await cb<void>((d) => this.sftp.unlink(tmp, (e) => d(e)), p).catch(() => undefined);
      throw err;
    }
    await cb<void>((d) => this.sftp.close(handle, (e) => d(e)), p);
    await cb<void>((d) => this.sftp.ext_openssh_rename(tmp, this.abs(p), (e) => d(e)), p);
  }

  async createExclusive(p: string, data: Uint8Array): Promise<boolean> {
    await this.mkdirp(dirOf(p));
    const tmpRel = tmpName(p);
    await this.writeFileAtomic(tmpRel, data);
    try {
      await cb<void>((d) => this.sftp.ext_openssh_hardlink(this.abs(tmpRel), this.abs(p), (e) => d(e)), p);
      return true;
    } catch (err) {
      if (await this.stat(p)) return false;
      throw err;
    } finally {
      await this.remove(tmpRel);
    }
  }

  async openWriter(p: string): Promise<FileWriter> {
    await this.mkdirp(dirOf(p));
    const tmp = tmpName(this.abs(p));
    const handle = await cb<Buffer>((d) => this.sftp.open(tmp, 'w', (e, h) => d(e, h)), p);
    let size = 0;
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await cb<void>((d) => this.sftp.close(handle, (e) => d(e)), p);
    };
    return {
      get size() {
        return size;
      },
      write: async (data: Uint8Array, pad = 0) => {
        // Padding is a gap left by the positional writes: it reads back as zeros.
        const pos = size + pad;
        size = pos + data.length;
        await this.writeAll(handle, data, pos, p);
      },
      commit: async () => {
        await cb<void>((d) => this.sftp.ext_openssh_fsync(handle, (e) => d(e)), p);
        await close();
        await cb<void>((d) => this.sftp.ext_openssh_rename(tmp, this.abs(p), (e) => d(e)), p);
      },
      abort: async () => {
        await close().catch(() => undefined);
        await cb<void>((d) => this.sftp.unlink(tmp, (e) => d(e)), p).catch(() => undefined);
      },
    };
  }

  async list(dir: string): Promise<string[]> {
    try {
      const entries = await cb<Array<{ filename: string }>>((d) => this.sftp.readdir(this.abs(dir), (e, l) => d(e, l)), dir);
      return entries.map((e) => e.filename).filter((n) => n !== '.' && n !== '..');
    } catch (err) {
      if (err instanceof NotFoundError) return [];
      throw err;
    }
  }

  async stat(p: string): Promise<FileStat | null> {
    try {
      const s = await cb<{ size: number; mtime: number }>((d) => this.sftp.stat(this.abs(p), (e, st) => d(e, st)), p);
      return { size: s.size, mtimeMs: s.mtime * 1000 };
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
  }

  async remove(p: string): Promise<void> {
    try {
      await cb<void>((d) => this.sftp.unlink(this.abs(p), (e) => d(e)), p);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  async removeDir(p: string): Promise<void> {
    this.made.clear();
    await cb<void>((d) => this.sftp.rmdir(this.abs(p), (e) => d(e)), p).catch(() => undefined);
  }

  private readonly made = new Set<string>();
  async mkdirp(dir: string): Promise<void> {
    if (this.made.has(dir)) return;
    const parts = this.abs(dir).split('/').filter(Boolean);
    let cur = '';
    for (const part of parts) {
      cur += `/${part}`;
      if (this.made.has(cur)) continue;
      await cb<void>((d) => this.sftp.mkdir(cur, (e) => d(e)), cur).catch(() => undefined);
      this.made.add(cur);
    }
    this.made.add(dir);
  }

  async close(): Promise<void> {
    this.client.end();
  }
}
