/**
 * What an OVA costs next to a plain streamOptimized VMDK of the same disk:
 * time, output size and peak RSS, each mode in its own child process.
 *
 *   npx tsx packages/vmdk/bench/ova.ts [diskMiB=256]
 *
 * The disk is built in memory (so the repository is not measured): 40% random,
 * 40% text-like, 20% zeros, in 1 MiB stripes. Figures vary with the machine's
 * load; compare the ratios of one run.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createOva, streamOptimizedChunks } from '../src/index.ts';
import type { OvfHardware } from '../src/index.ts';

const MiB = 1024 * 1024;
type Mode = 'vmdk' | 'ova-chunked' | 'ova-whole';

function disk(size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = 12345;
  const text = Buffer.from('backup restore vSphere grain table datastore snapshot lorem ipsum\n'.repeat(20000));
  for (let off = 0; off < size; off += MiB) {
    const stripe = (off / MiB) % 5;
    if (stripe < 2) {
      for (let i = off; i < Math.min(size, off + MiB); i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
      }
    } else if (stripe < 4) {
      text.copy(b, off, 0, Math.min(MiB, size - off));
    }
  }
  return b;
}

async function run(mode: Mode, sizeMiB: number): Promise<void> {
  const data = disk(sizeMiB * MiB);
  const source = { key: 2000, capacity: data.length, read: async (o: number, l: number) => Buffer.from(data.subarray(o, o + l)) };
  const hw: OvfHardware = { name: 'bench', controllers: [{ key: 1000, kind: 'pvscsi', busNumber: 0 }], disks: [{ key: 2000, controllerKey: 1000, unitNumber: 0, capacityBytes: data.length }], nics: [] };
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  let bytes = 0;
  const chunks = mode === 'vmdk' ? streamOptimizedChunks(source) : createOva(hw, [source], { layout: mode === 'ova-chunked' ? 'chunked' : 'whole' }).chunks();
  for await (const c of chunks) bytes += c.length;
  const ms = performance.now() - t0;
  // maxRSS is in KiB; subtract what the process held before streaming (the disk itself, the runtime).
  const peakMiB = (process.resourceUsage().maxRSS * 1024 - rssBefore) / MiB;
  process.stdout.write(JSON.stringify({ mode, ms, bytes, peakMiB }) + '\n');
}

const [, , arg1, arg2] = process.argv;
if (arg1 === '--child') {
  await run(arg2!.split(':')[0] as Mode, Number(arg2!.split(':')[1]));
} else {
  const sizeMiB = Number(arg1 ?? 256);
  const self = fileURLToPath(import.meta.url);
  const results: Record<string, { ms: number; bytes: number; peakMiB: number }> = {};
  for (const mode of ['vmdk', 'ova-chunked', 'ova-whole'] as Mode[]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', `${mode}:${sizeMiB}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${mode} failed: ${r.stderr}`);
    results[mode] = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ms: number; bytes: number; peakMiB: number };
  }
  const base = results['vmdk']!;
  console.log(`${sizeMiB} MiB disk (40% random, 40% text, 20% zeros), deflate level 6`);
  console.log('mode          time      MiB/s   output MiB   peak RSS over baseline   time vs VMDK');
  for (const [mode, r] of Object.entries(results)) {
    console.log(
      `${mode.padEnd(12)} ${(r.ms / 1000).toFixed(2).padStart(6)} s ${((sizeMiB * 1000) / r.ms).toFixed(0).padStart(7)} ${(r.bytes / MiB).toFixed(1).padStart(11)} ${r.peakMiB.toFixed(0).padStart(14)} MiB ${(r.ms / base.ms).toFixed(2).padStart(16)}x`,
    );
  }
}
