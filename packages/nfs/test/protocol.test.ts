/**
 * What libnfs's tools cannot show, through a minimal RPC client of our own:
 * the RPC accept/reject statuses, the portmapper, the overlay's directory
 * operations, refusals on base files, path traversal, hostile input and limits.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NfsServer } from '../src/index.ts';
import { encodeCall } from '../src/rpc.ts';
import { XdrWriter } from '../src/xdr.ts';
import { diropargs, fattr, MOUNT, NFS, PORTMAP, postOp, RpcClient, sattr, skipWcc } from './helpers.ts';

const ACCES = 13;
const EXIST = 17;
const NOENT = 2;
const INVAL = 22;
const STALE = 70;
const NOTSUPP = 10004;
const fhArg = (fh: Buffer) => new XdrWriter().opaque(fh);

describe('NFS server protocol', () => {
  let dir: string;
  let overlay: string;
  let outside: string;
  let server: NfsServer;
  let port: number;
  let c: RpcClient;
  let root: Buffer;
  const base = randomBytes(300_000);

  const lookup = async (dirFh: Buffer, name: string) => {
    const r = await c.nfs(3, diropargs(dirFh, name));
    return { status: r.status, fh: r.status === 0 ? Buffer.from(r.body.opaque(64)) : null, attr: r.status === 0 ? postOp(r.body) : null };
  };
  const create = async (dirFh: Buffer, name: string, how: 0 | 1 | 2 = 1, verf = Buffer.alloc(8)) => {
    const w = diropargs(dirFh, name).u32(how);
    if (how === 2) w.fixed(verf);
    else sattr(w, 0o644);
    const r = await c.nfs(8, w);
    return { status: r.status, fh: r.status === 0 && r.body.bool() ? Buffer.from(r.body.opaque(64)) : null };
  };
  const write = async (fh: Buffer, offset: number, data: Buffer, stable = 0) => {
    const r = await c.nfs(7, fhArg(fh).u64(offset).u32(data.length).u32(stable).opaque(data));
    if (r.status !== 0) return { status: r.status, count: 0, committed: -1, verf: Buffer.alloc(0) };
    skipWcc(r.body);
    return { status: 0, count: r.body.u32(), committed: r.body.u32(), verf: Buffer.from(r.body.fixed(8)) };
  };
  const read = async (fh: Buffer, offset: number, count: number) => {
    const r = await c.nfs(6, fhArg(fh).u64(offset).u32(count));
    if (r.status !== 0) return { status: r.status, data: Buffer.alloc(0), eof: false };
    postOp(r.body);
    r.body.u32();
    const eof = r.body.bool();
    return { status: 0, eof, data: Buffer.from(r.body.opaque(2 * 1024 * 1024)) };
  };
  const getattr = async (fh: Buffer) => {
    const r = await c.nfs(1, fhArg(fh));
    return { status: r.status, attr: r.status === 0 ? fattr(r.body) : null };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-nfs-proto-'));
    overlay = path.join(dir, 'overlay');
    outside = path.join(dir, 'outside');
    await mkdir(overlay);
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret'), 'not for clients');
    await symlink(outside, path.join(overlay, 'escape'));
    server = new NfsServer({
      host: '127.0.0.1',
      port: 0,
      portmapPort: 0,
      maxConnections: 8,
      exports: [
        {
          name: '/vaultline/p',
          writableDir: overlay,
          allowedClients: ['127.0.0.1'],
          baseFiles: [{ path: 'vm/disk-flat.vmdk', size: base.length, read: (o, l) => Promise.resolve(base.subarray(o, o + l)), mtime: new Date('2026-01-02T03:04:05Z') }],
        },
      ],
    });
    await server.listen();
    port = server.address().port;
    c = await RpcClient.connect(port);
    root = (await c.mount('/vaultline/p')).fh as Buffer;
  });

  afterAll(async () => {
    c?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers PROG_UNAVAIL, PROG_MISMATCH (3..3), PROC_UNAVAIL and GARBAGE_ARGS', async () => {
    expect((await c.call(100021, 4, 0)).stat).toBe(1); // NLM is not here
    const mismatch = await c.call(NFS, 4, 0);
    expect([mismatch.stat, mismatch.body.u32(), mismatch.body.u32()]).toEqual([2, 3, 3]);
    expect((await c.call(MOUNT, 1, 0)).stat).toBe(2);
    expect((await c.call(NFS, 3, 22)).stat).toBe(3);
    expect((await c.call(MOUNT, 3, 6)).stat).toBe(3);
    expect((await c.call(NFS, 3, 1, Buffer.from([0, 0, 1])))).toMatchObject({ replyStat: 0, stat: 4 });
    expect((await c.call(NFS, 3, 0, Buffer.alloc(0), false)).stat).toBe(0); // AUTH_NONE is fine for NULL
    // A call split into 7-byte fragments is put back together.
    const split = await c.send(9999, encodeCall(9999, NFS, 3, 1, new XdrWriter().opaque(root).toBuffer()), 7);
    expect([split.replyStat, split.stat, split.body.u32()]).toEqual([0, 0, 0]);
  });

  it('portmapper answers GETPORT for NFS and MOUNT over TCP, on the main port and on its own', async () => {
    const pm = await RpcClient.connect(server.address().portmapPort as number);
    try {
      for (const client of [c, pm]) {
        const getport = async (prog: number, vers: number, prot: number) => (await client.call(PORTMAP, 2, 3, new XdrWriter().u32(prog).u32(vers).u32(prot).u32(0).toBuffer())).body.u32();
        expect(await getport(NFS, 3, 6)).toBe(port);
        expect(await getport(MOUNT, 3, 6)).toBe(port);
        expect(await getport(NFS, 3, 17)).toBe(0); // no UDP
        expect(await getport(NFS, 4, 6)).toBe(0);
      }
      expect((await pm.call(NFS, 3, 0)).stat).toBe(1); // the portmap port serves only PORTMAP
      expect((await pm.call(PORTMAP, 3, 0)).stat).toBe(2);
    } finally {
      pm.close();
    }
  });

  it('FSINFO offers 1 MiB reads and writes; SYMLINK, MKNOD, LINK and READLINK are NFS3ERR_NOTSUPP / INVAL', async () => {
    const r = await c.nfs(19, fhArg(root));
    expect(r.status).toBe(0);
    postOp(r.body);
    expect([r.body.u32(), r.body.u32(), r.body.u32(), r.body.u32(), r.body.u32()]).toEqual([1048576, 1048576, 4096, 1048576, 1048576]);
    expect((await c.nfs(10, diropargs(root, 'l'))).status).toBe(NOTSUPP);
    expect((await c.nfs(11, diropargs(root, 'n'))).status).toBe(NOTSUPP);
    expect((await c.nfs(15, fhArg(root))).status).toBe(NOTSUPP);
    expect((await c.nfs(5, fhArg(root))).status).toBe(INVAL);
    expect((await c.nfs(18, fhArg(root))).status).toBe(0); // FSSTAT
    expect((await c.nfs(20, fhArg(root))).status).toBe(0); // PATHCONF
  });

  it('base files read exactly, show mode 0444, and refuse write, setattr, remove, rename and shadowing with NFS3ERR_ACCES/EXIST', async () => {
    const vm = (await lookup(root, 'vm')).fh as Buffer;
    const disk = await lookup(vm, 'disk-flat.vmdk');
    expect(disk.attr).toMatchObject({ type: 1, mode: 0o444, size: BigInt(base.length) });
    const fh = disk.fh as Buffer;
    const got = await read(fh, 1000, 200_000);
    expect(got.data.equals(base.subarray(1000, 201_000))).toBe(true);
    const tail = await read(fh, base.length - 10, 100);
    expect([tail.data.length, tail.eof]).toEqual([10, true]);
    const access = await c.nfs(4, fhArg(fh).u32(0x3f));
    postOp(access.body);
    expect(access.body.u32()).toBe(0x1);

    expect((await write(fh, 0, Buffer.from('x'))).status).toBe(ACCES);
    expect((await c.nfs(2, sattr(fhArg(fh), 0o666).u32(0))).status).toBe(ACCES);
    expect((await c.nfs(2, fhArg(fh).u32(0).u32(0).u32(0).u32(1).u64(0).u32(0).u32(0).u32(0))).status).toBe(ACCES);
    expect((await c.nfs(12, diropargs(vm, 'disk-flat.vmdk'))).status).toBe(ACCES);
    expect((await c.nfs(14, diropargs(vm, 'disk-flat.vmdk').opaque(vm).string('moved'))).status).toBe(ACCES);
    expect((await c.nfs(13, diropargs(root, 'vm'))).status).toBe(ACCES);
    expect((await create(vm, 'disk-flat.vmdk', 0)).status).toBe(ACCES);
    expect((await create(vm, 'disk-flat.vmdk', 1)).status).toBe(EXIST);
    expect((await c.nfs(9, sattr(diropargs(root, 'vm')))).status).toBe(EXIST);
    // something else may go to the overlay and be renamed onto... no: a base name stays refused
    const other = await create(root, 'other.vmdk');
    expect((await c.nfs(14, diropargs(root, 'other.vmdk').opaque(vm).string('disk-flat.vmdk'))).status).toBe(ACCES);
    expect(other.status).toBe(0);
    expect(base.equals(base)).toBe(true);
    expect(await readdir(overlay)).not.toContain('disk-flat.vmdk');
  });

  it('overlay: create (guarded, exclusive retry), write unstable + commit with a stable verifier, setattr size/mode, rename, remove, rmdir', async () => {
    const vm = (await lookup(root, 'vm')).fh as Buffer;
    const f = await create(vm, 'vm.vmx');
    expect(f.status).toBe(0);
    expect((await stat(path.join(overlay, 'vm', 'vm.vmx'))).isFile()).toBe(true); // the implied directory was made in the overlay
    expect((await create(vm, 'vm.vmx', 1)).status).toBe(EXIST);
    const fh = f.fh as Buffer;
    const data = randomBytes(1024 * 1024);
    const w1 = await write(fh, 0, data);
    const w2 = await write(fh, data.length, data.subarray(0, 10), 2);
    expect([w1.status, w1.count, w1.committed, w2.committed]).toEqual([0, data.length, 0, 2]);
    expect(w1.verf.equals(w2.verf)).toBe(true);
    const commit = await c.nfs(21, fhArg(fh).u64(0).u32(0));
    expect(commit.status).toBe(0);
    skipWcc(commit.body);
    expect(Buffer.from(commit.body.fixed(8)).equals(w1.verf)).toBe(true);
    expect((await readFile(path.join(overlay, 'vm', 'vm.vmx'))).equals(Buffer.concat([data, data.subarray(0, 10)]))).toBe(true);
    expect((await read(fh, 5, 20)).data.equals(data.subarray(5, 25))).toBe(true);

    // SETATTR: truncate, extend, mode
    expect((await c.nfs(2, fhArg(fh).u32(0).u32(0).u32(0).u32(1).u64(100).u32(0).u32(0).u32(0))).status).toBe(0);
    expect((await stat(path.join(overlay, 'vm', 'vm.vmx'))).size).toBe(100);
    expect((await c.nfs(2, fhArg(fh).u32(0).u32(0).u32(0).u32(1).u64(5000).u32(0).u32(0).u32(0))).status).toBe(0);
    expect((await stat(path.join(overlay, 'vm', 'vm.vmx'))).size).toBe(5000);
    expect((await c.nfs(2, sattr(fhArg(fh), 0o600).u32(0))).status).toBe(0);
    expect((await stat(path.join(overlay, 'vm', 'vm.vmx'))).mode & 0o777).toBe(0o600);

    // EXCLUSIVE: a retry with the same verifier succeeds, another verifier is EXIST
    const verf = Buffer.from('12345678');
    expect((await create(root, 'excl', 2, verf)).status).toBe(0);
    expect((await create(root, 'excl', 2, verf)).status).toBe(0);
    expect((await create(root, 'excl', 2, Buffer.from('87654321'))).status).toBe(EXIST);

    // MKDIR, RENAME (the handle follows the file), REMOVE, RMDIR
    const mk = await c.nfs(9, sattr(diropargs(root, 'snap'), 0o755));
    expect(mk.status).toBe(0);
    const snap = (await lookup(root, 'snap')).fh as Buffer;
    const rn = await c.nfs(14, diropargs(vm, 'vm.vmx').opaque(snap).string('vm-renamed.vmx'));
    expect(rn.status).toBe(0);
    expect((await stat(path.join(overlay, 'snap', 'vm-renamed.vmx'))).size).toBe(5000);
    expect((await getattr(fh)).status).toBe(0); // same handle, new place
    expect((await lookup(vm, 'vm.vmx')).status).toBe(NOENT);
    expect((await c.nfs(13, diropargs(root, 'snap'))).status).toBe(66); // NOTEMPTY
    expect((await c.nfs(12, diropargs(snap, 'vm-renamed.vmx'))).status).toBe(0);
    expect((await getattr(fh)).status).toBe(STALE);
    expect((await c.nfs(13, diropargs(root, 'snap'))).status).toBe(0);
    expect(await readdir(overlay)).not.toContain('snap');
  });

  it('READDIRPLUS pages by maxcount with cookies and lists base and overlay entries once each', async () => {
    const many = (await c.nfs(9, sattr(diropargs(root, 'many')))).status;
    expect(many).toBe(0);
    const fh = (await lookup(root, 'many')).fh as Buffer;
    const names = Array.from({ length: 60 }, (_, i) => `file-${String(i).padStart(3, '0')}`);
    for (const n of names) expect((await create(fh, n)).status).toBe(0);
    const seen: string[] = [];
    let cookie = 0n;
    let pages = 0;
    for (;;) {
      const r = await c.nfs(17, fhArg(fh).u64(cookie).fixed(Buffer.alloc(8)).u32(4096).u32(1500));
      expect(r.status).toBe(0);
      postOp(r.body);
      r.body.fixed(8);
      while (r.body.bool()) {
        r.body.u64();
        seen.push(r.body.string(255));
        cookie = r.body.u64();
        postOp(r.body);
        if (r.body.bool()) r.body.opaque(64);
      }
      pages++;
      if (r.body.bool()) break;
    }
    expect(seen).toEqual(['.', '..', ...names]);
    expect(pages).toBeGreaterThan(3);
    const small = await c.nfs(17, fhArg(fh).u64(0).fixed(Buffer.alloc(8)).u32(4096).u32(100));
    expect(small.status).toBe(10005); // TOOSMALL

    const top = await c.nfs(16, fhArg(root).u64(0).fixed(Buffer.alloc(8)).u32(8192));
    postOp(top.body);
    top.body.fixed(8);
    const topNames: string[] = [];
    while (top.body.bool()) {
      top.body.u64();
      topNames.push(top.body.string(255));
      top.body.u64();
    }
    expect(topNames.filter((n) => n === 'vm')).toHaveLength(1);
    expect(topNames).toContain('escape');
  });

  it('refuses names with "/", "..", NUL or over 255 bytes, and never follows a symlink out of the overlay', async () => {
    for (const name of ['../x', 'a/b', '..', '.', 'nul\0x', '']) expect((await create(root, name)).status, JSON.stringify(name)).toBe(INVAL);
    expect((await create(root, 'x'.repeat(300))).status).toBe(63);
    expect((await lookup(root, '../outside')).status).toBe(NOENT);
    const esc = await lookup(root, 'escape');
    expect(esc.attr?.type).toBe(5); // shown as a symlink…
    expect((await lookup(esc.fh as Buffer, 'secret')).status).toBe(20); // …that is not a directory to us (NOTDIR)
    expect((await c.nfs(5, fhArg(esc.fh as Buffer))).status).toBe(NOTSUPP);
    expect((await read(esc.fh as Buffer, 0, 100)).status).toBe(INVAL);
    expect(await readdir(outside)).toEqual(['secret']);
    // A symlink that a local user swaps in for an overlay directory is refused, not followed.
    await mkdir(path.join(overlay, 'real'));
    const real = (await lookup(root, 'real')).fh as Buffer;
    await rm(path.join(overlay, 'real'), { recursive: true });
    await symlink(outside, path.join(overlay, 'real'));
    expect((await create(real, 'planted')).status).not.toBe(0);
    expect(await readdir(outside)).toEqual(['secret']);
  });

  it('survives a few hundred malformed records and still serves; an oversized record closes only that connection', async () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const valid = encodeCall(1, NFS, 3, 1, new XdrWriter().opaque(root).toBuffer());
    for (let round = 0; round < 20; round++) {
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.on('error', () => undefined);
      for (let i = 0; i < 20; i++) {
        let body: Buffer;
        const kind = rand();
        if (kind < 0.3) body = randomBytes(Math.floor(rand() * 300));
        else if (kind < 0.7) {
          body = Buffer.from(valid); // a real call with bytes flipped
          for (let k = 0; k < 4; k++) body[Math.floor(rand() * body.length)] = Math.floor(rand() * 256);
        } else {
          body = Buffer.from(valid.subarray(0, Math.floor(rand() * valid.length))); // truncated
        }
        const head = Buffer.alloc(4);
        head.writeUInt32BE((0x80000000 | body.length) >>> 0);
        sock.write(Buffer.concat([head, body]));
      }
      sock.write(randomBytes(64)); // and a torn or oversized fragment header
      await new Promise((r) => setTimeout(r, 20));
      sock.destroy();
    }
    const big = net.connect(port, '127.0.0.1');
    big.on('error', () => undefined);
    const closed = new Promise((r) => big.on('close', r));
    const head = Buffer.alloc(4);
    head.writeUInt32BE((0x80000000 | (64 * 1024 * 1024)) >>> 0);
    big.write(head);
    await closed;
    expect((await getattr(root)).status).toBe(0);
    const again = await RpcClient.connect(port);
    expect((await again.call(NFS, 3, 0)).stat).toBe(0);
    again.close();
  });

  it('caps connections per client address without locking out the others', async () => {
    const capped = new NfsServer({ host: '127.0.0.1', port: 0, maxConnectionsPerClient: 2, exports: [] });
    await capped.listen();
    const p = capped.address().port;
    const mine = await Promise.all([RpcClient.connect(p), RpcClient.connect(p), RpcClient.connect(p)]);
    const other = await RpcClient.connect(p, '127.0.0.2');
    try {
      const outcomes = await Promise.allSettled(mine.map((x) => x.call(NFS, 3, 0)));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
      expect((await other.call(NFS, 3, 0)).stat).toBe(0);
    } finally {
      for (const x of [...mine, other]) x.close();
      await capped.close();
    }
  });

  it('caps connections; handles from an earlier server start are NFS3ERR_STALE', async () => {
    const extra = await Promise.all(Array.from({ length: 10 }, () => RpcClient.connect(port)));
    const outcomes = await Promise.allSettled(extra.map((x) => x.call(NFS, 3, 0)));
    expect(outcomes.filter((o) => o.status === 'rejected').length).toBeGreaterThanOrEqual(3); // 8 allowed, one is ours
    for (const x of extra) x.close();

    const second = new NfsServer({ host: '127.0.0.1', port: 0, exports: [{ name: '/vaultline/p', writableDir: overlay, allowedClients: ['127.0.0.1'] }] });
    await second.listen();
    const c2 = await RpcClient.connect(second.address().port);
    try {
      expect((await c2.nfs(1, fhArg(root))).status).toBe(STALE);
      expect((await c2.nfs(1, fhArg(Buffer.alloc(10)))).status).toBe(10001); // BADHANDLE
    } finally {
      c2.close();
      await second.close();
    }
  });
});
