/**
 * The tree one export presents: read-only base files (a restore point's
 * disks, read through a callback) laid over a real local directory, the
 * overlay, that takes everything a client creates, writes, renames or removes.
 *
 * Base files are mode 0444 and refuse every change with NFS3ERR_ACCES (not
 * NFS3ERR_ROFS: the datastore as a whole is writable, only these files are
 * not). Directories holding base files exist implicitly; the first thing
 * created inside one makes the matching directory in the overlay. Nothing in
 * the overlay may take a base file's or an implied directory's name.
 *
 * Paths are kept relative ('' is the root, components joined by '/'); every
 * component a client sends is checked (no '/', NUL, '.', '..'). Before
 * touching the overlay the parent directory's realpath must equal its lexical
 * path under the overlay's realpath, so a symlink placed in the overlay is
 * never followed; the last component is opened with O_NOFOLLOW, and symlinks
 * are shown as such but cannot be read through.
 */
import { constants as fsc, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';

export enum Nfs3Status {
  OK = 0,
  PERM = 1,
  NOENT = 2,
  IO = 5,
  NXIO = 6,
  ACCES = 13,
  EXIST = 17,
  XDEV = 18,
  NODEV = 19,
  NOTDIR = 20,
  ISDIR = 21,
  INVAL = 22,
  FBIG = 27,
  NOSPC = 28,
  ROFS = 30,
  MLINK = 31,
  NAMETOOLONG = 63,
  NOTEMPTY = 66,
  DQUOT = 69,
  STALE = 70,
  BADHANDLE = 10001,
  NOT_SYNC = 10002,
  BAD_COOKIE = 10003,
  NOTSUPP = 10004,
  TOOSMALL = 10005,
  SERVERFAULT = 10006,
}

export class NfsError extends Error {
  override name = 'NfsError';
  constructor(
    readonly status: Nfs3Status,
    message: string,
  ) {
    super(message);
  }
}

/** A read-only file of the export, e.g. a disk of the restore point. */
export interface BaseFile {
  /** Relative path inside the export ('vm/vm-flat.vmdk'). */
  path: string;
  size: number;
  /** Reads exactly `length` bytes at `offset` (the caller never asks past `size`). */
  read(offset: number, length: number): Promise<Buffer>;
  mtime?: Date;
}

export interface ExportOptions {
  /** The path clients mount, e.g. '/vaultline/<recovery-id>'. */
  name: string;
  /** A real local directory that receives every change (must exist). */
  writableDir: string;
  baseFiles?: BaseFile[];
  /** Client IP addresses allowed to mount and use the export. */
  allowedClients: string[];
}

export interface ExportCounters {
  bytesReadFromBase: number;
  bytesReadFromOverlay: number;
  bytesWrittenToOverlay: number;
}

export enum FileType {
  REG = 1,
  DIR = 2,
  BLK = 3,
  CHR = 4,
  LNK = 5,
  SOCK = 6,
  FIFO = 7,
}

export interface Time {
  sec: number;
  nsec: number;
}

export interface Attr {
  type: FileType;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  used: number;
  /** The export's id: each export is its own file system to clients. */
  fsid: number;
  fileid: number;
  atime: Time;
  mtime: Time;
  ctime: Time;
}

export type Node =
  | { kind: 'base'; id: number; path: string; file: BaseFile }
  /** A directory: in the overlay (stat), implied by base files (synthetic), or both. */
  | { kind: 'dir'; id: number; path: string; stat: Stats | null; synthetic: boolean }
  | { kind: 'file' | 'link' | 'other'; id: number; path: string; stat: Stats };

/** Settable attributes (sattr3); undefined = leave as is, 'now' = the server's time. */
export interface SetAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: Time | 'now';
  mtime?: Time | 'now';
}

export type CreateHow = { mode: 'unchecked' | 'guarded'; attrs: SetAttrs } | { mode: 'exclusive'; verf: Buffer };

const MAX_NAME = 255;

const errnoStatus: Record<string, Nfs3Status> = {
  ENOENT: Nfs3Status.NOENT,
  EEXIST: Nfs3Status.EXIST,
  ENOTDIR: Nfs3Status.NOTDIR,
  EISDIR: Nfs3Status.ISDIR,
  ENOTEMPTY: Nfs3Status.NOTEMPTY,
  EACCES: Nfs3Status.ACCES,
  EPERM: Nfs3Status.PERM,
  ENOSPC: Nfs3Status.NOSPC,
  EDQUOT: Nfs3Status.DQUOT,
  ENAMETOOLONG: Nfs3Status.NAMETOOLONG,
  EXDEV: Nfs3Status.XDEV,
  ELOOP: Nfs3Status.ACCES,
  EINVAL: Nfs3Status.INVAL,
  EFBIG: Nfs3Status.FBIG,
  EROFS: Nfs3Status.ROFS,
  EMLINK: Nfs3Status.MLINK,
};

/** Turns a filesystem error into the NFS status a client should see (anything unknown is NFS3ERR_IO). */
export function toNfsError(err: unknown, what: string): NfsError {
  if (err instanceof NfsError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  return new NfsError(errnoStatus[code] ?? Nfs3Status.IO, `${what}: ${(err as Error)?.message ?? String(err)}`);
}

const join = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);
const parentOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const toTime = (ms: number): Time => ({ sec: Math.floor(ms / 1000), nsec: Math.round((ms % 1000) * 1e6) % 1e9 });
const timeSeconds = (t: Time | 'now') => (t === 'now' ? Date.now() / 1000 : t.sec + t.nsec / 1e9);

/** Checks one name a client sent for creation or removal. */
export function checkName(name: string): void {
  if (Buffer.byteLength(name) > MAX_NAME) throw new NfsError(Nfs3Status.NAMETOOLONG, `a name of ${Buffer.byteLength(name)} bytes is longer than ${MAX_NAME}`);
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new NfsError(Nfs3Status.INVAL, `the name ${JSON.stringify(name)} is not a plain file name`);
  }
}

function normalizeBasePath(p: string): string {
  const parts = p.split('/').filter((c) => c !== '');
  if (parts.length === 0) throw new Error(`base file path ${JSON.stringify(p)} names no file`);
  for (const c of parts) {
    try {
      checkName(c);
    } catch {
      throw new Error(`base file path ${JSON.stringify(p)} has the component ${JSON.stringify(c)}, which is not a plain file name`);
    }
  }
  return parts.join('/');
}

export class ExportTree {
  readonly name: string;
  readonly allowedClients: ReadonlySet<string>;
  readonly counters: ExportCounters = { bytesReadFromBase: 0, bytesReadFromOverlay: 0, bytesWrittenToOverlay: 0 };
  private readonly base = new Map<string, BaseFile>();
  /** Implied directory → names of its base children (files and directories). */
  private readonly baseDirs = new Map<string, Set<string>>([['', new Set()]]);
  private readonly pathById = new Map<number, string>();
  private readonly idByPath = new Map<string, number>();
  private nextId = 2;
  private root = '';
  private readonly started = Date.now();

  constructor(
    readonly id: number,
    private readonly opts: ExportOptions,
  ) {
    this.name = opts.name;
    this.allowedClients = new Set(opts.allowedClients.map(normalizeAddress));
    for (const f of opts.baseFiles ?? []) {
      const p = normalizeBasePath(f.path);
      if (this.base.has(p) || this.baseDirs.has(p)) throw new Error(`base file path ${JSON.stringify(f.path)} is given twice or is also a directory`);
      if (!Number.isSafeInteger(f.size) || f.size < 0) throw new Error(`base file ${JSON.stringify(f.path)} has size ${f.size}`);
      this.base.set(p, f);
      let child = p;
      for (let dir = parentOf(p); ; dir = parentOf(dir)) {
        if (this.base.has(dir)) throw new Error(`base file path ${JSON.stringify(dir)} is also the directory of ${JSON.stringify(f.path)}`);
        let set = this.baseDirs.get(dir);
        if (!set) this.baseDirs.set(dir, (set = new Set()));
        set.add(child.slice(dir ? dir.length + 1 : 0));
        if (dir === '') break;
        child = dir;
      }
    }
    this.pathById.set(1, '');
    this.idByPath.set('', 1);
  }

  /** Resolves the overlay directory; it must exist and be a directory. */
  async open(): Promise<void> {
    const real = await fs.realpath(this.opts.writableDir).catch((err: unknown) => {
      throw new Error(`writable directory ${this.opts.writableDir} of export ${this.name} cannot be used: ${(err as Error).message}`);
    });
    if (!(await fs.stat(real)).isDirectory()) throw new Error(`writable directory ${this.opts.writableDir} of export ${this.name} is not a directory`);
    this.root = real;
  }

  get rootId(): number {
    return 1;
  }

  allows(address: string): boolean {
    return this.allowedClients.has(normalizeAddress(address));
  }

  // ---- ids ------------------------------------------------------------------

  private idFor(p: string): number {
    let id = this.idByPath.get(p);
    if (id === undefined) {
      id = this.nextId++;
      this.idByPath.set(p, id);
      this.pathById.set(id, p);
    }
    return id;
  }

  private forget(p: string): void {
    for (const [q, id] of [...this.idByPath]) {
      if (q === p || q.startsWith(`${p}/`)) {
        this.idByPath.delete(q);
        this.pathById.delete(id);
      }
    }
  }

  private moveIds(from: string, to: string): void {
    this.forget(to);
    for (const [q, id] of [...this.idByPath]) {
      if (q === from || q.startsWith(`${from}/`)) {
        const moved = to + q.slice(from.length);
        this.idByPath.delete(q);
        this.idByPath.set(moved, id);
        this.pathById.set(id, moved);
      }
    }
  }

  /** The node behind a file id from a handle; NFS3ERR_STALE when it is gone. */
  async byId(id: number): Promise<Node> {
    const p = this.pathById.get(id);
    if (p === undefined) throw new NfsError(Nfs3Status.STALE, `file id ${id} is not (or no longer) known in export ${this.name}`);
    try {
      return await this.resolve(p);
    } catch (err) {
      if (err instanceof NfsError && err.status === Nfs3Status.NOENT) throw new NfsError(Nfs3Status.STALE, `file id ${id} was removed`);
      throw err;
    }
  }

  // ---- overlay paths --------------------------------------------------------

  private real(p: string): string {
    return p ? path.join(this.root, ...p.split('/')) : this.root;
  }

  /** Refuses a directory path of the overlay that goes through a symlink (or is missing: NOENT). */
  private async safeDir(p: string): Promise<string> {
    const lexical = this.real(p);
    let resolved: string;
    try {
      resolved = await fs.realpath(lexical);
    } catch (err) {
      throw toNfsError(err, `overlay directory ${JSON.stringify(p)}`);
    }
    if (resolved !== lexical) throw new NfsError(Nfs3Status.ACCES, `overlay directory ${JSON.stringify(p)} goes through a symlink; refusing to follow it`);
    return lexical;
  }

  /** Makes the overlay directories for an implied directory (and its parents) when they are missing. */
  private async ensureOverlayDir(p: string): Promise<string> {
    if (p === '') return this.root;
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      await this.safeDir(parentOf(sub));
      try {
        await fs.mkdir(this.real(sub), { mode: 0o755 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw toNfsError(err, `making overlay directory ${JSON.stringify(sub)}`);
      }
    }
    return this.safeDir(p);
  }

  private async lstatOverlay(p: string): Promise<Stats | null> {
    try {
      await this.safeDir(parentOf(p));
      return await fs.lstat(this.real(p));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || (err instanceof NfsError && (err.status === Nfs3Status.NOENT || err.status === Nfs3Status.NOTDIR))) return null;
      throw toNfsError(err, `looking up ${JSON.stringify(p)} in the overlay`);
    }
  }

  // ---- nodes ----------------------------------------------------------------

  async resolve(p: string): Promise<Node> {
    const base = this.base.get(p);
    if (base) return { kind: 'base', id: this.idFor(p), path: p, file: base };
    if (p === '' || this.baseDirs.has(p)) {
      const stat = await this.lstatOverlay(p).catch(() => null);
      return { kind: 'dir', id: this.idFor(p), path: p, stat: stat?.isDirectory() ? stat : null, synthetic: p !== '' };
    }
    for (let dir = parentOf(p); dir !== ''; dir = parentOf(dir)) {
      if (this.base.has(dir)) throw new NfsError(Nfs3Status.NOTDIR, `${JSON.stringify(dir)} is a file`);
    }
    const stat = await this.lstatOverlay(p);
    if (!stat) throw new NfsError(Nfs3Status.NOENT, `${JSON.stringify(p)} does not exist`);
    const kind = stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : stat.isSymbolicLink() ? 'link' : 'other';
    if (kind === 'dir') return { kind, id: this.idFor(p), path: p, stat, synthetic: false };
    return { kind, id: this.idFor(p), path: p, stat };
  }

  attr(n: Node): Attr {
    if (n.kind === 'base') {
      const t = toTime(n.file.mtime?.getTime() ?? this.started);
      return { type: FileType.REG, mode: 0o444, nlink: 1, uid: 0, gid: 0, size: n.file.size, used: n.file.size, fsid: this.id, fileid: n.id, atime: t, mtime: t, ctime: t };
    }
    if (n.kind === 'dir' && !n.stat) {
      const t = toTime(this.started);
      return { type: FileType.DIR, mode: 0o755, nlink: 2, uid: 0, gid: 0, size: 4096, used: 4096, fsid: this.id, fileid: n.id, atime: t, mtime: t, ctime: t };
    }
    const s = n.stat as Stats;
    const type = s.isDirectory() ? FileType.DIR : s.isFile() ? FileType.REG : s.isSymbolicLink() ? FileType.LNK : s.isFIFO() ? FileType.FIFO : s.isSocket() ? FileType.SOCK : s.isBlockDevice() ? FileType.BLK : FileType.CHR;
    return {
      type,
      mode: s.mode & 0o7777,
      nlink: s.nlink,
      uid: s.uid,
      gid: s.gid,
      size: s.size,
      used: s.blocks * 512,
      fsid: this.id,
      fileid: n.id,
      atime: toTime(s.atimeMs),
      mtime: toTime(s.mtimeMs),
      ctime: toTime(s.ctimeMs),
    };
  }

  async lookup(dir: Node, name: string): Promise<Node> {
    if (dir.kind !== 'dir') throw new NfsError(Nfs3Status.NOTDIR, `${JSON.stringify(dir.path)} is not a directory`);
    if (name === '.') return dir;
    if (name === '..') return this.resolve(parentOf(dir.path));
    checkName(name);
    return this.resolve(join(dir.path, name));
  }

  /** The directory's entries, sorted by name: base entries first take their names, the overlay adds the rest. */
  async list(dir: Node): Promise<string[]> {
    if (dir.kind !== 'dir') throw new NfsError(Nfs3Status.NOTDIR, `${JSON.stringify(dir.path)} is not a directory`);
    const names = new Set(this.baseDirs.get(dir.path) ?? []);
    if (dir.stat) {
      try {
        const real = await this.safeDir(dir.path);
        for (const e of await fs.readdir(real)) names.add(e);
      } catch (err) {
        throw toNfsError(err, `listing ${JSON.stringify(dir.path)}`);
      }
    }
    return [...names].sort();
  }

  // ---- data -----------------------------------------------------------------

  async read(n: Node, offset: number, count: number): Promise<{ data: Buffer; eof: boolean }> {
    if (n.kind === 'dir') throw new NfsError(Nfs3Status.ISDIR, `${JSON.stringify(n.path)} is a directory`);
    if (n.kind === 'base') {
      const size = n.file.size;
      if (offset >= size || count === 0) return { data: Buffer.alloc(0), eof: offset >= size };
      const len = Math.min(count, size - offset);
      let data: Buffer;
      try {
        data = await n.file.read(offset, len);
      } catch (err) {
        throw new NfsError(Nfs3Status.IO, `reading base file ${JSON.stringify(n.path)} at ${offset}: ${(err as Error).message}`);
      }
      if (data.length !== len) throw new NfsError(Nfs3Status.IO, `base file ${JSON.stringify(n.path)} gave ${data.length} bytes at ${offset}, ${len} expected`);
      this.counters.bytesReadFromBase += len;
      return { data, eof: offset + len >= size };
    }
    if (n.kind !== 'file') throw new NfsError(Nfs3Status.INVAL, `${JSON.stringify(n.path)} is not a regular file`);
    const fh = await this.openOverlay(n.path, fsc.O_RDONLY);
    try {
      const size = (await fh.stat()).size;
      const want = Math.max(0, Math.min(count, size - offset));
      const data = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(data, got, want - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      this.counters.bytesReadFromOverlay += got;
      return { data: data.subarray(0, got), eof: offset + got >= size };
    } catch (err) {
      throw toNfsError(err, `reading ${JSON.stringify(n.path)}`);
    } finally {
      await fh.close();
    }
  }

  private refuseBase(n: Node, what: string): void {
    if (n.kind === 'base') throw new NfsError(Nfs3Status.ACCES, `${JSON.stringify(n.path)} is a read-only file of the restore point; cannot ${what}`);
  }

  private async openOverlay(p: string, flags: number, mode?: number): Promise<fs.FileHandle> {
    await this.safeDir(parentOf(p));
    try {
      return await fs.open(this.real(p), flags | fsc.O_NOFOLLOW, mode);
    } catch (err) {
      throw toNfsError(err, `opening ${JSON.stringify(p)}`);
    }
  }

  /** Writes data; with `sync` it is on disk before this returns. */
  async write(n: Node, offset: number, data: Buffer, sync: boolean): Promise<void> {
    this.refuseBase(n, 'write');
    if (n.kind === 'dir') throw new NfsError(Nfs3Status.ISDIR, `${JSON.stringify(n.path)} is a directory`);
    if (n.kind !== 'file') throw new NfsError(Nfs3Status.INVAL, `${JSON.stringify(n.path)} is not a regular file`);
    const fh = await this.openOverlay(n.path, fsc.O_WRONLY);
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
      if (sync) await fh.datasync();
      this.counters.bytesWrittenToOverlay += data.length;
    } catch (err) {
      throw toNfsError(err, `writing ${JSON.stringify(n.path)}`);
    } finally {
      await fh.close();
    }
  }

  async commit(n: Node): Promise<void> {
    if (n.kind === 'base') return; // nothing of it is ever written
    if (n.kind !== 'file') return;
    const fh = await this.openOverlay(n.path, fsc.O_RDONLY);
    try {
      await fh.sync();
    } catch (err) {
      throw toNfsError(err, `committing ${JSON.stringify(n.path)}`);
    } finally {
      await fh.close();
    }
  }

  // ---- metadata -------------------------------------------------------------

  async setattr(n: Node, a: SetAttrs): Promise<void> {
    const changes = a.mode !== undefined || a.size !== undefined || a.atime !== undefined || a.mtime !== undefined;
    if (!changes) return; // uid/gid are accepted and ignored: files belong to the appliance
    this.refuseBase(n, 'change its attributes');
    if (n.kind === 'link' || n.kind === 'other') throw new NfsError(Nfs3Status.ACCES, `${JSON.stringify(n.path)} is not a regular file or directory`);
    if (n.kind === 'dir') {
      if (a.size !== undefined) throw new NfsError(Nfs3Status.ISDIR, `${JSON.stringify(n.path)} is a directory; it has no size to set`);
      await this.ensureOverlayDir(n.path);
    }
    const flags = n.kind === 'dir' ? fsc.O_RDONLY | fsc.O_DIRECTORY : a.size !== undefined ? fsc.O_WRONLY : fsc.O_RDONLY;
    const fh = n.path === '' ? await fs.open(this.root, flags) : await this.openOverlay(n.path, flags);
    try {
      await this.applyAttrs(fh, a);
    } catch (err) {
      throw toNfsError(err, `setting attributes of ${JSON.stringify(n.path)}`);
    } finally {
      await fh.close();
    }
  }

  private async applyAttrs(fh: fs.FileHandle, a: SetAttrs): Promise<void> {
    if (a.size !== undefined) await fh.truncate(a.size);
    if (a.mode !== undefined) await fh.chmod(a.mode & 0o7777);
    if (a.atime !== undefined || a.mtime !== undefined) {
      const st = await fh.stat();
      await fh.utimes(a.atime === undefined ? st.atimeMs / 1000 : timeSeconds(a.atime), a.mtime === undefined ? st.mtimeMs / 1000 : timeSeconds(a.mtime));
    }
  }

  /** Refuses a new overlay name that would hide a base file or an implied directory. */
  private refuseShadow(p: string, status: Nfs3Status): void {
    if (this.base.has(p)) throw new NfsError(status, `${JSON.stringify(p)} is a read-only file of the restore point`);
    if (this.baseDirs.has(p)) throw new NfsError(status, `${JSON.stringify(p)} is a directory of the restore point`);
  }

  private dirOf(dir: Node): void {
    if (dir.kind !== 'dir') throw new NfsError(Nfs3Status.NOTDIR, `${JSON.stringify(dir.path)} is not a directory`);
  }

  async create(dir: Node, name: string, how: CreateHow): Promise<Node> {
    this.dirOf(dir);
    checkName(name);
    const p = join(dir.path, name);
    this.refuseShadow(p, how.mode === 'unchecked' && this.base.has(p) ? Nfs3Status.ACCES : Nfs3Status.EXIST);
    await this.ensureOverlayDir(dir.path);
    const mode = how.mode === 'exclusive' ? 0o644 : (how.attrs.mode ?? 0o644) & 0o7777;
    let fh: fs.FileHandle | null = null;
    try {
      fh = await this.openOverlay(p, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode);
    } catch (err) {
      if (!(err instanceof NfsError && err.status === Nfs3Status.EXIST)) throw err;
      const existing = await this.resolve(p);
      if (how.mode === 'guarded') throw new NfsError(Nfs3Status.EXIST, `${JSON.stringify(p)} exists`);
      if (existing.kind !== 'file') throw new NfsError(Nfs3Status.EXIST, `${JSON.stringify(p)} exists and is not a regular file`);
      if (how.mode === 'exclusive') {
        const t = this.attr(existing);
        if (t.atime.sec !== how.verf.readUInt32BE(0) || t.mtime.sec !== how.verf.readUInt32BE(4)) throw new NfsError(Nfs3Status.EXIST, `${JSON.stringify(p)} exists (made by another exclusive create)`);
        return existing;
      }
      // UNCHECKED on an existing file: apply the attributes (a size 0 truncates it).
      await this.setattr(existing, { ...how.attrs, mode: undefined });
      return this.resolve(p);
    }
    try {
      if (how.mode === 'exclusive') await fh.utimes(how.verf.readUInt32BE(0), how.verf.readUInt32BE(4));
      else await this.applyAttrs(fh, { ...how.attrs, mode: undefined });
    } catch (err) {
      throw toNfsError(err, `setting attributes of new file ${JSON.stringify(p)}`);
    } finally {
      await fh.close();
    }
    return this.resolve(p);
  }

  async mkdir(dir: Node, name: string, attrs: SetAttrs): Promise<Node> {
    this.dirOf(dir);
    checkName(name);
    const p = join(dir.path, name);
    this.refuseShadow(p, Nfs3Status.EXIST);
    const parent = await this.ensureOverlayDir(dir.path);
    try {
      await fs.mkdir(path.join(parent, name), { mode: (attrs.mode ?? 0o755) & 0o7777 });
    } catch (err) {
      throw toNfsError(err, `making directory ${JSON.stringify(p)}`);
    }
    const n = await this.resolve(p);
    if (attrs.atime !== undefined || attrs.mtime !== undefined) await this.setattr(n, { atime: attrs.atime, mtime: attrs.mtime });
    return n;
  }

  async remove(dir: Node, name: string, directory: boolean): Promise<void> {
    this.dirOf(dir);
    checkName(name);
    const p = join(dir.path, name);
    this.refuseShadow(p, Nfs3Status.ACCES);
    const n = await this.resolve(p);
    if (directory && n.kind !== 'dir') throw new NfsError(Nfs3Status.NOTDIR, `${JSON.stringify(p)} is not a directory`);
    if (!directory && n.kind === 'dir') throw new NfsError(Nfs3Status.ISDIR, `${JSON.stringify(p)} is a directory`);
    const parent = await this.safeDir(dir.path);
    try {
      if (directory) await fs.rmdir(path.join(parent, name));
      else await fs.unlink(path.join(parent, name));
    } catch (err) {
      throw toNfsError(err, `removing ${JSON.stringify(p)}`);
    }
    this.forget(p);
  }

  async rename(fromDir: Node, fromName: string, toDir: Node, toName: string): Promise<void> {
    this.dirOf(fromDir);
    this.dirOf(toDir);
    checkName(fromName);
    checkName(toName);
    const from = join(fromDir.path, fromName);
    const to = join(toDir.path, toName);
    this.refuseShadow(from, Nfs3Status.ACCES);
    this.refuseShadow(to, Nfs3Status.ACCES);
    await this.resolve(from);
    const src = await this.safeDir(fromDir.path);
    const dst = await this.ensureOverlayDir(toDir.path);
    try {
      await fs.rename(path.join(src, fromName), path.join(dst, toName));
    } catch (err) {
      throw toNfsError(err, `renaming ${JSON.stringify(from)} to ${JSON.stringify(to)}`);
    }
    this.moveIds(from, to);
  }

  async fsstat(): Promise<{ tbytes: number; fbytes: number; abytes: number; tfiles: number; ffiles: number; afiles: number }> {
    const s = await fs.statfs(this.root);
    return { tbytes: s.blocks * s.bsize, fbytes: s.bfree * s.bsize, abytes: s.bavail * s.bsize, tfiles: s.files, ffiles: s.ffree, afiles: s.ffree };
  }
}

/** '::ffff:127.0.0.1' and '127.0.0.1' are the same client. */
export function normalizeAddress(a: string): string {
  const lower = a.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}
