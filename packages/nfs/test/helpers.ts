/**
 * Test tools: a minimal ONC RPC client (for what libnfs's tools cannot do:
 * RENAME, raw garbage, a chosen source address), a runner for the libnfs
 * command-line tools that does not block the event loop (the server runs in
 * this process), and files with holes.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { encodeCall, RecordParser } from '../src/rpc.ts';
import { XdrReader, XdrWriter } from '../src/xdr.ts';

export const NFS = 100003;
export const MOUNT = 100005;
export const PORTMAP = 100000;

export interface RpcReply {
  xid: number;
  /** 0 = MSG_ACCEPTED, 1 = MSG_DENIED */
  replyStat: number;
  /** accept_stat when accepted, reject_stat when denied */
  stat: number;
  body: XdrReader;
}

export class RpcClient {
  private parser = new RecordParser(64 * 1024 * 1024);
  private waiting = new Map<number, (r: RpcReply) => void>();
  private xid = 1;
  closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      for (const rec of this.parser.push(d)) {
        const r = new XdrReader(rec);
        const xid = r.u32();
        r.u32(); // REPLY
        const replyStat = r.u32();
        if (replyStat === 0) {
          r.u32();
          r.opaque(400);
        }
        const stat = r.u32();
        this.waiting.get(xid)?.({ xid, replyStat, stat, body: r });
        this.waiting.delete(xid);
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
  }

  static connect(port: number, localAddress?: string): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(new RpcClient(s)));
      s.once('error', reject);
    });
  }

  call(prog: number, vers: number, proc: number, args: Buffer = Buffer.alloc(0), auth = true): Promise<RpcReply> {
    const xid = this.xid++;
    const msg = encodeCall(xid, prog, vers, proc, args, auth ? { stamp: 1, machine: 'test', uid: 0, gid: 0, gids: [] } : undefined);
    return this.send(xid, msg);
  }

  /** Sends an already-encoded message (its xid must be `xid`) as one record, or as fragments of `fragment` bytes. */
  send(xid: number, msg: Buffer, fragment = msg.length): Promise<RpcReply> {
    const records: Buffer[] = [];
    for (let off = 0; off < msg.length || off === 0; off += fragment) {
      const part = msg.subarray(off, off + fragment);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(((off + fragment >= msg.length ? 0x80000000 : 0) | part.length) >>> 0);
      records.push(head, part);
      if (msg.length === 0) break;
    }
    const p = new Promise<RpcReply>((resolve, reject) => {
      this.waiting.set(xid, resolve);
      void this.closed.then(() => reject(new Error('connection closed before the reply')));
    });
    this.socket.write(Buffer.concat(records));
    return p;
  }

  close(): void {
    this.socket.destroy();
  }

  // ---- MOUNT / NFS conveniences -------------------------------------------

  async mount(path: string): Promise<{ status: number; fh: Buffer | null }> {
    const r = await this.call(MOUNT, 3, 1, new XdrWriter().string(path).toBuffer());
    const status = r.body.u32();
    return { status, fh: status === 0 ? Buffer.from(r.body.opaque(64)) : null };
  }

  /** An NFS call: returns the nfsstat3 and the rest of the body. */
  async nfs(proc: number, args: XdrWriter): Promise<{ status: number; body: XdrReader }> {
    const r = await this.call(NFS, 3, proc, args.toBuffer());
    if (r.replyStat !== 0 || r.stat !== 0) throw new Error(`NFS call ${proc} not accepted: reply ${r.replyStat} stat ${r.stat}`);
    return { status: r.body.u32(), body: r.body };
  }
}

/** Reads a post_op_attr; returns size and mode and fileid when present. */
export function postOp(r: XdrReader): ReturnType<typeof fattr> | null {
  return r.bool() ? fattr(r) : null;
}

/** Reads a fattr3. */
export function fattr(r: XdrReader): { type: number; mode: number; size: bigint; fileid: bigint } {
  const type = r.u32();
  const mode = r.u32();
  r.u32();
  r.u32();
  r.u32();
  const size = r.u64();
  r.u64();
  r.u32();
  r.u32();
  r.u64();
  const fileid = r.u64();
  for (let i = 0; i < 6; i++) r.u32();
  return { type, mode, size, fileid };
}

export function skipWcc(r: XdrReader): ReturnType<typeof postOp> {
  if (r.bool()) {
    r.u64();
    r.u32();
    r.u32();
    r.u32();
    r.u32();
  }
  return postOp(r);
}

export const diropargs = (fh: Buffer, name: string) => new XdrWriter().opaque(fh).string(name);
/** An sattr3 that sets nothing (or only the mode). */
export const sattr = (w: XdrWriter, mode?: number) => (mode === undefined ? w.u32(0) : w.u32(1).u32(mode)).u32(0).u32(0).u32(0).u32(0).u32(0);

/** Runs a command and keeps only the byte count, the first and the last `keep` bytes of its output. */
export function runEnds(cmd: string, args: string[], keep: number): Promise<{ code: number; length: number; head: Buffer; tail: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let length = 0;
    let head = Buffer.alloc(0);
    const tail: Buffer[] = [];
    let tailBytes = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      length += d.length;
      if (head.length < keep) head = Buffer.concat([head, d.subarray(0, keep - head.length)]);
      tail.push(d);
      tailBytes += d.length;
      while (tail.length > 1 && tailBytes - (tail[0] as Buffer).length >= keep) tailBytes -= (tail.shift() as Buffer).length;
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const all = Buffer.concat(tail);
      resolve({ code: code ?? 1, length, head, tail: all.subarray(Math.max(0, all.length - keep)), stderr });
    });
  });
}

export function run(cmd: string, args: string[], opts: { maxBuffer?: number } = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: opts.maxBuffer ?? 256 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr: stderr.toString() });
    });
  });
}

/** A file of `size` bytes: random data in every other `chunk` (> 0), holes between. */
export async function writeHoleyFile(path: string, size: number, chunk: number): Promise<void> {
  if (chunk <= 0) throw new Error('writeHoleyFile needs a chunk size above 0');
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    for (let off = 0; off < size; off += 2 * chunk) await fh.write(randomBytes(Math.min(chunk, size - off)), 0, Math.min(chunk, size - off), off);
  } finally {
    await fh.close();
  }
}

/** A BaseFile reading a local file (as the repository's DiskReader will, later). */
export async function fileBase(path: string, name: string): Promise<{ base: { path: string; size: number; read(o: number, l: number): Promise<Buffer> }; close(): Promise<void> }> {
  const fh = await open(path, 'r');
  const size = (await fh.stat()).size;
  return {
    base: {
      path: name,
      size,
      async read(offset, length) {
        const buf = Buffer.alloc(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return buf.subarray(0, got);
      },
    },
    close: () => fh.close(),
  };
}

export function nfsUrl(port: number, path: string, host = '127.0.0.1'): string {
  return `nfs://${host}${path}?version=3&nfsport=${port}&mountport=${port}&auto-traverse-mounts=0`;
}
