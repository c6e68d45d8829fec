/**
 * Reading a mounted (read-only) filesystem on behalf of an operator, safely:
 *
 * - paths are relative to the partition's root; absolute paths, `..` and NUL
 *   bytes are refused, and so is any path through a symbolic link: links are
 *   listed (with their targets) but never followed, wherever they point;
 * - only regular files are read (opened O_NOFOLLOW after an lstat); FIFOs,
 *   sockets and device nodes are listed, never opened (the mounts are nodev
 *   anyway), and left out of archives;
 * - names are bytes: every entry carries `ref`, the base64url of its raw path,
 *   which the API accepts instead of `path` for names that are not UTF-8.
 *
 * Everything is mounted read-only, so nothing changes between an lstat and the
 * open that follows it.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import * as tar from './tar.ts';

export class BrowseError extends Error {
  override name = 'BrowseError';
  constructor(
    readonly code: 'bad_request' | 'not_found' | 'conflict',
    message: string,
  ) {
    super(message);
  }
}

const SLASH = 0x2f;

export function display(b: Buffer): string {
  return b.toString('utf8');
}

export function toRef(rel: Buffer): string {
  return rel.toString('base64url');
}

/** A user-given path (UTF-8 `path` or base64url `ref`) as validated components. */
export function parsePath(input: { path?: string | undefined; ref?: string | undefined }): Buffer[] {
  if (input.path !== undefined && input.ref !== undefined) throw new BrowseError('bad_request', 'give either path or ref, not both');
  const raw = input.ref !== undefined ? Buffer.from(input.ref, 'base64url') : Buffer.from(input.path ?? '', 'utf8');
  if (input.ref !== undefined && toRef(raw) !== input.ref.replace(/=+$/, '')) throw new BrowseError('bad_request', 'ref is not base64url');
  if (raw.includes(0)) throw new BrowseError('bad_request', 'paths cannot contain NUL bytes');
  if (raw[0] === SLASH) throw new BrowseError('bad_request', 'absolute paths are refused: give the path relative to the partition root ("" is the root)');
  const comps: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i < raw.length && raw[i] !== SLASH) continue;
    const c = raw.subarray(start, i);
    start = i + 1;
    if (c.length === 0 || (c.length === 1 && c[0] === 0x2e)) continue;
    if (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e) throw new BrowseError('bad_request', 'paths with ".." are refused');
    comps.push(Buffer.from(c));
  }
  return comps;
}

const join = (comps: Buffer[]) => Buffer.concat(comps.flatMap((c, i) => (i ? [Buffer.from('/'), c] : [c])));

export function kind(st: Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char-device';
  if (st.isBlockDevice()) return 'block-device';
  return 'other';
}

export type EntryType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device' | 'other';

export interface Resolved {
  abs: Buffer;
  rel: Buffer;
  st: Stats;
}

/** Walks `comps` under `root` with lstat, refusing links and non-directories on the way. */
export async function resolve(root: string, comps: Buffer[]): Promise<Resolved> {
  let abs = Buffer.from(root);
  let st = await lstat(abs);
  for (let i = 0; i < comps.length; i++) {
    if (!st.isDirectory()) throw new BrowseError('not_found', `${display(join(comps.slice(0, i)))} is not a directory`);
    abs = Buffer.concat([abs, Buffer.from('/'), comps[i]!]);
    try {
      st = await lstat(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BrowseError('not_found', `no such file or directory: ${display(join(comps.slice(0, i + 1)))}`);
      throw err;
    }
    if (st.isSymbolicLink() && i < comps.length - 1) {
      throw new BrowseError('conflict', `${display(join(comps.slice(0, i + 1)))} is a symbolic link; links are listed but never followed`);
    }
  }
  return { abs, rel: join(comps), st };
}

export interface Entry {
  name: string;
  ref: string;
  type: EntryType;
  size: number;
  mtime: string;
  mode: string;
  /** A symbolic link's target as stored (never followed). */
  target?: string;
  /** The name was not valid UTF-8 (shown with replacement characters; use ref). */
  nameLossy?: true;
}

function lossless(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

export interface Listing {
  path: string;
  ref: string;
  total: number;
  entries: Entry[];
  /** Give as `cursor` to get the next page; null on the last page. */
  nextCursor: string | null;
}

/** One page of a directory, in byte order of the names, starting after `cursor` (a ref of a name). */
export async function list(root: string, comps: Buffer[], page: { cursor?: string | undefined; limit: number }): Promise<Listing> {
  const dir = await resolve(root, comps);
  if (dir.st.isSymbolicLink()) throw new BrowseError('conflict', `${display(dir.rel)} is a symbolic link; links are listed but never followed`);
  if (!dir.st.isDirectory()) throw new BrowseError('conflict', `${display(dir.rel)} is not a directory`);
  const names = (await readdir(dir.abs, { encoding: 'buffer' })).sort(Buffer.compare);
  let from = 0;
  if (page.cursor) {
    const after = Buffer.from(page.cursor, 'base64url');
    let lo = 0;
    let hi = names.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(names[mid]!, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    from = lo;
  }
  const slice = names.slice(from, from + page.limit);
  const entries: Entry[] = [];
  for (const name of slice) {
    const abs = Buffer.concat([dir.abs, Buffer.from('/'), name]);
    const rel = dir.rel.length ? Buffer.concat([dir.rel, Buffer.from('/'), name]) : name;
    let st: Stats;
    try {
      st = await lstat(abs);
    } catch {
      continue;
    }
    const e: Entry = {
      name: display(name),
      ref: toRef(rel),
      type: kind(st),
      size: st.isFile() ? st.size : 0,
      mtime: st.mtime.toISOString(),
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    };
    if (!lossless(name)) e.nameLossy = true;
    if (st.isSymbolicLink()) e.target = display(await readlink(abs, { encoding: 'buffer' }));
    entries.push(e);
  }
  const last = slice[slice.length - 1];
  return { path: display(dir.rel), ref: toRef(dir.rel), total: names.length, entries, nextCursor: from + slice.length < names.length && last ? toRef(last) : null };
}

export interface OpenedFile {
  handle: FileHandle;
  size: number;
  mtime: Date;
  name: Buffer;
}

function refuseType(rel: Buffer, st: Stats): never {
  const what = kind(st);
  if (what === 'symlink') throw new BrowseError('conflict', `${display(rel)} is a symbolic link; links are listed but never followed`);
  if (what === 'directory') throw new BrowseError('conflict', `${display(rel)} is a directory; download it as an archive`);
  throw new BrowseError('conflict', `${display(rel)} is a ${what}, not a regular file: it is never read`);
}

/** Opens a regular file for reading (never a link, FIFO or device). */
export async function openFile(root: string, comps: Buffer[]): Promise<OpenedFile> {
  if (comps.length === 0) throw new BrowseError('conflict', 'the root is a directory; download it as an archive');
  const r = await resolve(root, comps);
  if (!r.st.isFile()) refuseType(r.rel, r.st);
  const handle = await open(r.abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NOCTTY | constants.O_NONBLOCK);
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    refuseType(r.rel, st);
  }
  return { handle, size: st.size, mtime: st.mtime, name: comps[comps.length - 1]! };
}

export interface ArchiveStats {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** FIFOs, sockets and device nodes left out. */
  skipped: string[];
}

/**
 * The tree at `comps` as a tar stream (pax), depth-first in name order. The
 * top entry is named after the directory (nothing for the partition root).
 */
export async function* archive(root: string, comps: Buffer[], stats: ArchiveStats): AsyncGenerator<Buffer> {
  const top = await resolve(root, comps);
  const base = comps.length ? comps[comps.length - 1]! : Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(1024 * 1024);

  async function* entry(abs: Buffer, name: Buffer, st: Stats): AsyncGenerator<Buffer> {
    const common = { path: name, mode: st.mode, mtime: st.mtime, uid: st.uid, gid: st.gid };
    if (st.isDirectory()) {
      if (name.length) {
        stats.directories++;
        yield tar.header({ ...common, type: 'directory', size: 0 });
      }
      for (const child of (await readdir(abs, { encoding: 'buffer' })).sort(Buffer.compare)) {
        const cabs = Buffer.concat([abs, Buffer.from('/'), child]);
        let cst: Stats;
        try {
          cst = await lstat(cabs);
        } catch {
          continue;
        }
        yield* entry(cabs, name.length ? Buffer.concat([name, Buffer.from('/'), child]) : child, cst);
      }
    } else if (st.isSymbolicLink()) {
      stats.symlinks++;
      yield tar.header({ ...common, type: 'symlink', size: 0, linkTarget: await readlink(abs, { encoding: 'buffer' }) });
    } else if (st.isFile()) {
      const fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NOCTTY | constants.O_NONBLOCK);
      try {
        const fst = await fh.stat();
        if (!fst.isFile()) {
          stats.skipped.push(display(name));
          return;
        }
        stats.files++;
        yield tar.header({ ...common, type: 'file', size: fst.size });
        let done = 0;
        while (done < fst.size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, fst.size - done), done);
          if (bytesRead === 0) throw new Error(`${display(name)} ended at ${done} of ${fst.size} bytes`);
          done += bytesRead;
          yield Buffer.from(buf.subarray(0, bytesRead));
        }
        stats.bytes += done;
        yield tar.padding(fst.size);
      } finally {
        await fh.close();
      }
    } else {
      stats.skipped.push(display(name));
    }
  }

  yield* entry(top.abs, base, top.st);
  yield tar.end();
}
