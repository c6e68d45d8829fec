/**
 * NFS version 3 (RFC 1813), program 100003, over the export trees.
 *
 * Every procedure is answered; SYMLINK, MKNOD and LINK with NFS3ERR_NOTSUPP,
 * READLINK too (symlinks of the overlay are listed, never followed). Replies
 * carry post-operation attributes where cheap and no pre-operation
 * attributes (allowed by the RFC; clients then just revalidate).
 *
 * WRITE: UNSTABLE data goes to the page cache and is reported UNSTABLE with
 * the server's verifier (random per start, so clients resend after a
 * restart); DATA_SYNC / FILE_SYNC and COMMIT fsync before answering.
 */
import type { RpcCall } from './rpc.ts';
import type { ExportRegistry } from './registry.ts';
import { NfsError, Nfs3Status, type Attr, type CreateHow, type ExportTree, type Node, type SetAttrs, type Time } from './tree.ts';
import { XdrWriter, type XdrReader } from './xdr.ts';

export const NFS_PROGRAM = 100003;
export const NFS_VERSION = 3;

export const MiB = 1024 * 1024;
export const RTMAX = MiB;
export const WTMAX = MiB;
const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;
const MAX_NAME_ON_WIRE = 1024;

export enum Proc {
  NULL = 0,
  GETATTR = 1,
  SETATTR = 2,
  LOOKUP = 3,
  ACCESS = 4,
  READLINK = 5,
  READ = 6,
  WRITE = 7,
  CREATE = 8,
  MKDIR = 9,
  SYMLINK = 10,
  MKNOD = 11,
  REMOVE = 12,
  RMDIR = 13,
  RENAME = 14,
  LINK = 15,
  READDIR = 16,
  READDIRPLUS = 17,
  FSSTAT = 18,
  FSINFO = 19,
  PATHCONF = 20,
  COMMIT = 21,
}

/** How many zero words the failure body of each procedure has (absent post_op_attr = 1, wcc_data = 2). */
const FAIL_WORDS = [0, 0, 2, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 4, 3, 1, 1, 1, 1, 1, 2];

const ACCESS_READ = 0x1;
const ACCESS_LOOKUP = 0x2;
const ACCESS_MODIFY = 0x4;
const ACCESS_EXTEND = 0x8;
const ACCESS_DELETE = 0x10;
const ACCESS_EXECUTE = 0x20;

const STABLE_UNSTABLE = 0;
const STABLE_FILE_SYNC = 2;

export interface NfsCallContext {
  /** The client's IP address (the TCP peer). */
  address: string;
  /** The write verifier of this server start. */
  writeVerifier: Buffer;
  /** Called with failures worth an operator's attention (never with data). */
  warn(message: string): void;
}

function writeTime(w: XdrWriter, t: Time): void {
  w.u32(t.sec).u32(t.nsec);
}

function fattr(w: XdrWriter, a: Attr): void {
  w.u32(a.type).u32(a.mode).u32(a.nlink).u32(a.uid).u32(a.gid).u64(a.size).u64(a.used).u32(0).u32(0).u64(a.fsid).u64(a.fileid);
  writeTime(w, a.atime);
  writeTime(w, a.mtime);
  writeTime(w, a.ctime);
}

function postOp(w: XdrWriter, a: Attr | null): void {
  if (a) fattr(w.u32(1), a);
  else w.u32(0);
}

/** wcc_data without pre-operation attributes. */
function wcc(w: XdrWriter, after: Attr | null): void {
  postOp(w.u32(0), after);
}

function readTime(r: XdrReader): Time | 'now' | undefined {
  const how = r.u32('time_how');
  if (how === 0) return undefined;
  if (how === 1) return 'now';
  if (how === 2) return { sec: r.u32('seconds'), nsec: r.u32('nseconds') };
  throw new NfsError(Nfs3Status.INVAL, `time_how ${how} is not DONT_CHANGE, SET_TO_SERVER_TIME or SET_TO_CLIENT_TIME`);
}

function readSattr(r: XdrReader): SetAttrs {
  const a: SetAttrs = {};
  if (r.bool('set_mode')) a.mode = r.u32('mode');
  if (r.bool('set_uid')) a.uid = r.u32('uid');
  if (r.bool('set_gid')) a.gid = r.u32('gid');
  if (r.bool('set_size')) a.size = r.safeU64('size');
  a.atime = readTime(r);
  a.mtime = readTime(r);
  return a;
}

const readFh = (r: XdrReader) => r.opaque(64, 'file handle');

export class Nfs3Program {
  constructor(private readonly registry: ExportRegistry) {}

  /** The reply body (after the accepted-SUCCESS header), or null for an unknown procedure. */
  async call(call: RpcCall, ctx: NfsCallContext): Promise<XdrWriter | null> {
    if (call.proc === Proc.NULL) return new XdrWriter();
    if (call.proc > Proc.COMMIT) return null;
    const w = new XdrWriter();
    try {
      await this.dispatch(call.proc, call.args, ctx, w.u32(Nfs3Status.OK));
      return w;
    } catch (err) {
      if (!(err instanceof NfsError)) throw err;
      if (err.status === Nfs3Status.IO || err.status === Nfs3Status.SERVERFAULT) ctx.warn(`NFS ${Proc[call.proc]} from ${ctx.address} failed: ${err.message}`);
      const f = new XdrWriter().u32(err.status);
      for (let i = 0; i < (FAIL_WORDS[call.proc] ?? 0); i++) f.u32(0);
      return f;
    }
  }

  private async node(r: XdrReader, ctx: NfsCallContext): Promise<{ tree: ExportTree; node: Node }> {
    return this.registry.resolve(readFh(r), ctx.address);
  }

  private async dirop(r: XdrReader, ctx: NfsCallContext): Promise<{ tree: ExportTree; dir: Node; name: string }> {
    const { tree, node } = await this.node(r, ctx);
    return { tree, dir: node, name: r.string(MAX_NAME_ON_WIRE, 'file name') };
  }

  private async dispatch(proc: Proc, r: XdrReader, ctx: NfsCallContext, w: XdrWriter): Promise<void> {
    switch (proc) {
      case Proc.GETATTR: {
        const { tree, node } = await this.node(r, ctx);
        fattr(w, tree.attr(node));
        return;
      }
      case Proc.SETATTR: {
        const { tree, node } = await this.node(r, ctx);
        const attrs = readSattr(r);
        if (r.bool('guard check')) {
          const ctime = { sec: r.u32('ctime seconds'), nsec: r.u32('ctime nseconds') };
          const now = tree.attr(node).ctime;
          if (now.sec !== ctime.sec || now.nsec !== ctime.nsec) throw new NfsError(Nfs3Status.NOT_SYNC, 'the file changed since the client looked (ctime guard)');
        }
        await tree.setattr(node, attrs);
        wcc(w, tree.attr(await tree.resolve(node.path)));
        return;
      }
      case Proc.LOOKUP: {
        const { tree, dir, name } = await this.dirop(r, ctx);
        let found: Node;
        try {
          found = await tree.lookup(dir, name);
        } catch (err) {
          // NOENT is the common answer (clients probe for files): it goes out without a warning.
          if (err instanceof NfsError && err.status === Nfs3Status.INVAL) throw new NfsError(Nfs3Status.NOENT, err.message);
          throw err;
        }
        w.opaque(this.registry.encode(tree, found.id));
        postOp(w, tree.attr(found));
        postOp(w, tree.attr(dir));
        return;
      }
      case Proc.ACCESS: {
        const { tree, node } = await this.node(r, ctx);
        const wanted = r.u32('access');
        const allowed =
          node.kind === 'base'
            ? ACCESS_READ
            : node.kind === 'dir'
              ? ACCESS_READ | ACCESS_LOOKUP | ACCESS_MODIFY | ACCESS_EXTEND | ACCESS_DELETE
              : node.kind === 'file'
                ? ACCESS_READ | ACCESS_MODIFY | ACCESS_EXTEND | ACCESS_EXECUTE
                : ACCESS_READ;
        postOp(w, tree.attr(node));
        w.u32(wanted & allowed);
        return;
      }
      case Proc.READLINK: {
        const { node } = await this.node(r, ctx);
        if (node.kind !== 'link') throw new NfsError(Nfs3Status.INVAL, `${JSON.stringify(node.path)} is not a symlink`);
        throw new NfsError(Nfs3Status.NOTSUPP, 'symlinks are not read through on this server');
      }
      case Proc.READ: {
        const { tree, node } = await this.node(r, ctx);
        const offset = r.safeU64('offset');
        const count = Math.min(r.u32('count'), RTMAX);
        const { data, eof } = await tree.read(node, offset, count);
        postOp(w, tree.attr(node));
        w.u32(data.length).bool(eof).opaque(data);
        return;
      }
      case Proc.WRITE: {
        const { tree, node } = await this.node(r, ctx);
        const offset = r.safeU64('offset');
        const count = r.u32('count');
        const stable = r.u32('stable');
        const data = r.opaque(WTMAX, 'data');
        if (stable > 2) throw new NfsError(Nfs3Status.INVAL, `stable_how ${stable} is not UNSTABLE, DATA_SYNC or FILE_SYNC`);
        if (count > data.length) throw new NfsError(Nfs3Status.INVAL, `WRITE says ${count} bytes but carries ${data.length}`);
        if (offset + count > MAX_FILE_SIZE) throw new NfsError(Nfs3Status.FBIG, `a write up to ${offset + count} is past the largest file size`);
        const sync = stable !== STABLE_UNSTABLE;
        await tree.write(node, offset, data.subarray(0, count), sync);
        wcc(w, tree.attr(await tree.resolve(node.path)));
        w.u32(count).u32(sync ? STABLE_FILE_SYNC : STABLE_UNSTABLE).fixed(ctx.writeVerifier);
        return;
      }
      case Proc.CREATE: {
        const { tree, dir, name } = await this.dirop(r, ctx);
        const mode = r.u32('createmode');
        let how: CreateHow;
        if (mode === 0 || mode === 1) how = { mode: mode === 0 ? 'unchecked' : 'guarded', attrs: readSattr(r) };
        else if (mode === 2) how = { mode: 'exclusive', verf: Buffer.from(r.fixed(8, 'create verifier')) };
        else throw new NfsError(Nfs3Status.INVAL, `createmode ${mode} is not UNCHECKED, GUARDED or EXCLUSIVE`);
        const made = await tree.create(dir, name, how);
        this.created(w, tree, made);
        return;
      }
      case Proc.MKDIR: {
        const { tree, dir, name } = await this.dirop(r, ctx);
        const made = await tree.mkdir(dir, name, readSattr(r));
        this.created(w, tree, made);
        return;
      }
      case Proc.SYMLINK:
      case Proc.MKNOD:
      case Proc.LINK:
        throw new NfsError(Nfs3Status.NOTSUPP, `${Proc[proc]} is not supported`);
      case Proc.REMOVE:
      case Proc.RMDIR: {
        const { tree, dir, name } = await this.dirop(r, ctx);
        await tree.remove(dir, name, proc === Proc.RMDIR);
        wcc(w, tree.attr(await tree.resolve(dir.path)));
        return;
      }
      case Proc.RENAME: {
        const from = await this.dirop(r, ctx);
        const to = await this.dirop(r, ctx);
        if (from.tree !== to.tree) throw new NfsError(Nfs3Status.XDEV, 'a rename between two exports');
        await from.tree.rename(from.dir, from.name, to.dir, to.name);
        wcc(w, from.tree.attr(await from.tree.resolve(from.dir.path)));
        wcc(w, to.tree.attr(await to.tree.resolve(to.dir.path)));
        return;
      }
      case Proc.READDIR:
      case Proc.READDIRPLUS: {
        const { tree, node } = await this.node(r, ctx);
        const cookie = r.safeU64('cookie');
        r.fixed(8, 'cookie verifier'); // ignored: cookies are positions in the sorted listing
        const plus = proc === Proc.READDIRPLUS;
        const dircount = r.u32(plus ? 'dircount' : 'count');
        const maxcount = plus ? r.u32('maxcount') : dircount;
        await this.readdir(w, tree, node, cookie, plus, dircount, maxcount);
        return;
      }
      case Proc.FSSTAT: {
        const { tree, node } = await this.node(r, ctx);
        const s = await tree.fsstat().catch((err: unknown) => {
          throw new NfsError(Nfs3Status.IO, `statfs of the overlay: ${(err as Error).message}`);
        });
        postOp(w, tree.attr(node));
        w.u64(s.tbytes).u64(s.fbytes).u64(s.abytes).u64(s.tfiles).u64(s.ffiles).u64(s.afiles).u32(0);
        return;
      }
      case Proc.FSINFO: {
        const { tree, node } = await this.node(r, ctx);
        postOp(w, tree.attr(node));
        // rtmax rtpref rtmult wtmax wtpref wtmult dtpref maxfilesize time_delta properties (HOMOGENEOUS | CANSETTIME)
        w.u32(RTMAX).u32(RTMAX).u32(4096).u32(WTMAX).u32(WTMAX).u32(4096).u32(64 * 1024).u64(MAX_FILE_SIZE).u32(0).u32(1).u32(0x08 | 0x10);
        return;
      }
      case Proc.PATHCONF: {
        const { tree, node } = await this.node(r, ctx);
        postOp(w, tree.attr(node));
        // linkmax name_max no_trunc chown_restricted case_insensitive case_preserving
        w.u32(1).u32(255).bool(true).bool(true).bool(false).bool(true);
        return;
      }
      case Proc.COMMIT: {
        const { tree, node } = await this.node(r, ctx);
        r.u64('offset');
        r.u32('count');
        await tree.commit(node);
        wcc(w, tree.attr(node));
        w.fixed(ctx.writeVerifier);
        return;
      }
      case Proc.NULL:
        return;
    }
  }

  private created(w: XdrWriter, tree: ExportTree, made: Node): void {
    w.u32(1).opaque(this.registry.encode(tree, made.id));
    postOp(w, tree.attr(made));
    wcc(w, null);
  }

  /**
   * One page of a directory. Cookies are 1-based positions in the listing
   * ('.', '..', then the names sorted); a page ends before the entry that would pass `maxcount` (the
   * whole reply) or `dircount` (ids, names and cookies only).
   */
  private async readdir(w: XdrWriter, tree: ExportTree, dir: Node, cookie: number, plus: boolean, dircount: number, maxcount: number): Promise<void> {
    // '.' and '..' first, as knfsd and nfs-ganesha list them; then the names.
    const names = ['.', '..', ...(await tree.list(dir))];
    if (cookie > names.length) throw new NfsError(Nfs3Status.BAD_COOKIE, `cookie ${cookie} is past the ${names.length} entries of ${JSON.stringify(dir.path)}`);
    const head = new XdrWriter();
    postOp(head, tree.attr(dir));
    head.fixed(this.registry.generation);
    let size = 4 + head.length + 8; // status, attributes and verifier, end of list and eof
    let dirSize = 0;
    const body = new XdrWriter();
    let i = cookie;
    for (; i < names.length; i++) {
      const name = names[i] as string;
      let child: Node;
      try {
        child = await tree.lookup(dir, name);
      } catch {
        continue; // removed meanwhile
      }
      const entry = new XdrWriter().u32(1).u64(child.id).string(name).u64(i + 1);
      const idPart = entry.length;
      if (plus) {
        postOp(entry, tree.attr(child));
        entry.u32(1).opaque(this.registry.encode(tree, child.id));
      }
      if (size + entry.length > maxcount || (plus && dirSize + idPart > dircount)) break;
      size += entry.length;
      dirSize += idPart;
      for (const p of entry.parts()) body.fixed(p);
    }
    if (i === cookie && i < names.length) throw new NfsError(Nfs3Status.TOOSMALL, `${maxcount} bytes do not hold one directory entry`);
    for (const p of head.parts()) w.fixed(p);
    for (const p of body.parts()) w.fixed(p);
    w.u32(0).bool(i >= names.length);
  }
}

