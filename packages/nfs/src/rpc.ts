/**
 * ONC RPC version 2 (RFC 5531) over TCP: record marking (RFC 5531 §11), call
 * headers with AUTH_NONE / AUTH_SYS credentials, and every kind of reply.
 *
 * Credentials are parsed so a program can see who the client claims to be,
 * never trusted: AUTH_SYS is whatever the client wrote. Access control is by
 * client address (see server.ts).
 */
import { XdrError, XdrReader, XdrWriter } from './xdr.ts';

export const RPC_VERSION = 2;
export const CALL = 0;
export const REPLY = 1;
export const MSG_ACCEPTED = 0;
export const MSG_DENIED = 1;

export enum AcceptStat {
  SUCCESS = 0,
  PROG_UNAVAIL = 1,
  PROG_MISMATCH = 2,
  PROC_UNAVAIL = 3,
  GARBAGE_ARGS = 4,
  SYSTEM_ERR = 5,
}

export enum RejectStat {
  RPC_MISMATCH = 0,
  AUTH_ERROR = 1,
}

export enum AuthStat {
  OK = 0,
  BADCRED = 1,
  REJECTEDCRED = 2,
  BADVERF = 3,
  REJECTEDVERF = 4,
  TOOWEAK = 5,
}

export const AUTH_NONE = 0;
export const AUTH_SYS = 1;

/** Largest record accepted by default: a 1 MiB WRITE fits many times over, and one client cannot hold more. */
export const DEFAULT_MAX_RECORD = 4 * 1024 * 1024 + 4096;

export class RecordTooLarge extends Error {
  override name = 'RecordTooLarge';
}

/**
 * Reassembles records from TCP chunks: each fragment has a 4-byte header (top
 * bit = last fragment, low 31 bits = length). A record whose fragments add up
 * to more than `maxRecord` bytes throws RecordTooLarge before its body is
 * buffered, so a client cannot make the server hold more than that per record.
 */
export class RecordParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private fragments: Buffer[] = [];
  private recordLength = 0;

  constructor(private readonly maxRecord = DEFAULT_MAX_RECORD) {}

  /** Feeds bytes; returns every record completed by them. */
  push(data: Buffer): Buffer[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const word = head.readUInt32BE(0);
      const last = (word & 0x80000000) !== 0;
      const len = word & 0x7fffffff;
      if (this.recordLength + len > this.maxRecord) {
        throw new RecordTooLarge(`record of at least ${this.recordLength + len} bytes is over the ${this.maxRecord}-byte limit`);
      }
      if (this.buffered < 4 + len) break;
      this.take(4);
      this.fragments.push(this.take(len));
      this.recordLength += len;
      if (last) {
        out.push(this.fragments.length === 1 ? (this.fragments[0] as Buffer) : Buffer.concat(this.fragments, this.recordLength));
        this.fragments = [];
        this.recordLength = 0;
      }
    }
    return out;
  }

  /** Bytes held for records not yet complete. */
  get pending(): number {
    return this.buffered + this.recordLength;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0] as Buffer;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.buffered);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}

/** Frames an encoded message as one record (a single, last fragment). */
export function frame(parts: Buffer[]): Buffer[] {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const head = Buffer.alloc(4);
  head.writeUInt32BE((0x80000000 | len) >>> 0);
  return [head, ...parts];
}

export interface AuthSys {
  stamp: number;
  machine: string;
  uid: number;
  gid: number;
  gids: number[];
}

export interface RpcCall {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  credFlavor: number;
  /** Present when the credential is AUTH_SYS (claimed by the client, not verified). */
  authSys: AuthSys | null;
  /** The procedure's arguments. */
  args: XdrReader;
}

export class RpcHeaderError extends Error {
  override name = 'RpcHeaderError';
  constructor(
    message: string,
    /** What to answer, when the xid could be read; null means drop the record. */
    readonly reply: Buffer[] | null,
  ) {
    super(message);
  }
}

const MAX_AUTH_BYTES = 400;

/**
 * Parses a call header. Throws RpcHeaderError carrying the reply to send
 * (RPC_MISMATCH, AUTH_ERROR, GARBAGE_ARGS) or null when the record is not a
 * call at all.
 */
export function parseCall(record: Buffer): RpcCall {
  const r = new XdrReader(record);
  let xid: number;
  try {
    xid = r.u32('xid');
    const type = r.u32('msg_type');
    if (type !== CALL) throw new RpcHeaderError(`message type ${type} is not a call`, null);
  } catch (err) {
    if (err instanceof RpcHeaderError) throw err;
    throw new RpcHeaderError(`record of ${record.length} bytes is too short for an RPC header`, null);
  }
  try {
    const rpcvers = r.u32('rpcvers');
    if (rpcvers !== RPC_VERSION) throw new RpcHeaderError(`RPC version ${rpcvers} (only 2 is spoken)`, rpcMismatch(xid));
    const prog = r.u32('prog');
    const vers = r.u32('vers');
    const proc = r.u32('proc');
    const credFlavor = r.u32('cred flavor');
    const cred = r.opaque(MAX_AUTH_BYTES, 'credential');
    r.u32('verifier flavor');
    r.opaque(MAX_AUTH_BYTES, 'verifier');
    let authSys: AuthSys | null = null;
    if (credFlavor === AUTH_SYS) {
      const c = new XdrReader(cred);
      const stamp = c.u32('stamp');
      const machine = c.string(255, 'machine name');
      const uid = c.u32('uid');
      const gid = c.u32('gid');
      const n = c.u32('gid count');
      if (n > 16) throw new XdrError(`AUTH_SYS with ${n} groups (16 allowed)`);
      const gids: number[] = [];
      for (let i = 0; i < n; i++) gids.push(c.u32('gid'));
      authSys = { stamp, machine, uid, gid, gids };
    } else if (credFlavor !== AUTH_NONE) {
      throw new RpcHeaderError(`credential flavor ${credFlavor} is not supported (AUTH_NONE and AUTH_SYS are)`, authError(xid, AuthStat.BADCRED));
    }
    return { xid, prog, vers, proc, credFlavor, authSys, args: r };
  } catch (err) {
    if (err instanceof RpcHeaderError) throw err;
    if (err instanceof XdrError) throw new RpcHeaderError(`malformed call header: ${err.message}`, authError(xid, AuthStat.BADCRED));
    throw err;
  }
}

function replyHead(xid: number, stat: number): XdrWriter {
  return new XdrWriter().u32(xid).u32(REPLY).u32(stat);
}

/** MSG_ACCEPTED with an AUTH_NONE verifier and the given accept status; the caller appends the body. */
export function acceptedReply(xid: number, stat: AcceptStat): XdrWriter {
  return replyHead(xid, MSG_ACCEPTED).u32(AUTH_NONE).u32(0).u32(stat);
}

export function progMismatch(xid: number, low: number, high: number): Buffer[] {
  return acceptedReply(xid, AcceptStat.PROG_MISMATCH).u32(low).u32(high).parts();
}

export function simpleAccepted(xid: number, stat: AcceptStat.PROG_UNAVAIL | AcceptStat.PROC_UNAVAIL | AcceptStat.GARBAGE_ARGS | AcceptStat.SYSTEM_ERR): Buffer[] {
  return acceptedReply(xid, stat).parts();
}

export function rpcMismatch(xid: number): Buffer[] {
  return replyHead(xid, MSG_DENIED).u32(RejectStat.RPC_MISMATCH).u32(RPC_VERSION).u32(RPC_VERSION).parts();
}

export function authError(xid: number, stat: AuthStat): Buffer[] {
  return replyHead(xid, MSG_DENIED).u32(RejectStat.AUTH_ERROR).u32(stat).parts();
}

/** Encodes a call (used by the tests' client and the benchmark). */
export function encodeCall(xid: number, prog: number, vers: number, proc: number, args: Buffer, authSys?: AuthSys): Buffer {
  const w = new XdrWriter().u32(xid).u32(CALL).u32(RPC_VERSION).u32(prog).u32(vers).u32(proc);
  if (authSys) {
    const c = new XdrWriter().u32(authSys.stamp).string(authSys.machine).u32(authSys.uid).u32(authSys.gid).u32(authSys.gids.length);
    for (const g of authSys.gids) c.u32(g);
    w.u32(AUTH_SYS).opaque(c.toBuffer());
  } else {
    w.u32(AUTH_NONE).u32(0);
  }
  w.u32(AUTH_NONE).u32(0).fixed(args);
  return w.toBuffer();
}
