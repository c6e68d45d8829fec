/**
 * Transporter-to-Transporter transfer across a real link: the repository side serves a folder in one
 * network namespace, the source side writes restore points into it from another, over a veth pair shaped
 * by tc (to 100 Mbit/s, and to 1 Gbit/s), and the kernel's counters say what crossed. The source compresses and encrypts
 * (the serving side never has the passphrase) and sends only what the repository lacks:
 *   - an incremental sends at most 1.1 × its new compressed bytes,
 *   - a second VM cloned from the first sends almost nothing,
 *   - a restore streams back the other way, bit-exact.
 * Byte counts, not timings, are asserted; the link's use is printed (the benchmark `npm run bench -- t2t`
 * measures it at 1 Gbit/s and 100 Mbit/s). Needs root (namespaces); on CI (CI=true) a machine that
 * cannot make the link fails here.
 */
import { readdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { available } from '@vaultline/netlab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runT2t, type T2tRun } from './fixtures/t2t-run.ts';

const can = available();
const onCi = process.env.CI === 'true';
const MiB = 1024 * 1024;

describe.skipIf(!can.ok && !onCi).each([100, 1000])(`Transporter-to-Transporter over a %i Mbit/s link between network namespaces${can.ok ? '' : ` (cannot run here: ${can.why})`}`, (rateMbit) => {
  let run: T2tRun;
  const step = (name: string) => run.steps.get(name)!;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`the network-namespace test cannot run on this machine: ${can.why}`);
    run = await runT2t({ rateMbit, imageMiB: 192 });
  }, 240_000);

  afterAll(async () => {
    await run?.close();
  });

  it('a full backup crosses the link once, compressed and encrypted (the link use is printed)', () => {
    const full = step('full');
    console.log(`full: ${(full.stored / MiB).toFixed(1)} MiB new of 192 MiB; ${(full.tx / MiB).toFixed(1)} MiB on the wire in ${full.seconds.toFixed(1)} s = ${((full.tx * 8) / full.seconds / 1e6).toFixed(1)} Mbit/s of ${rateMbit}`);
    expect(full.stored).toBeGreaterThan(20 * MiB);
    expect(full.tx).toBeGreaterThanOrEqual(full.stored);
    expect(full.tx).toBeLessThanOrEqual(1.1 * full.stored);
  });

  it('an incremental sends at most 1.1 × its new compressed bytes', () => {
    const inc = step('incremental');
    console.log(`incremental: ${(inc.stored / MiB).toFixed(2)} MiB new; ${(inc.tx / MiB).toFixed(2)} MiB on the wire (${(inc.tx / inc.stored).toFixed(3)} ×)`);
    expect(inc.stored).toBeGreaterThan(5 * MiB);
    expect(inc.tx).toBeLessThanOrEqual(1.1 * inc.stored);
  });

  it('a second VM cloned from the first sends almost nothing', () => {
    const clone = step('clone');
    console.log(`clone: ${clone.stored} bytes new; ${(clone.tx / 1024).toFixed(1)} KiB on the wire (${((100 * clone.tx) / step('full').tx).toFixed(2)} % of the full backup)`);
    expect(clone.stored).toBe(0);
    expect(clone.tx).toBeLessThan(0.02 * step('full').tx);
  });

  it('a restore streams back the other way (bit-exact, checked by the source side)', () => {
    const restore = step('restore');
    expect(restore.rx).toBeGreaterThan(step('full').stored * 0.9);
    expect(restore.tx).toBeLessThan(restore.rx * 0.1);
  });

  it('the served folder holds only what the source encrypted: no plaintext of the image', async () => {
    const marker = Buffer.from('GET /index.html 200');
    let bytes = 0;
    for (const f of (await readdir(run.folder, { recursive: true, withFileTypes: true })).filter((e) => e.isFile())) {
      const data = await readFile(path.join(f.parentPath, f.name));
      bytes += data.length;
      expect(data.includes(marker), `${f.name} holds plaintext`).toBe(false);
    }
    expect(bytes).toBeGreaterThan(step('full').stored);
  });
});
