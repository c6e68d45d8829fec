import { describe, expect, it } from 'vitest';
import { AcceptStat, AuthStat, encodeCall, frame, parseCall, RecordParser, RecordTooLarge, RpcHeaderError } from '../src/rpc.ts';
import { XdrError, XdrReader, XdrWriter } from '../src/xdr.ts';

const mark = (len: number, last: boolean) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(((last ? 0x80000000 : 0) | len) >>> 0);
  return b;
};

describe('XDR', () => {
  it('round-trips words, hypers, opaques (padded to 4) and strings', () => {
    const big = Buffer.alloc(5000, 7);
    const w = new XdrWriter().u32(0xdeadbeef).u64(2n ** 40n + 3n).bool(true).opaque(Buffer.from('abcde')).string('héllo').fixed(Buffer.from([1, 2, 3])).opaque(big);
    const buf = w.toBuffer();
    expect(buf.length % 4).toBe(0);
    const r = new XdrReader(buf);
    expect(r.u32()).toBe(0xdeadbeef);
    expect(r.u64()).toBe(2n ** 40n + 3n);
    expect(r.bool()).toBe(true);
    expect(r.opaque(10).toString()).toBe('abcde');
    expect(r.string(10)).toBe('héllo');
    expect([...r.fixed(3)]).toEqual([1, 2, 3]);
    expect(r.opaque(8192).equals(big)).toBe(true);
    expect(r.remaining).toBe(0);
  });

  it('refuses reads past the end, over-long opaques, non-boolean booleans and offsets beyond 2^53', () => {
    expect(() => new XdrReader(Buffer.alloc(2)).u32()).toThrow(XdrError);
    expect(() => new XdrReader(new XdrWriter().opaque(Buffer.alloc(100)).toBuffer()).opaque(64)).toThrow(/longer than the 64 allowed/);
    expect(() => new XdrReader(new XdrWriter().u32(1000).toBuffer()).opaque(4096)).toThrow(/needs 1000 bytes/);
    expect(() => new XdrReader(new XdrWriter().u32(2).toBuffer()).bool()).toThrow(/not a boolean/);
    expect(() => new XdrReader(new XdrWriter().u64(2n ** 60n).toBuffer()).safeU64()).toThrow(/beyond 2\^53/);
  });
});

describe('record marking', () => {
  it('joins multi-fragment records and splits records arriving in odd chunks', () => {
    const p = new RecordParser(1024);
    const stream = Buffer.concat([mark(3, false), Buffer.from('abc'), mark(2, true), Buffer.from('de'), mark(0, true), mark(4, true), Buffer.from('wxyz')]);
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 3) out.push(...p.push(stream.subarray(i, i + 3)));
    expect(out.map((b) => b.toString())).toEqual(['abcde', '', 'wxyz']);
    expect(p.pending).toBe(0);
  });

  it('refuses a record over the cap from its fragment headers, before buffering the body', () => {
    const p = new RecordParser(100);
    expect(p.push(Buffer.concat([mark(60, false), Buffer.alloc(60)]))).toEqual([]);
    expect(() => p.push(mark(60, true))).toThrow(RecordTooLarge);
    expect(() => new RecordParser(100).push(mark(0x7fffffff, true))).toThrow(/over the 100-byte limit/);
  });

  it('frames a reply as one last fragment', () => {
    const parts = frame([Buffer.from('ab'), Buffer.from('cd')]);
    expect(Buffer.concat(parts).readUInt32BE(0)).toBe(0x80000004);
  });
});

describe('RPC call headers', () => {
  it('parses AUTH_SYS credentials and leaves the arguments', () => {
    const call = parseCall(encodeCall(7, 100003, 3, 1, Buffer.from([0, 0, 0, 9]), { stamp: 5, machine: 'esx01', uid: 0, gid: 0, gids: [1, 2] }));
    expect(call).toMatchObject({ xid: 7, prog: 100003, vers: 3, proc: 1, authSys: { machine: 'esx01', uid: 0, gids: [1, 2] } });
    expect(call.args.u32()).toBe(9);
  });

  it('answers RPC version 3 with RPC_MISMATCH, unknown flavors with AUTH_BADCRED, and drops non-calls', () => {
    const v3 = encodeCall(9, 100003, 3, 0, Buffer.alloc(0));
    v3.writeUInt32BE(3, 8);
    const err = (() => {
      try {
        parseCall(v3);
      } catch (e) {
        return e as RpcHeaderError;
      }
      throw new Error('no error');
    })();
    expect(err).toBeInstanceOf(RpcHeaderError);
    const reply = new XdrReader(Buffer.concat(err.reply ?? []));
    expect([reply.u32(), reply.u32(), reply.u32(), reply.u32(), reply.u32(), reply.u32()]).toEqual([9, 1, 1, 0, 2, 2]);

    const flavor = encodeCall(10, 100003, 3, 0, Buffer.alloc(0));
    flavor.writeUInt32BE(6, 24); // RPCSEC_GSS
    try {
      parseCall(flavor);
      throw new Error('no error');
    } catch (e) {
      const r = new XdrReader(Buffer.concat((e as RpcHeaderError).reply ?? []));
      expect([r.u32(), r.u32(), r.u32(), r.u32(), r.u32()]).toEqual([10, 1, 1, 1, AuthStat.BADCRED]);
    }
    expect(() => parseCall(Buffer.from([0, 0, 0, 1, 0, 0, 0, 1]))).toThrow(/not a call/);
    expect(() => parseCall(Buffer.from([0, 0]))).toThrow(/too short/);
    expect(AcceptStat.GARBAGE_ARGS).toBe(4);
  });
});
