/**
 * A small NBD client (fixed newstyle, NBD_OPT_GO, optional structured replies
 * and base:allocation), one request at a time. It exists to check the server
 * from the protocol side; libnbd's nbdinfo/nbdcopy are the independent peers.
 */
import net from 'node:net';
import * as P from './protocol.ts';
import { u16, u32, u64, Wire } from './wire.ts';

export class NbdError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
    this.name = 'NbdError';
  }
}

export interface OptionReply {
  type: number;
  data: Buffer;
}

export interface ConnectOptions {
  export?: string;
  structured?: boolean;
  allocation?: boolean;
}

export class NbdClient {
  size = 0;
  transmissionFlags = 0;
  structured = false;
  allocation = false;
  private nextHandle = 1n;

  private constructor(readonly wire: Wire) {}

  /** Connects and completes the handshake up to (not including) option haggling. */
  static async open(socketPath: string): Promise<NbdClient> {
    const socket = net.createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new NbdClient(new Wire(socket));
    const hello = await c.wire.read(18);
    if (hello.readBigUInt64BE(0) !== P.NBDMAGIC || hello.readBigUInt64BE(8) !== P.IHAVEOPT) throw new Error('not an NBD newstyle server');
    const serverFlags = hello.readUInt16BE(16);
    if (!(serverFlags & P.FLAG_FIXED_NEWSTYLE)) throw new Error('the server does not speak fixed newstyle');
    await c.wire.write(u32(P.FLAG_C_FIXED_NEWSTYLE | (serverFlags & P.FLAG_NO_ZEROES ? P.FLAG_C_NO_ZEROES : 0)));
    return c;
  }

  static async connect(socketPath: string, opts: ConnectOptions = {}): Promise<NbdClient> {
    const c = await NbdClient.open(socketPath);
    const name = opts.export ?? '';
    if (opts.structured ?? true) {
      const r = await c.option(P.OPT_STRUCTURED_REPLY, Buffer.alloc(0));
      c.structured = r.at(-1)?.type === P.REP_ACK;
    }
    if (opts.allocation && c.structured) {
      const q = Buffer.from(P.META_BASE_ALLOCATION);
      const n = Buffer.from(name);
      const r = await c.option(P.OPT_SET_META_CONTEXT, Buffer.concat([u32(n.length), n, u32(1), u32(q.length), q]));
      c.allocation = r.some((x) => x.type === P.REP_META_CONTEXT);
    }
    await c.go(name);
    return c;
  }

  /** Sends an option and collects replies up to the final one (ACK or an error). */
  async option(option: number, data: Buffer): Promise<OptionReply[]> {
    await this.wire.write(u64(P.IHAVEOPT), u32(option), u32(data.length), data);
    const out: OptionReply[] = [];
    for (;;) {
      const h = await this.wire.read(20);
      if (h.readBigUInt64BE(0) !== P.OPTION_REPLY_MAGIC) throw new Error('bad option reply magic');
      if (h.readUInt32BE(8) !== option) throw new Error(`reply for option ${h.readUInt32BE(8)}, expected ${option}`);
      const type = h.readUInt32BE(12);
      const body = await this.wire.read(h.readUInt32BE(16));
      out.push({ type, data: body });
      if (type === P.REP_ACK || type >= 0x80000000) return out;
    }
  }

  async go(name: string, requests: number[] = [P.INFO_BLOCK_SIZE]): Promise<void> {
    const n = Buffer.from(name);
    const replies = await this.option(P.OPT_GO, Buffer.concat([u32(n.length), n, u16(requests.length), ...requests.map(u16)]));
    const last = replies.at(-1)!;
    if (last.type !== P.REP_ACK) throw new NbdError(`NBD_OPT_GO refused (0x${last.type.toString(16)}): ${last.data.toString()}`, last.type);
    for (const r of replies) {
      if (r.type === P.REP_INFO && r.data.readUInt16BE(0) === P.INFO_EXPORT) {
        this.size = Number(r.data.readBigUInt64BE(2));
        this.transmissionFlags = r.data.readUInt16BE(10);
      }
    }
  }

  private handle(): Buffer {
    return u64(this.nextHandle++);
  }

  private async request(type: number, offset: number, length: number, flags = 0, payload?: Buffer): Promise<Buffer> {
    const handle = this.handle();
    await this.wire.write(u32(P.REQUEST_MAGIC), u16(flags), u16(type), handle, u64(offset), u32(length), ...(payload ? [payload] : []));
    return handle;
  }

  /** Reads [offset, offset + length), reassembling structured chunks (holes become zeros). */
  async read(offset: number, length: number, flags = 0): Promise<Buffer> {
    const handle = await this.request(P.CMD_READ, offset, length, flags);
    if (!this.structured) {
      const h = await this.wire.read(16);
      if (h.readUInt32BE(0) !== P.SIMPLE_REPLY_MAGIC || !h.subarray(8, 16).equals(handle)) throw new Error('bad simple reply');
      const err = h.readUInt32BE(4);
      if (err) throw new NbdError(`read failed: ${P.ERROR_NAMES[err] ?? err}`, err);
      return this.wire.read(length);
    }
    const out = Buffer.alloc(length);
    let failure: NbdError | null = null;
    for (;;) {
      const { flags: f, type, data } = await this.chunk(handle);
      if (type === P.REPLY_TYPE_OFFSET_DATA) {
        const at = Number(data.readBigUInt64BE(0)) - offset;
        data.copy(out, at, 8);
      } else if (type === P.REPLY_TYPE_OFFSET_HOLE) {
        const at = Number(data.readBigUInt64BE(0)) - offset;
        out.fill(0, at, at + data.readUInt32BE(8));
      } else if (type & 0x8000) {
        failure = structuredError(data);
      }
      if (f & P.REPLY_FLAG_DONE) break;
    }
    if (failure) throw failure;
    return out;
  }

  /** The reply chunk types of one read, in order (to see holes going out as holes). */
  async readChunks(offset: number, length: number, flags = 0): Promise<number[]> {
    const handle = await this.request(P.CMD_READ, offset, length, flags);
    const types: number[] = [];
    for (;;) {
      const { flags: f, type } = await this.chunk(handle);
      types.push(type);
      if (f & P.REPLY_FLAG_DONE) return types;
    }
  }

  /** Sends a write and returns the server's answer (this server always refuses). */
  async write(offset: number, data: Buffer): Promise<void> {
    const handle = await this.request(P.CMD_WRITE, offset, data.length, 0, data);
    await this.expectEmptyReply(handle);
  }

  async blockStatus(offset: number, length: number): Promise<Array<{ length: number; flags: number }>> {
    const handle = await this.request(P.CMD_BLOCK_STATUS, offset, length);
    const out: Array<{ length: number; flags: number }> = [];
    let failure: NbdError | null = null;
    for (;;) {
      const { flags: f, type, data } = await this.chunk(handle);
      if (type === P.REPLY_TYPE_BLOCK_STATUS) {
        for (let p = 4; p + 8 <= data.length; p += 8) out.push({ length: data.readUInt32BE(p), flags: data.readUInt32BE(p + 4) });
      } else if (type & 0x8000) failure = structuredError(data);
      if (f & P.REPLY_FLAG_DONE) break;
    }
    if (failure) throw failure;
    return out;
  }

  private async expectEmptyReply(handle: Buffer): Promise<void> {
    if (!this.structured) {
      const h = await this.wire.read(16);
      const err = h.readUInt32BE(4);
      if (err) throw new NbdError(`request failed: ${P.ERROR_NAMES[err] ?? err}`, err);
      return;
    }
    let failure: NbdError | null = null;
    for (;;) {
      const { flags: f, type, data } = await this.chunk(handle);
      if (type & 0x8000) failure = structuredError(data);
      if (f & P.REPLY_FLAG_DONE) break;
    }
    if (failure) throw failure;
  }

  private async chunk(handle: Buffer): Promise<{ flags: number; type: number; data: Buffer }> {
    const h = await this.wire.read(20);
    if (h.readUInt32BE(0) !== P.STRUCTURED_REPLY_MAGIC) throw new Error(`expected a structured reply, got magic 0x${h.readUInt32BE(0).toString(16)}`);
    if (!h.subarray(8, 16).equals(handle)) throw new Error('reply for another request');
    return { flags: h.readUInt16BE(4), type: h.readUInt16BE(6), data: await this.wire.read(h.readUInt32BE(16)) };
  }

  async disconnect(): Promise<void> {
    await this.request(P.CMD_DISC, 0, 0);
    await new Promise<void>((resolve) => {
      if (this.wire.closed) return resolve();
      this.wire.socket.once('close', () => resolve());
    });
  }

  destroy(): void {
    this.wire.socket.destroy();
  }
}

function structuredError(data: Buffer): NbdError {
  const errno = data.readUInt32BE(0);
  const len = data.readUInt16BE(4);
  return new NbdError(data.toString('utf8', 6, 6 + len) || (P.ERROR_NAMES[errno] ?? `error ${errno}`), errno);
}
