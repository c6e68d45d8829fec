/**
 * The server against a real NFSv3 client: libnfs's command-line tools
 * (Debian's libnfs-utils), talking to the NFS and MOUNT ports directly.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NfsServer } from '../src/index.ts';
import { XdrWriter } from '../src/xdr.ts';
import { fileBase, nfsUrl, RpcClient, run, runEnds, writeHoleyFile } from './helpers.ts';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('NFSv3 through libnfs (nfs-ls, nfs-cat, nfs-cp)', () => {
  let dir: string;
  let overlay: string;
  let server: NfsServer;
  let port: number;
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-nfs-'));
    overlay = path.join(dir, 'overlay');
    await mkdir(overlay);
    await writeHoleyFile(path.join(dir, 'disk64.img'), 64 * MiB, 3 * MiB + 12345);
    const h = await open(path.join(dir, 'sparse1g.img'), 'w');
    await h.truncate(1024 * MiB); // all hole…
    await h.write(randomBytes(MiB - 100), 0, MiB - 100, 1023 * MiB + 50); // …except most of the last MiB
    await h.close();
    await writeFile(path.join(dir, 'small.txt'), 'hello from the restore point\n');
    const disk = await fileBase(path.join(dir, 'disk64.img'), 'vm1/vm1-flat.vmdk');
    const sparse = await fileBase(path.join(dir, 'sparse1g.img'), 'vm1/vm1_1-flat.vmdk');
    const small = await fileBase(path.join(dir, 'small.txt'), 'vm1/vm1.vmx');
    closers.push(disk.close, sparse.close, small.close);
    server = new NfsServer({
      host: '127.0.0.1',
      port: 0,
      exports: [
        { name: '/vaultline/r1', writableDir: overlay, allowedClients: ['127.0.0.1'], baseFiles: [disk.base, sparse.base, small.base] },
        { name: '/vaultline/only-2', writableDir: overlay, allowedClients: ['127.0.0.2'], baseFiles: [small.base] },
      ],
    });
    await server.listen();
    port = server.address().port;
  });

  afterAll(async () => {
    await server?.close();
    for (const c of closers) await c();
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the export: base files read-only (0444) in their implied directory', async () => {
    const root = await run('nfs-ls', [nfsUrl(port, '/vaultline/r1')]);
    expect(root.code, root.stderr).toBe(0);
    expect(root.stdout.toString()).toMatch(/^d\S+\s.*\svm1$/m);
    const vm = await run('nfs-ls', [nfsUrl(port, '/vaultline/r1/vm1')]);
    expect(vm.code, vm.stderr).toBe(0);
    const lines = vm.stdout.toString().trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(vm.stdout.toString()).toMatch(/^-r--r--r--\s+1\s+0\s+0\s+67108864 vm1-flat\.vmdk$/m);
    expect(vm.stdout.toString()).toMatch(/^-r--r--r--\s+1\s+0\s+0\s+1073741824 vm1_1-flat\.vmdk$/m);
  });

  it('nfs-cat reads a 64 MiB base file with random data and holes bit-exact', async () => {
    const before = server.counters('/vaultline/r1').bytesReadFromBase;
    const out = await run('nfs-cat', [nfsUrl(port, '/vaultline/r1/vm1/vm1-flat.vmdk')], { maxBuffer: 80 * MiB });
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.length).toBe(64 * MiB);
    expect(sha(out.stdout)).toBe(sha(await readFile(path.join(dir, 'disk64.img'))));
    expect(server.counters('/vaultline/r1').bytesReadFromBase - before).toBeGreaterThanOrEqual(64 * MiB);
  });

  it('nfs-cat reads a 1 GiB sparse base file whose last MiB matches', async () => {
    const out = await runEnds('nfs-cat', [nfsUrl(port, '/vaultline/r1/vm1/vm1_1-flat.vmdk')], MiB);
    expect(out.code, out.stderr).toBe(0);
    expect(out.length).toBe(1024 * MiB);
    const h = await open(path.join(dir, 'sparse1g.img'), 'r');
    const tail = Buffer.alloc(MiB);
    await h.read(tail, 0, MiB, 1023 * MiB);
    await h.close();
    expect(out.tail.equals(tail)).toBe(true);
    expect(out.head.equals(Buffer.alloc(MiB))).toBe(true);
  });

  it('nfs-cp puts a local file into the overlay bit-exact and writes nothing anywhere else', async () => {
    const src = path.join(dir, 'upload.bin');
    const data = randomBytes(5 * MiB + 777);
    await writeFile(src, data);
    const baseBefore = sha(await readFile(path.join(dir, 'disk64.img')));
    const written = server.counters('/vaultline/r1').bytesWrittenToOverlay;
    const cp = await run('nfs-cp', [src, nfsUrl(port, '/vaultline/r1/vm1/upload.bin')]);
    expect(cp.code, cp.stderr).toBe(0);
    expect(sha(await readFile(path.join(overlay, 'vm1', 'upload.bin')))).toBe(sha(data));
    expect(await readdir(overlay, { recursive: true })).toEqual(['vm1', path.join('vm1', 'upload.bin')]);
    expect((await readdir(dir)).sort()).toEqual(['disk64.img', 'overlay', 'small.txt', 'sparse1g.img', 'upload.bin']);
    expect(sha(await readFile(path.join(dir, 'disk64.img')))).toBe(baseBefore);
    expect(server.counters('/vaultline/r1').bytesWrittenToOverlay - written).toBe(data.length);
    // and it reads back through the server
    const back = await run('nfs-cat', [nfsUrl(port, '/vaultline/r1/vm1/upload.bin')]);
    expect(sha(back.stdout)).toBe(sha(data));
  });

  it('nfs-cp onto a base file is refused and the base stays as it was', async () => {
    const src = path.join(dir, 'evil.bin');
    await writeFile(src, randomBytes(MiB));
    const before = sha(await readFile(path.join(dir, 'small.txt')));
    const cp = await run('nfs-cp', [src, nfsUrl(port, '/vaultline/r1/vm1/vm1.vmx')]);
    expect(cp.code).not.toBe(0);
    expect(cp.stderr).toMatch(/NFS3ERR_EXIST|NFS3ERR_ACCES/);
    expect(sha(await readFile(path.join(dir, 'small.txt')))).toBe(before);
    expect((await stat(path.join(overlay, 'vm1', 'vm1.vmx')).catch(() => null))).toBeNull();
    const cat = await run('nfs-cat', [nfsUrl(port, '/vaultline/r1/vm1/vm1.vmx')]);
    expect(cat.stdout.toString()).toBe('hello from the restore point\n');
  });

  it('refuses a client that is not in the allowed list (MNT3ERR_ACCES), and EXPORT shows it nothing', async () => {
    const ls = await run('nfs-ls', [nfsUrl(port, '/vaultline/only-2')]);
    expect(ls.code).not.toBe(0);
    expect(ls.stderr).toMatch(/MNT3ERR_ACCES/);
    const from1 = await RpcClient.connect(port);
    const from2 = await RpcClient.connect(port, '127.0.0.2');
    try {
      const names = async (c: RpcClient) => {
        const r = await c.call(100005, 3, 5);
        const out: string[] = [];
        while (r.body.bool()) {
          out.push(r.body.string(1024));
          while (r.body.bool()) r.body.string(1024);
        }
        return out;
      };
      expect(await names(from1)).toEqual(['/vaultline/r1']);
      expect(await names(from2)).toEqual(['/vaultline/only-2']);
      // A handle the allowed client got is no use from another address.
      const m = await from2.mount('/vaultline/only-2');
      expect(m.status).toBe(0);
      expect((await from2.nfs(1, new XdrWriter().opaque(m.fh as Buffer))).status).toBe(0);
      expect((await from1.nfs(1, new XdrWriter().opaque(m.fh as Buffer))).status).toBe(13);
      expect((await from1.mount('/vaultline/only-2')).status).toBe(13);
    } finally {
      from1.close();
      from2.close();
    }
  });

  it('answers NFS3ERR_STALE for handles of a removed export', async () => {
    const c = await RpcClient.connect(port);
    try {
      const extra = path.join(dir, 'overlay2');
      await mkdir(extra);
      await server.addExport({ name: '/vaultline/r2', writableDir: extra, allowedClients: ['127.0.0.1'] });
      const m = await c.mount('/vaultline/r2');
      expect((await c.nfs(1, new XdrWriter().opaque(m.fh as Buffer))).status).toBe(0);
      expect(server.removeExport('/vaultline/r2')).toBe(true);
      expect((await c.nfs(1, new XdrWriter().opaque(m.fh as Buffer))).status).toBe(70);
      expect((await c.mount('/vaultline/r2')).status).toBe(2);
      expect((await run('nfs-ls', [nfsUrl(port, '/vaultline/r2')])).code).not.toBe(0);
    } finally {
      c.close();
    }
  });
});
