/**
 * The NBD server against two clients: our own (to check the protocol details
 * one by one) and libnbd's nbdinfo/nbdcopy (an independent implementation)
 * reading a restore point's disk from the real repository, byte for byte.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DiskReader, Repository, RestorePointWriter } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diskExport, NbdClient, NbdError, NbdServer, nbdProtocol as P } from '../src/index.ts';
import { Wire, u32, u64 } from '../src/nbd/wire.ts';
import { ensureFlrTools, repositoryFingerprint } from './tools.ts';

const MiB = 1024 * 1024;
const CHUNK = 256 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
// Asynchronous on purpose: the server runs in this process and must keep answering.
const run = async (cmd: string, args: string[]) => (await promisify(execFile)(cmd, args, { encoding: 'utf8', timeout: 60_000 })).stdout;

describe('NBD server over a restore point (own client and libnbd as peers)', () => {
  let dir: string;
  let image: Buffer;
  let server: NbdServer;
  let socket: string;
  let repo: Repository;
  let reader: DiskReader;
  let before: Map<string, string>;
  const uri = () => `nbd+unix:///disk0?socket=${socket}`;

  beforeAll(async () => {
    ensureFlrTools();
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-nbd-'));
    // 9 MiB + 12345 bytes: data, a 2 MiB hole, data, a hole, a ragged tail.
    image = Buffer.alloc(9 * MiB + 12345);
    randomBytes(3 * MiB).copy(image, 0);
    randomBytes(2 * MiB + 100).copy(image, 5 * MiB);
    image.write('tail of the disk', image.length - 20);
    const repoDir = path.join(dir, 'repo');
    await Repository.init(repoDir, { passphrase: 'nbd test' });
    repo = await Repository.open(repoDir, { passphrase: 'nbd test' });
    const rp = await RestorePointWriter.open(repo, { vmId: 'vm-nbd', vm: { name: 'nbd' } });
    const w = await rp.openDisk({ key: '2000', capacity: image.length });
    for (let off = 0; off < image.length; off += MiB) {
      const part = image.subarray(off, Math.min(off + MiB, image.length));
      if (part.some((b) => b !== 0)) await w.write(off, part);
    }
    const m = await rp.commit();
    reader = await DiskReader.open(repo, { vmId: 'vm-nbd', id: m.id }, '2000');
    before = repositoryFingerprint(repoDir);
    socket = path.join(dir, 'nbd.sock');
    server = new NbdServer([diskExport('disk0', reader, 'test disk'), { name: 'small', size: 4096, read: async (o, l) => Buffer.alloc(l, 7) }]);
    await server.listen(socket);
  });
  afterAll(async () => {
    await server?.close();
    await repo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('negotiates fixed newstyle + NBD_OPT_GO and serves reads that equal the image (structured replies)', async () => {
    const c = await NbdClient.connect(socket, { export: 'disk0' });
    expect(c.structured).toBe(true);
    expect(c.size).toBe(image.length);
    expect(c.transmissionFlags & P.TF_READ_ONLY).toBeTruthy();
    expect(c.transmissionFlags & P.TF_CAN_MULTI_CONN).toBeTruthy();
    expect(c.transmissionFlags & P.TF_SEND_DF).toBeTruthy();
    const spans: Array<[number, number]> = [
      [0, 512],
      [3 * MiB - 1000, 2 * MiB + 2000], // data → hole → data
      [image.length - 4096, 4096],
      [777, 1],
      [CHUNK - 3, 7],
      [0, image.length], // the whole disk in one request
    ];
    for (const [o, l] of spans) expect(sha(await c.read(o, l))).toBe(sha(image.subarray(o, o + l)));
    for (let i = 0; i < 50; i++) {
      const o = Math.floor(Math.random() * (image.length - 1));
      const l = 1 + Math.floor(Math.random() * Math.min(300_000, image.length - o - 1));
      expect((await c.read(o, l)).equals(image.subarray(o, o + l))).toBe(true);
    }
    await c.disconnect();
  });

  it('sends holes as NBD_REPLY_TYPE_OFFSET_HOLE, and one data chunk with NBD_CMD_FLAG_DF', async () => {
    const c = await NbdClient.connect(socket, { export: 'disk0' });
    expect(await c.readChunks(3 * MiB - CHUNK, 2 * CHUNK)).toEqual([P.REPLY_TYPE_OFFSET_DATA, P.REPLY_TYPE_OFFSET_HOLE]);
    expect(await c.readChunks(3 * MiB - CHUNK, 2 * CHUNK, P.CMD_FLAG_DF)).toEqual([P.REPLY_TYPE_OFFSET_DATA]);
    expect((await c.read(3 * MiB - CHUNK, 2 * CHUNK, P.CMD_FLAG_DF)).equals(image.subarray(3 * MiB - CHUNK, 3 * MiB + CHUNK))).toBe(true);
    await c.disconnect();
  });

  it('serves simple replies to a client that does not ask for structured ones', async () => {
    const c = await NbdClient.connect(socket, { export: 'disk0', structured: false });
    expect(c.structured).toBe(false);
    expect(c.transmissionFlags & P.TF_SEND_DF).toBe(0);
    expect((await c.read(5 * MiB - 10, 100_000)).equals(image.subarray(5 * MiB - 10, 5 * MiB - 10 + 100_000))).toBe(true);
    await expect(c.read(image.length - 10, 20)).rejects.toMatchObject({ errno: P.EINVAL });
    await c.disconnect();
  });

  it('refuses writes with EPERM (reading and dropping the payload), reads past the end with EINVAL and huge reads with EOVERFLOW, and stays usable', async () => {
    const c = await NbdClient.connect(socket, { export: 'disk0' });
    const err = await c.write(0, Buffer.alloc(65536, 0xaa)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect(err).toMatchObject({ errno: P.EPERM, message: 'export disk0 is read-only' });
    await expect(c.read(image.length - 10, 20)).rejects.toMatchObject({ errno: P.EINVAL, message: expect.stringContaining('beyond the end of disk0') });
    await expect(c.read(0, P.MAX_REQUEST + 1)).rejects.toMatchObject({ errno: P.EOVERFLOW });
    expect((await c.read(0, 4096)).equals(image.subarray(0, 4096))).toBe(true);
    await c.disconnect();
  });

  it('answers NBD_OPT_GO for an unknown export with NBD_REP_ERR_UNKNOWN naming the exports, STARTTLS with ERR_UNSUP, and lists exports', async () => {
    const c = await NbdClient.open(socket);
    const tls = await c.option(P.OPT_STARTTLS, Buffer.alloc(0));
    expect(tls.at(-1)!.type).toBe(P.REP_ERR_UNSUP);
    const listed = await c.option(P.OPT_LIST, Buffer.alloc(0));
    expect(listed.filter((r) => r.type === P.REP_SERVER).map((r) => r.data.toString('utf8', 4, 4 + r.data.readUInt32BE(0)))).toEqual(['disk0', 'small']);
    const err = await c.go('nope').catch((e: unknown) => e as NbdError);
    expect(err).toMatchObject({ errno: P.REP_ERR_UNKNOWN });
    expect((err as Error).message).toContain('no export named "nope" (this server has "disk0", "small")');
    await c.go('small'); // haggling goes on after an error
    expect(c.size).toBe(4096);
    c.destroy();
  });

  it('enters transmission through the old NBD_OPT_EXPORT_NAME too', async () => {
    const c = await NbdClient.open(socket);
    await c.wire.write(u64(P.IHAVEOPT), u32(P.OPT_EXPORT_NAME), u32(5), Buffer.from('disk0'));
    const reply = await c.wire.read(10); // no 124 zero bytes: NO_ZEROES was negotiated
    expect(Number(reply.readBigUInt64BE(0))).toBe(image.length);
    expect(reply.readUInt16BE(8) & P.TF_READ_ONLY).toBeTruthy();
    expect((await c.read(100, 100)).equals(image.subarray(100, 200))).toBe(true);
    await c.disconnect();
  });

  it('reports base:allocation block status matching the repository holes', async () => {
    const c = await NbdClient.connect(socket, { export: 'disk0', allocation: true });
    expect(c.allocation).toBe(true);
    const extents = await c.blockStatus(0, image.length);
    expect(extents.reduce((n, e) => n + e.length, 0)).toBe(image.length);
    let pos = 0;
    for (const e of extents) {
      for (let off = pos; off < pos + e.length; off += CHUNK) expect(reader.isHole(Math.floor(off / CHUNK))).toBe(e.flags === (P.STATE_HOLE | P.STATE_ZERO));
      pos += e.length;
    }
    expect(extents.some((e) => e.flags === 3)).toBe(true);
    c.destroy();
  });

  it('drops a client that breaks the protocol (bad magic) without disturbing others', async () => {
    const good = await NbdClient.connect(socket, { export: 'disk0' });
    const bad = net.createConnection(socket);
    const w = new Wire(bad);
    await w.read(18);
    await w.write(u32(P.FLAG_C_FIXED_NEWSTYLE), Buffer.from('not an option header'));
    await new Promise((r) => bad.once('close', r));
    expect((await good.read(0, 10)).equals(image.subarray(0, 10))).toBe(true);
    await good.disconnect();
  });

  it('is read by nbdinfo and nbdcopy (libnbd) exactly: size, read-only, allocation map, every byte', async () => {
    const info = JSON.parse(await run('nbdinfo', ['--json', uri()])) as { protocol: string; exports: Array<{ 'export-size': number; is_read_only: boolean; contexts: string[]; block_size_preferred?: number }> };
    expect(info.protocol).toBe('newstyle-fixed');
    expect(info.exports[0]).toMatchObject({ 'export-size': image.length, is_read_only: true, block_size_preferred: P.PREFERRED_BLOCK });
    expect(info.exports[0]!.contexts).toContain('base:allocation');
    const map = (await run('nbdinfo', ['--map', uri()]))
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .map(([o, l, t]) => ({ offset: Number(o), length: Number(l), type: Number(t) }));
    expect(map.reduce((n, e) => n + e.length, 0)).toBe(image.length);
    expect(map.find((e) => e.offset === 3 * MiB)).toMatchObject({ type: 3 }); // the 2 MiB hole
    const out = path.join(dir, 'copy.img');
    await run('nbdcopy', [uri(), out]);
    expect(sha(await readFile(out))).toBe(sha(image));
    const multi = path.join(dir, 'copy4.img');
    await run('nbdcopy', ['--connections=4', '--requests=16', uri(), multi]);
    expect(sha(await readFile(multi))).toBe(sha(image));
  });

  it('leaves the repository byte-identical', () => {
    expect(repositoryFingerprint(path.join(dir, 'repo'))).toEqual(before);
  });
});
