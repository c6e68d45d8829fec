/**
 * The run page's bottleneck split (busy reading the source / processing / writing to the repository) on a real
 * backup: a lab VM whose disk holds more than the writer's chunk slots (32 × 256 KiB) of compressible,
 * unique data, read through the fastest transport here (HotAdd as root: the lab's flat file through a loop
 * device; else NBDSSL), into an encrypted repository, so the copy loop has to wait for the hashing, compressing
 * and encrypting workers to give slots back. That wait is the "processing" share (packages/core backup/cycle.ts,
 * from the disk writer's `workerWaitMs`), and it must show: the issue saw processing at 0 % always.
 *
 * A disk holding no more than the slots (8 MiB of data) never waits for a slot in its copy loop: its chunks are
 * all still with the workers when the loop ends. They are waited for when the disk is closed, and that wait is
 * its processing time too (before, it happened at the VM's commit, which no disk's busy time includes, and such a
 * disk showed processing 0: measured with 6 MiB of this text, source 0.96, processing 0, target 0.04).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, runOutcome, startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;
const VM = 'busy01';
const SMALL_VM = 'busy02';
/** Written whole: 24x the writer's slots, so the workers are waited on for most of the copy. */
const DISK = 192 * MiB;

type Busy = { source: number; processing: number; target: number };

describe('bottleneck split of a backup: the processing share is measured', () => {
  let b: Bench;
  beforeAll(async () => {
    b = await startBench({ passphrase: 'bottleneck passphrase' });
    await b.lab.createVm({ name: VM, cbt: true, disks: [{ capacityBytes: DISK }] });
    // Log-like text with a counter in every line: every chunk is new (no dedup) and compresses, so each one is
    // hashed, compressed and encrypted in full. In 16 MiB writes, seeded per part.
    for (let off = 0; off < DISK; off += 16 * MiB) await b.lab.guestWrite(VM, 0, [{ offset: off, length: 16 * MiB, pattern: 'text', seed: 1 + off / MiB }]);
    await b.lab.createVm({ name: SMALL_VM, cbt: true, disks: [{ capacityBytes: 64 * MiB }] });
    await b.lab.guestWrite(SMALL_VM, 0, [{ offset: 0, length: 6 * MiB, pattern: 'text', seed: 99 }]);
  });
  afterAll(async () => {
    await b?.close();
  });

  it('a disk whose copy outruns the workers records processing > 0, the shares add up to the whole, and the run row keeps what the live view last showed', async () => {
    const mode = isRoot ? 'hotadd' : 'nbdssl';
    const live: Busy[] = [];
    b.onEvent = (e) => {
      if (e.type === 'disk.progress' && e.bottleneck) live.push(e.bottleneck as Busy);
    };
    try {
      const { runId } = await b.newRun([VM], mode, { cbtSanityRate: 0 });
      await b.runAll(runId);
      const { run, vm } = await runOutcome(b, runId);
      expect(run.status, vm.error ?? '').toBe('succeeded');
      expect(vm.disks).toHaveLength(1);
      const disk = vm.disks[0]!;
      expect(disk.transport).toBe(mode);
      expect(Number(disk.bytesRead)).toBe(DISK);
      // Every byte was new: the workers hashed, compressed and encrypted all of it (compressed to well under half).
      expect(Number(disk.bytesWritten)).toBeGreaterThan(0);
      expect(Number(disk.bytesWritten)).toBeLessThan(DISK / 2);

      const busy = disk.bottleneck as Busy | null;
      expect(busy, 'the run row keeps the bottleneck').not.toBeNull();
      // Where the time went, as the run row keeps it: the copy loop waited on the workers.
      expect(busy!.processing).toBeGreaterThan(0);
      expect(busy!.source).toBeGreaterThan(0);
      for (const share of [busy!.source, busy!.processing, busy!.target]) {
        expect(share).toBeGreaterThanOrEqual(0);
        expect(share).toBeLessThanOrEqual(1);
      }
      // Fractions of one disk's busy time: they add up to the whole (each rounded to 0.01).
      expect(busy!.source + busy!.processing + busy!.target).toBeGreaterThanOrEqual(0.97);
      expect(busy!.source + busy!.processing + busy!.target).toBeLessThanOrEqual(1.02);

      // The live view: every tick's shares add up to at most the whole, and the last one is what the row stores.
      expect(live.length).toBeGreaterThan(0);
      for (const t of live) expect(t.source + t.processing + t.target).toBeLessThanOrEqual(1.02);
      expect(live.at(-1)).toEqual(busy);
      // The processing share was there during the copy too, not only in the final figure.
      expect(live.some((t) => t.processing > 0)).toBe(true);
    } finally {
      b.onEvent = null;
    }
  });

  it('a disk with less data than the writer has slots counts the wait for its last chunks as processing too', async () => {
    const { runId } = await b.newRun([SMALL_VM], isRoot ? 'hotadd' : 'nbdssl', { cbtSanityRate: 0 });
    await b.runAll(runId);
    const { run, vm } = await runOutcome(b, runId);
    expect(run.status, vm.error ?? '').toBe('succeeded');
    const busy = vm.disks[0]!.bottleneck as Busy | null;
    expect(busy, 'the run row keeps the bottleneck').not.toBeNull();
    expect(busy!.processing).toBeGreaterThan(0);
    expect(busy!.source + busy!.processing + busy!.target).toBeGreaterThanOrEqual(0.97);
    expect(busy!.source + busy!.processing + busy!.target).toBeLessThanOrEqual(1.02);
  });
});
