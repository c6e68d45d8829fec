/**
 * Read throughput of one large file through this NFS server next to Debian's
 * nfs-ganesha (FSAL_VFS) serving the same file from a real directory:
 *
 *   npx tsx packages/nfs/bench-nfs.ts [sizeMiB=1024] [runs=3]
 *
 * Writes a file of random data, then times `nfs-cat <url> > /dev/null`
 * (libnfs, NFSv3 over TCP on loopback) against each server, page cache warm
 * for both. Starts `rpcbind -w -f` when nothing listens on port 111 (ganesha
 * needs it) and ganesha.nfsd in the foreground, and stops both (by their
 * process ids) at the end. Needs root for ganesha. Prints MiB/s per run, the
 * best of each, and the ratio.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NfsServer } from './src/index.ts';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 3);
const GANESHA_PORT = 20549;

const url = (port: number, p: string) => `nfs://127.0.0.1${p}?version=3&nfsport=${port}&mountport=${port}&auto-traverse-mounts=0`;

function nfsCat(u: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('nfs-cat', [u], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`nfs-cat ${u} exited ${code}: ${err.trim()}`))));
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

async function waitFor(port: number, what: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await listening(port)) return;
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before listening on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on port ${port} within 20 s`);
}

async function measure(label: string, u: string): Promise<number> {
  await nfsCat(u); // warm-up: page cache, server caches
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) {
    const ms = await nfsCat(u);
    rates.push(sizeMiB / (ms / 1000));
    console.log(`${label} run ${i + 1}: ${(ms / 1000).toFixed(2)} s, ${rates[i]?.toFixed(0)} MiB/s`);
  }
  return Math.max(...rates);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-nfs-bench-'));
  const data = path.join(dir, 'data');
  const overlay = path.join(dir, 'overlay');
  await mkdir(data);
  await mkdir(overlay);
  const file = path.join(data, 'disk-flat.vmdk');
  const out = await open(file, 'w');
  for (let off = 0; off < sizeMiB * MiB; off += 16 * MiB) await out.write(randomBytes(16 * MiB), 0, 16 * MiB, off);
  await out.close();
  const fh = await open(file, 'r');

  const children: ChildProcess[] = [];
  const server = new NfsServer({
    host: '127.0.0.1',
    port: 0,
    exports: [
      {
        name: '/vaultline/bench',
        writableDir: overlay,
        allowedClients: ['127.0.0.1'],
        baseFiles: [
          {
            path: 'disk-flat.vmdk',
            size: sizeMiB * MiB,
            async read(offset, length) {
              const buf = Buffer.allocUnsafe(length);
              let got = 0;
              while (got < length) {
                const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
                if (bytesRead === 0) throw new Error(`short read at ${offset + got}`);
                got += bytesRead;
              }
              return buf;
            },
          },
        ],
      },
    ],
  });
  try {
    await server.listen();
    console.log(`${sizeMiB} MiB file, ${runs} runs each, nfs-cat > /dev/null over loopback (libnfs ${'NFSv3/TCP'})`);
    const ours = await measure('vaultline-nfs', url(server.address().port, '/vaultline/bench/disk-flat.vmdk'));
    await server.close();

    if (!(await listening(111))) {
      const rpcbind = spawn('rpcbind', ['-w', '-f'], { stdio: 'ignore' });
      children.push(rpcbind);
      await waitFor(111, 'rpcbind', rpcbind);
    }
    const conf = path.join(dir, 'ganesha.conf');
    await writeFile(
      conf,
      `NFS_CORE_PARAM { Protocols = 3; NFS_Port = ${GANESHA_PORT}; MNT_Port = ${GANESHA_PORT + 1}; Bind_addr = 127.0.0.1; Enable_NLM = false; Enable_RQUOTA = false; }
NFSV4 { Graceless = true; }
EXPORT { Export_Id = 77; Path = "${data}"; Pseudo = "${data}"; Access_Type = RW; Squash = No_Root_Squash; Protocols = 3; Transports = TCP; SecType = sys; FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
`,
    );
    const ganesha = spawn('ganesha.nfsd', ['-F', '-f', conf, '-L', path.join(dir, 'ganesha.log'), '-p', path.join(dir, 'ganesha.pid')], { stdio: 'ignore' });
    children.push(ganesha);
    await waitFor(GANESHA_PORT, 'ganesha.nfsd', ganesha);
    await waitFor(GANESHA_PORT + 1, 'ganesha.nfsd (MOUNT)', ganesha);
    const u = `nfs://127.0.0.1${data}/disk-flat.vmdk?version=3&nfsport=${GANESHA_PORT}&mountport=${GANESHA_PORT + 1}&auto-traverse-mounts=0`;
    let theirs: number;
    try {
      theirs = await measure('nfs-ganesha', u);
    } catch (err) {
      const log = await readFile(path.join(dir, 'ganesha.log'), 'utf8').catch(() => '');
      throw new Error(`${(err as Error).message}\nganesha log:\n${log.slice(-2000)}`);
    }
    console.log(`best: vaultline-nfs ${ours.toFixed(0)} MiB/s, nfs-ganesha ${theirs.toFixed(0)} MiB/s, ratio ${(ours / theirs).toFixed(2)}`);
  } finally {
    await server.close();
    for (const c of children.reverse()) {
      if (c.exitCode === null && c.pid) {
        c.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            c.kill('SIGKILL');
            r(null);
          }, 10_000);
          c.on('exit', () => {
            clearTimeout(t);
            r(null);
          });
        });
      }
    }
    await fh.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
