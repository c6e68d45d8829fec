/**
 * XDR (RFC 4506) for the subset ONC RPC, MOUNT and NFSv3 use: 32-bit words,
 * 64-bit hypers, variable and fixed opaques, strings and booleans. The reader
 * never reads past its buffer: a short or oversized field throws XdrError,
 * which the RPC layer answers with GARBAGE_ARGS.
 */

export class XdrError extends Error {
  override name = 'XdrError';
}

const pad4 = (n: number) => (4 - (n & 3)) & 3;

export class XdrReader {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.buf.length - this.pos < n) throw new XdrError(`${what} needs ${n} bytes at offset ${this.pos}, only ${this.buf.length - this.pos} left`);
  }

  u32(what = 'uint32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  bool(what = 'bool'): boolean {
    const v = this.u32(what);
    if (v > 1) throw new XdrError(`${what} is ${v}, not a boolean`);
    return v === 1;
  }

  u64(what = 'uint64'): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A uint64 that must fit a JavaScript number exactly (file offsets, cookies). */
  safeU64(what = 'uint64'): number {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new XdrError(`${what} ${v} is beyond 2^53`);
    return Number(v);
  }

  fixed(n: number, what = 'opaque'): Buffer {
    this.need(n + pad4(n), what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n + pad4(n);
    return out;
  }

  opaque(max: number, what = 'opaque'): Buffer {
    const n = this.u32(`${what} length`);
    if (n > max) throw new XdrError(`${what} of ${n} bytes is longer than the ${max} allowed`);
    return this.fixed(n, what);
  }

  string(max: number, what = 'string'): string {
    return this.opaque(max, what).toString('utf8');
  }
}

/**
 * Builds a message as a list of chunks, so large payloads (READ data) are
 * attached without a copy.
 */
export class XdrWriter {
  private chunks: Buffer[] = [];
  private cur = Buffer.allocUnsafe(512);
  private used = 0;
  private total = 0;

  get length(): number {
    return this.total + this.used;
  }

  private room(n: number): void {
    if (this.cur.length - this.used >= n) return;
    this.flush();
    if (this.cur.length < n) this.cur = Buffer.allocUnsafe(Math.max(4096, n));
  }

  private flush(): void {
    if (this.used > 0) {
      this.chunks.push(this.cur.subarray(0, this.used));
      this.total += this.used;
      this.cur = this.cur.subarray(this.used);
      this.used = 0;
    }
  }

  u32(v: number): this {
    this.room(4);
    this.cur.writeUInt32BE(v >>> 0, this.used);
    this.used += 4;
    return this;
  }

  bool(v: boolean): this {
    return this.u32(v ? 1 : 0);
  }

  u64(v: number | bigint): this {
    this.room(8);
    this.cur.writeBigUInt64BE(BigInt(v), this.used);
    this.used += 8;
    return this;
  }

  /** Fixed-length opaque: the bytes, then zero padding to a multiple of 4. */
  fixed(data: Buffer): this {
    if (data.length >= 4096) {
      this.flush();
      this.chunks.push(data);
      this.total += data.length;
    } else {
      this.room(data.length);
      data.copy(this.cur, this.used);
      this.used += data.length;
    }
    const p = pad4(data.length);
    if (p) {
      this.room(p);
      this.cur.fill(0, this.used, this.used + p);
      this.used += p;
    }
    return this;
  }

  opaque(data: Buffer): this {
    return this.u32(data.length).fixed(data);
  }

  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }

  /** The encoded message as chunks (for a gathered socket write). */
  parts(): Buffer[] {
    this.flush();
    return this.chunks;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts());
  }
}
