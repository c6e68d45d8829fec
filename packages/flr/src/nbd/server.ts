/**
 * A read-only NBD server (fixed newstyle) on a unix socket.
 *
 * Handshake: NBD_OPT_EXPORT_NAME, NBD_OPT_INFO / NBD_OPT_GO (with
 * NBD_INFO_EXPORT, NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE),
 * NBD_OPT_LIST, NBD_OPT_ABORT, NBD_OPT_STRUCTURED_REPLY and the
 * `base:allocation` metadata context; anything else is answered
 * NBD_REP_ERR_UNSUP (STARTTLS included: the socket is private to this host).
 *
 * Transmission: NBD_CMD_READ (answered out of order, several in flight; with
 * structured replies, holes of the restore point go out as
 * NBD_REPLY_TYPE_OFFSET_HOLE and errors as NBD_REPLY_TYPE_ERROR_OFFSET with a
 * message), NBD_CMD_BLOCK_STATUS, NBD_CMD_DISC. Every export is read-only:
 * writes, trims and write-zeroes are refused with EPERM (a write's payload is
 * read and dropped), and the export advertises NBD_FLAG_READ_ONLY.
 */
import { chmod } from 'node:fs/promises';
import net from 'node:net';
import * as P from './protocol.ts';
import { ConnectionClosed, u16, u32, u64, Wire } from './wire.ts';

export interface NbdExtent {
  length: number;
  hole: boolean;
}

export interface NbdExport {
  name: string;
  size: number;
  description?: string;
  read(offset: number, length: number): Promise<Buffer>;
  /** Allocation of [offset, offset + length) as consecutive runs (holes read as zeros). */
  extents?(offset: number, length: number): NbdExtent[];
}

export interface NbdServerOptions {
  /** Concurrent connections (default 16); more are closed at once. */
  maxConnections?: number;
  /** Reads in flight per connection (default 16). */
  maxInFlight?: number;
  /** Called with each request error worth knowing about (never with data). */
  onError?: (message: string) => void;
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');

class Protocol extends Error {
  override name = 'NbdProtocolViolation';
}

export class NbdServer {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly exports: Map<string, NbdExport>;
  private readonly opts: Required<NbdServerOptions>;

  constructor(exports: NbdExport[], opts: NbdServerOptions = {}) {
    this.exports = new Map(exports.map((e) => [e.name, e]));
    this.opts = { maxConnections: opts.maxConnections ?? 16, maxInFlight: opts.maxInFlight ?? 16, onError: opts.onError ?? (() => undefined) };
  }

  /**
   * Listens on a unix socket (mode 0600, or 0660 for the group of the file-level restore helper that
   * connects nbdfuse to it; put it in a directory only the owner and that group may enter, so no one
   * races the chmod).
   */
  async listen(socketPath: string, mode = 0o600): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    server.maxConnections = this.opts.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(socketPath, mode);
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const wire = new Wire(socket);
    this.session(wire).catch((err: unknown) => {
      if (!(err instanceof ConnectionClosed) && !(err as NodeJS.ErrnoException)?.code?.startsWith?.('ECONN') && (err as NodeJS.ErrnoException)?.code !== 'EPIPE') {
        this.opts.onError(`NBD connection dropped: ${(err as Error).message}`);
      }
      socket.destroy();
    });
  }

  private async session(wire: Wire): Promise<void> {
    await wire.write(u64(P.NBDMAGIC), u64(P.IHAVEOPT), u16(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES));
    const clientFlags = (await wire.read(4)).readUInt32BE(0);
    if (clientFlags & ~(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)) throw new Protocol(`unknown client flags 0x${clientFlags.toString(16)}`);
    const noZeroes = (clientFlags & P.FLAG_C_NO_ZEROES) !== 0;
    const chosen = await this.haggle(wire, noZeroes);
    if (!chosen) return;
    await this.transmit(wire, chosen.exp, chosen.structured, chosen.meta);
  }

  private transmissionFlags(structured: boolean): number {
    return P.TF_HAS_FLAGS | P.TF_READ_ONLY | P.TF_CAN_MULTI_CONN | (structured ? P.TF_SEND_DF : 0);
  }

  private async haggle(wire: Wire, noZeroes: boolean): Promise<{ exp: NbdExport; structured: boolean; meta: number | null } | null> {
    let structured = false;
    // The export name base:allocation was selected for, if any (context id 1).
    let metaFor: string | null = null;
    const reply = (option: number, type: number, ...data: Buffer[]) => {
      const len = data.reduce((n, d) => n + d.length, 0);
      return wire.write(u64(P.OPTION_REPLY_MAGIC), u32(option), u32(type), u32(len), ...data);
    };
    const fail = (option: number, type: number, message: string) => reply(option, type, utf8(message));
    for (;;) {
      const head = await wire.read(16);
      if (head.readBigUInt64BE(0) !== P.IHAVEOPT) throw new Protocol('option without the IHAVEOPT magic');
      const option = head.readUInt32BE(8);
      const length = head.readUInt32BE(12);
      if (length > P.MAX_OPTION_LENGTH) throw new Protocol(`option ${option} carries ${length} bytes`);
      const data = await wire.read(length);

      if (option === P.OPT_EXPORT_NAME) {
        const exp = this.exports.get(data.toString('utf8'));
        if (!exp) throw new Protocol(`no export named ${JSON.stringify(data.toString('utf8'))}`); // the protocol can only hang up here
        await wire.write(u64(exp.size), u16(this.transmissionFlags(structured)), ...(noZeroes ? [] : [Buffer.alloc(124)]));
        return { exp, structured, meta: metaFor === exp.name ? 1 : null };
      }
      if (option === P.OPT_ABORT) {
        await reply(option, P.REP_ACK).catch(() => undefined);
        wire.socket.end();
        return null;
      }
      if (option === P.OPT_LIST) {
        if (length !== 0) {
          await fail(option, P.REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
          continue;
        }
        for (const e of this.exports.values()) {
          const name = utf8(e.name);
          await reply(option, P.REP_SERVER, u32(name.length), name, utf8(e.description ?? ''));
        }
        await reply(option, P.REP_ACK);
        continue;
      }
      if (option === P.OPT_STRUCTURED_REPLY) {
        if (length !== 0) {
          await fail(option, P.REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
          continue;
        }
        structured = true;
        await reply(option, P.REP_ACK);
        continue;
      }
      if (option === P.OPT_INFO || option === P.OPT_GO) {
        const parsed = parseInfoRequest(data);
        if (!parsed) {
          await fail(option, P.REP_ERR_INVALID, 'malformed NBD_OPT_INFO/NBD_OPT_GO request');
          continue;
        }
        const exp = this.exports.get(parsed.name);
        if (!exp) {
          await fail(option, P.REP_ERR_UNKNOWN, `no export named ${JSON.stringify(parsed.name)} (this server has ${[...this.exports.keys()].map((k) => JSON.stringify(k)).join(', ')})`);
          continue;
        }
        await reply(option, P.REP_INFO, u16(P.INFO_EXPORT), u64(exp.size), u16(this.transmissionFlags(structured)));
        await reply(option, P.REP_INFO, u16(P.INFO_BLOCK_SIZE), u32(1), u32(P.PREFERRED_BLOCK), u32(P.MAX_REQUEST));
        if (parsed.requests.includes(P.INFO_NAME)) await reply(option, P.REP_INFO, u16(P.INFO_NAME), utf8(exp.name));
        if (parsed.requests.includes(P.INFO_DESCRIPTION) && exp.description) await reply(option, P.REP_INFO, u16(P.INFO_DESCRIPTION), utf8(exp.description));
        await reply(option, P.REP_ACK);
        if (option === P.OPT_GO) return { exp, structured, meta: metaFor === exp.name ? 1 : null };
        continue;
      }
      if (option === P.OPT_LIST_META_CONTEXT || option === P.OPT_SET_META_CONTEXT) {
        if (option === P.OPT_SET_META_CONTEXT) metaFor = null; // a SET replaces the selection, even when it fails
        if (!structured) {
          await fail(option, P.REP_ERR_INVALID, 'negotiate structured replies before metadata contexts');
          continue;
        }
        const parsed = parseMetaRequest(data);
        if (!parsed) {
          await fail(option, P.REP_ERR_INVALID, 'malformed metadata context request');
          continue;
        }
        if (!this.exports.has(parsed.name)) {
          await fail(option, P.REP_ERR_UNKNOWN, `no export named ${JSON.stringify(parsed.name)}`);
          continue;
        }
        const wanted =
          option === P.OPT_LIST_META_CONTEXT
            ? parsed.queries.length === 0 || parsed.queries.some((q) => q === 'base:' || q === P.META_BASE_ALLOCATION)
            : parsed.queries.includes(P.META_BASE_ALLOCATION);
        if (wanted) {
          await reply(option, P.REP_META_CONTEXT, u32(option === P.OPT_SET_META_CONTEXT ? 1 : 0), utf8(P.META_BASE_ALLOCATION));
          if (option === P.OPT_SET_META_CONTEXT) metaFor = parsed.name;
        }
        await reply(option, P.REP_ACK);
        continue;
      }
      await fail(option, P.REP_ERR_UNSUP, option === P.OPT_STARTTLS ? 'TLS is not offered on this private unix socket' : `option ${option} is not supported`);
    }
  }

  private async transmit(wire: Wire, exp: NbdExport, structured: boolean, meta: number | null): Promise<void> {
    const inflight = new Set<Promise<void>>();
    const chunk = (flags: number, type: number, handle: Buffer, ...payload: Buffer[]) => {
      const len = payload.reduce((n, p) => n + p.length, 0);
      return wire.write(u32(P.STRUCTURED_REPLY_MAGIC), u16(flags), u16(type), handle, u32(len), ...payload);
    };
    const simple = (handle: Buffer, error: number, data?: Buffer) => wire.write(u32(P.SIMPLE_REPLY_MAGIC), u32(error), handle, ...(data ? [data] : []));
    const error = (handle: Buffer, errno: number, message: string, offset?: number) => {
      if (!structured) return simple(handle, errno);
      const msg = utf8(message).subarray(0, 4096);
      if (offset === undefined) return chunk(P.REPLY_FLAG_DONE, P.REPLY_TYPE_ERROR, handle, u32(errno), u16(msg.length), msg);
      return chunk(P.REPLY_FLAG_DONE, P.REPLY_TYPE_ERROR_OFFSET, handle, u32(errno), u16(msg.length), msg, u64(offset));
    };

    const read = async (handle: Buffer, flags: number, offset: number, length: number): Promise<void> => {
      if (length === 0) {
        if (structured) await chunk(P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, handle);
        else await simple(handle, 0);
        return;
      }
      if (!structured) {
        let data: Buffer;
        try {
          data = await exp.read(offset, length);
        } catch (err) {
          this.opts.onError(`read [${offset}, +${length}) of ${exp.name} failed: ${(err as Error).message}`);
          await simple(handle, P.EIO);
          return;
        }
        await simple(handle, 0, data);
        return;
      }
      const runs = flags & P.CMD_FLAG_DF || !exp.extents ? [{ length, hole: false }] : mergeRuns(exp.extents(offset, length));
      let pos = offset;
      for (let i = 0; i < runs.length; i++) {
        const run = runs[i]!;
        const last = i === runs.length - 1 ? P.REPLY_FLAG_DONE : 0;
        if (run.hole) {
          await chunk(last, P.REPLY_TYPE_OFFSET_HOLE, handle, u64(pos), u32(run.length));
        } else {
          let data: Buffer;
          try {
            data = await exp.read(pos, run.length);
          } catch (err) {
            const message = `reading [${pos}, +${run.length}) of ${exp.name} failed: ${(err as Error).message}`;
            this.opts.onError(message);
            await error(handle, P.EIO, message, pos);
            return;
          }
          await chunk(last, P.REPLY_TYPE_OFFSET_DATA, handle, u64(pos), data);
        }
        pos += run.length;
      }
    };

    const blockStatus = async (handle: Buffer, flags: number, offset: number, length: number): Promise<void> => {
      const end = Math.min(offset + length, exp.size);
      const runs = exp.extents ? mergeRuns(exp.extents(offset, end - offset)) : [{ length: end - offset, hole: false }];
      const limit = flags & P.CMD_FLAG_REQ_ONE ? 1 : 2048;
      const parts: Buffer[] = [u32(meta!)];
      for (const r of runs.slice(0, limit)) parts.push(u32(r.length), u32(r.hole ? P.STATE_HOLE | P.STATE_ZERO : 0));
      await chunk(P.REPLY_FLAG_DONE, P.REPLY_TYPE_BLOCK_STATUS, handle, ...parts);
    };

    for (;;) {
      const req = await wire.read(28);
      if (req.readUInt32BE(0) !== P.REQUEST_MAGIC) throw new Protocol('request without the request magic');
      const flags = req.readUInt16BE(4);
      const type = req.readUInt16BE(6);
      const handle = Buffer.from(req.subarray(8, 16));
      const offset64 = req.readBigUInt64BE(16);
      const length = req.readUInt32BE(24);
      const offset = offset64 > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offset64);
      const outOfRange = offset + length > exp.size;

      if (type === P.CMD_DISC) {
        await Promise.allSettled(inflight);
        wire.socket.end();
        return;
      }
      if (type === P.CMD_WRITE) {
        await wire.skip(length);
        await error(handle, P.EPERM, `export ${exp.name} is read-only`, structured ? offset : undefined);
        continue;
      }
      if (type === P.CMD_TRIM || type === P.CMD_WRITE_ZEROES) {
        await error(handle, P.EPERM, `export ${exp.name} is read-only`);
        continue;
      }
      if (type === P.CMD_READ) {
        if (length > P.MAX_REQUEST) {
          await error(handle, P.EOVERFLOW, `read of ${length} bytes is larger than the ${P.MAX_REQUEST} bytes this server allows`);
          continue;
        }
        if (outOfRange) {
          await error(handle, P.EINVAL, `read [${offset}, +${length}) goes beyond the end of ${exp.name} (${exp.size} bytes)`);
          continue;
        }
        while (inflight.size >= this.opts.maxInFlight) await Promise.race(inflight);
        const p: Promise<void> = read(handle, flags, offset, length)
          .catch((err: unknown) => {
            wire.socket.destroy(err as Error);
          })
          .finally(() => inflight.delete(p));
        inflight.add(p);
        continue;
      }
      if (type === P.CMD_BLOCK_STATUS) {
        if (meta === null || !structured) {
          await error(handle, P.EINVAL, 'no metadata context was selected');
          continue;
        }
        if (outOfRange || length === 0) {
          await error(handle, P.EINVAL, `block status [${offset}, +${length}) is outside ${exp.name} (${exp.size} bytes)`);
          continue;
        }
        await blockStatus(handle, flags, offset, length);
        continue;
      }
      await error(handle, P.EINVAL, `command ${type} is not supported by this read-only server`);
    }
  }
}

function mergeRuns(runs: NbdExtent[]): NbdExtent[] {
  const out: NbdExtent[] = [];
  for (const r of runs) {
    if (r.length <= 0) continue;
    const prev = out[out.length - 1];
    if (prev && prev.hole === r.hole && prev.length + r.length <= P.MAX_REQUEST) prev.length += r.length;
    else out.push({ ...r });
  }
  return out;
}

function parseInfoRequest(data: Buffer): { name: string; requests: number[] } | null {
  if (data.length < 6) return null;
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 6) return null;
  const name = data.toString('utf8', 4, 4 + nameLen);
  const n = data.readUInt16BE(4 + nameLen);
  if (data.length !== 6 + nameLen + 2 * n) return null;
  const requests: number[] = [];
  for (let i = 0; i < n; i++) requests.push(data.readUInt16BE(6 + nameLen + 2 * i));
  return { name, requests };
}

function parseMetaRequest(data: Buffer): { name: string; queries: string[] } | null {
  let pos = 0;
  const take = (n: number): Buffer | null => {
    if (pos + n > data.length) return null;
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const nameLen = take(4)?.readUInt32BE(0);
  if (nameLen === undefined) return null;
  const name = take(nameLen);
  const count = take(4)?.readUInt32BE(0);
  if (!name || count === undefined) return null;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = take(4)?.readUInt32BE(0);
    if (len === undefined) return null;
    const q = take(len);
    if (!q) return null;
    queries.push(q.toString('utf8'));
  }
  if (pos !== data.length) return null;
  return { name: name.toString('utf8'), queries };
}
