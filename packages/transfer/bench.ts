/**
 * Loopback throughput of a TransporterBackend against a LocalBackend on the same disk: a 256 MiB
 * streamed upload in 1 MiB writes, then ranged reads (4 MiB one after another, and 1 MiB eight at
 * a time). The RepositoryServer runs in a child process, as it would on its own machine, so each side
 * has its own event loop; the CPU seconds per GiB of each side are printed beside the wall-clock rate
 * (the rate depends on what else the machine is doing, the CPU cost much less).
 *
 *   npm run bench -w @vaultline/transfer
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { LocalBackend } from '@vaultline/repository';
import type { Backend } from '@vaultline/repository';
import { TransporterBackend } from './src/index.ts';
import { startFixture } from './test/fixture.ts';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;

if (process.argv[2] === 'serve') {
  const fx = await startFixture();
  const { server, clientCert, ca, folders } = fx;
  process.stdout.write(`${JSON.stringify({ port: server.port, fingerprint: server.fingerprint, clientCert, caPem: ca.certPem, folder: folders.main })}\n`);
  process.stdin.resume();
  await once(process.stdin, 'end');
  await fx.stop();
} else {
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, 'serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const info = JSON.parse(line.toString()) as { port: number; fingerprint: string; clientCert: { certPem: string; keyPem: string }; caPem: string; folder: string };
  const remote = new TransporterBackend({ host: '127.0.0.1', port: info.port, repository: 'main', identity: info.clientCert, caPem: info.caPem, serverFingerprint: info.fingerprint });
  const local = new LocalBackend(`${info.folder}-local`);
  /** CPU seconds (user + system) the server process has used, from /proc. */
  const serverCpu = () => {
    const fields = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  const phase = async (name: string, fn: () => Promise<void>) => {
    const [t, c, s] = [performance.now(), process.cpuUsage(), serverCpu()];
    await fn();
    const gib = TOTAL / 2 ** 30;
    const client = process.cpuUsage(c);
    const rate = (TOTAL / MiB / ((performance.now() - t) / 1000)).toFixed(0);
    console.log(`${name.padEnd(46)} ${rate.padStart(5)} MiB/s   CPU s/GiB: client ${((client.user + client.system) / 1e6 / gib).toFixed(2)}, server ${((serverCpu() - s) / gib).toFixed(2)}`);
  };
  const data = Buffer.alloc(MiB, 0x5a);
  for (const [name, backend] of [
    ['transporter', remote],
    ['local', local],
  ] as Array<[string, Backend]>) {
    for (let round = 0; round < 3; round++) {
      await phase(`${name}: upload 256 MiB in 1 MiB writes`, async () => {
        const w = await backend.openWriter('bench');
        for (let off = 0; off < TOTAL; off += MiB) await w.write(data);
        await w.commit();
      });
      const into = Buffer.alloc(4 * MiB);
      await phase(`${name}: readRange 4 MiB, sequential`, async () => {
        for (let off = 0; off < TOTAL; off += 4 * MiB) await backend.readRange('bench', off, 4 * MiB, into);
      });
      await phase(`${name}: readRange 1 MiB, 8 in parallel`, async () => {
        for (let off = 0; off < TOTAL; off += 8 * MiB) await Promise.all(Array.from({ length: 8 }, (_, i) => backend.readRange('bench', off + i * MiB, MiB)));
      });
    }
  }
  await remote.close();
  fs.rmSync(`${info.folder}-local`, { recursive: true, force: true });
  child.stdin.end();
  await once(child, 'exit');
}
