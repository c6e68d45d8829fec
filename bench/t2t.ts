/**
 * Transporter-to-Transporter benchmark (a script that prints figures, never a test).
 *
 *   npm run bench -- t2t [--image-mib 512] [--rates 1000,100]
 *
 * Per link rate, two network namespaces joined by a veth pair shaped by tc (packages/netlab), in one run:
 *  - the raw link: one plain TCP stream's goodput (netlab's source/sink), the most any protocol over TCP
 *    can carry there;
 *  - the product: a repository-side Transporter serving a folder in one namespace, a source side backing
 *    up an image of --image-mib MiB (zeros, text, random data) into it from the other, then an
 *    incremental, a cloned VM and a restore (packages/transfer/test/fixtures/t2t-run.ts).
 * The full backup's wire rate (the kernel's byte counters over its time) against the raw link is the
 * ratio the issue asks to be near 1 ("the transfer saturates the limited link"). Needs root.
 * Prints a table and writes bench/t2t.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { available, startLink } from '@vaultline/netlab';
import { runT2t } from '../packages/transfer/test/fixtures/t2t-run.ts';
import { arg } from './common.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const netlabFixtures = path.join(here, '..', 'packages', 'netlab', 'test', 'fixtures');
const IMAGE_MIB = Number(arg('image-mib', '512'));
const RATES = arg('rates', '1000,100').split(',').map(Number);
const MiB = 1024 * 1024;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** One plain TCP stream's goodput across a link of `rateMbit`, in Mbit/s (what the receiver measured). */
async function rawLink(rateMbit: number, bytes: number): Promise<number> {
  const link = await startLink({ rateMbit, name: 'raw' });
  try {
    const sink = link.spawn('b', process.execPath, [path.join(netlabFixtures, 'sink.mjs'), link.b.ip, '5001']);
    await new Promise<void>((resolve, reject) => {
      sink.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
      sink.once('exit', (code) => reject(new Error(`the sink exited (${code})`)));
    });
    const { stdout } = await link.exec('a', process.execPath, [path.join(netlabFixtures, 'source.mjs'), link.b.ip, '5001', String(bytes)], { timeoutMs: 300_000 });
    const r = JSON.parse(stdout) as { sink: { bytes: number; ms: number } };
    return (r.sink.bytes * 8) / (r.sink.ms * 1000);
  } finally {
    await link.close();
  }
}

const can = available();
if (!can.ok) {
  console.error(`the T2T benchmark cannot run here: ${can.why}`);
  process.exit(1);
}
const rows = [];
for (const rate of RATES) {
  const raw = await rawLink(rate, Math.min(1024, Math.max(64, rate)) * MiB);
  const run = await runT2t({ rateMbit: rate, imageMiB: IMAGE_MIB });
  try {
    const s = (n: string) => run.steps.get(n)!;
    const full = s('full');
    const wireMbit = (full.tx * 8) / full.seconds / 1e6;
    const restore = s('restore');
    const row = {
      rateMbit: rate,
      rawMbit: Math.round(raw),
      full: { imageMiB: IMAGE_MIB, storedMiB: r3(full.stored / MiB), wireMiB: r3(full.tx / MiB), seconds: r3(full.seconds), wireMbit: Math.round(wireMbit), ratio: r3(wireMbit / raw), logicalMiBs: r3(IMAGE_MIB / full.seconds) },
      incremental: { storedMiB: r3(s('incremental').stored / MiB), wireMiB: r3(s('incremental').tx / MiB), wireOverStored: r3(s('incremental').tx / s('incremental').stored) },
      clone: { storedBytes: s('clone').stored, wireKiB: r3(s('clone').tx / 1024), ofFull: r3(s('clone').tx / full.tx) },
      restore: { wireMiB: r3(restore.rx / MiB), seconds: r3(restore.seconds), wireMbit: Math.round((restore.rx * 8) / restore.seconds / 1e6), ratio: r3((restore.rx * 8) / restore.seconds / 1e6 / raw) },
    };
    rows.push(row);
    console.log(
      `${rate} Mbit/s link (raw TCP ${row.rawMbit} Mbit/s): full ${IMAGE_MIB} MiB → ${row.full.storedMiB} MiB new, ${row.full.wireMiB} MiB on the wire in ${row.full.seconds} s = ${row.full.wireMbit} Mbit/s (${row.full.ratio} of raw); ` +
        `incremental ${row.incremental.wireOverStored} × its new bytes; clone ${row.clone.wireKiB} KiB (${(row.clone.ofFull * 100).toFixed(2)} % of the full); restore ${row.restore.wireMbit} Mbit/s (${row.restore.ratio} of raw)`,
    );
  } finally {
    await run.close();
  }
}
fs.writeFileSync(path.join(here, 't2t.json'), `${JSON.stringify({ date: new Date().toISOString(), imageMiB: IMAGE_MIB, rows }, null, 2)}\n`);
console.log('wrote bench/t2t.json');
