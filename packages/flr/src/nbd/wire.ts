/**
 * Exact-length reads and back-pressured writes on a stream socket, shared by
 * the NBD server and client: `read(n)` resolves with exactly n bytes or
 * rejects when the peer closes first.
 */
import type { Socket } from 'node:net';

export class ConnectionClosed extends Error {
  override name = 'ConnectionClosed';
}

export class Wire {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiting: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended: Error | null = null;

  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.pump();
    });
    const end = (err?: Error) => {
      if (!this.ended) this.ended = err ?? new ConnectionClosed('the peer closed the connection');
      this.pump();
    };
    socket.on('end', () => end());
    socket.on('close', () => end());
    socket.on('error', (err) => end(err));
  }

  get closed(): boolean {
    return this.ended !== null;
  }

  private take(n: number): Buffer {
    if (this.chunks[0] && this.chunks[0].length >= n) {
      const head = this.chunks[0];
      const out = head.subarray(0, n);
      if (head.length === n) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
      this.buffered -= n;
      return out;
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered -= n;
    return out;
  }

  private pump(): void {
    const w = this.waiting;
    if (!w) {
      // Bound what we buffer ahead of the reader (a client streaming writes we refuse, say).
      if (this.buffered > 64 * 1024 * 1024) this.socket.pause();
      return;
    }
    if (this.buffered >= w.n) {
      this.waiting = null;
      w.resolve(this.take(w.n));
    } else if (this.ended) {
      this.waiting = null;
      w.reject(this.ended);
    }
  }

  read(n: number): Promise<Buffer> {
    if (this.waiting) return Promise.reject(new Error('Wire.read: one read at a time'));
    if (n === 0) return Promise.resolve(Buffer.alloc(0));
    if (this.socket.isPaused()) this.socket.resume();
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
      this.pump();
    });
  }

  /** Reads and drops n bytes (the payload of a write we refuse) without holding it all. */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const step = Math.min(left, 1024 * 1024);
      await this.read(step);
      left -= step;
    }
  }

  async write(...parts: Buffer[]): Promise<void> {
    if (this.ended || this.socket.destroyed) throw this.ended ?? new ConnectionClosed('the connection is closed');
    let ok = true;
    for (const p of parts) ok = this.socket.write(p);
    if (!ok) await this.drained();
  }

  /** One wait for 'drain' shared by every write blocked on it (many replies in flight would each add listeners). */
  private draining: Promise<void> | null = null;
  private drained(): Promise<void> {
    this.draining ??= new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.socket.off('close', onClose);
        this.draining = null;
        resolve();
      };
      const onClose = () => {
        this.socket.off('drain', onDrain);
        this.draining = null;
        reject(this.ended ?? new ConnectionClosed('the connection closed while writing'));
      };
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
    return this.draining;
  }
}

export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

export function u64(v: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}
