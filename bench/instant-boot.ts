/**
 * Instant boot benchmark (a script that prints figures, never a test).
 *
 *   npm run bench -- instant-boot [--data-gib 100] [--rounds 2]
 *
 * Time from "recover" (InstantBoot.start) to the VM running: QEMU started on the overlays, the guest's login
 * prompt on its serial console, and its health check answering, for a restore point of the small Debian test
 * guest (@vaultline/kvm/testing) alone and with a large, mostly empty data disk beside it (the boot must not
 * depend on disk size). Measured in the same run against the peer that needs no repository at all: QEMU
 * booting the same image from a local file. Then the live mirror of the boot disk to local storage.
 * Prints a table and writes bench/instant-boot.json.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@vaultline/config';
import { InstantBoot, startQemu, sweepInstantBoots } from '@vaultline/kvm';
import { bootableGuest } from '@vaultline/kvm/testing';
import { Repository, RestorePointWriter, shutdownWorkerPools } from '@vaultline/repository';
import { arg } from './common.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const DATA_GIB = Number(arg('data-gib', '100'));
const ROUNDS = Number(arg('rounds', '2'));
const MiB = 1024 * 1024;
const HW = { memoryMiB: 256, numCpu: 1, firmware: 'bios' as const };
const s1 = (ms: number) => Math.round(ms / 100) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function health(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) });
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error('the guest never answered its health check');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const guest = await bootableGuest();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-bench-ib-'));
  try {
    // One restore point: the guest's boot disk, and a DATA_GIB data disk holding 64 MiB of random data here and there.
    const repoDir = path.join(dir, 'repo');
    await Repository.init(repoDir, {});
    const repo = await Repository.open(repoDir, {});
    const vm = { uuid: '4210bbbb-0000-4000-8000-00000000beef', name: 'bench-guest' };
    const rp = await RestorePointWriter.open(repo, { vmId: vm.uuid, vm: { name: vm.name } });
    const image = fs.readFileSync(guest.path);
    const boot = await rp.openDisk({ key: '2000', capacity: image.length, controller: 'pvscsi' });
    for (let off = 0; off < image.length; off += 4 * MiB) await boot.write(off, image.subarray(off, Math.min(off + 4 * MiB, image.length)));
    const data = await rp.openDisk({ key: '2001', capacity: DATA_GIB * 1024 * MiB, controller: 'pvscsi' });
    for (let i = 0; i < 16; i++) await data.write(Math.floor(((DATA_GIB * 1024 - 4) * i) / 16) * MiB, randomBytes(4 * MiB));
    const ref = { vmId: vm.uuid, id: (await rp.commit()).id };

    const rows: Record<string, { qemuMs: number[]; loginMs: number[]; healthMs: number[] }> = {};
    const record = (name: string, qemuMs: number, loginMs: number, healthMs: number) => {
      const r = (rows[name] ??= { qemuMs: [], loginMs: [], healthMs: [] });
      r.qemuMs.push(qemuMs);
      r.loginMs.push(loginMs);
      r.healthMs.push(healthMs);
    };
    let mirrorMs = 0;
    let accel = '';
    for (let round = 0; round < ROUNDS; round++) {
      // The peer: the same image from a local file (a copy, as QEMU writes to it).
      {
        const local = path.join(dir, `local-${round}.raw`);
        fs.copyFileSync(guest.path, local);
        const port = await freePort();
        const t0 = performance.now();
        const q = await startQemu({
          name: 'bench-local',
          serialLog: path.join(dir, `local-${round}.serial`),
          qmpSocket: path.join(dir, `local-${round}.qmp`),
          memoryMiB: HW.memoryMiB,
          cpus: HW.numCpu,
          firmware: 'bios',
          drives: [{ id: 'd0', file: local, format: 'raw', interface: 'sata' }],
          nic: { forwards: [{ hostPort: port, guestPort: guest.healthPort }] },
        });
        const qemuMs = performance.now() - t0;
        await q.waitForSerial(guest.loginPrompt, 300_000);
        const loginMs = performance.now() - t0;
        await health(port, 60_000);
        record('local file (peer)', qemuMs, loginMs, performance.now() - t0);
        accel = q.accel;
        await q.stop();
      }
      for (const [name, disks] of [
        ['restore point, boot disk only', [{ key: '2000' }]],
        [`restore point + ${DATA_GIB} GiB data disk`, [{ key: '2000' }, { key: '2001' }]],
      ] as const) {
        const port = await freePort();
        const t0 = performance.now();
        const ib = await InstantBoot.start({ workDir: path.join(dir, 'boots', `${round}-${disks.length}`), repository: repo, ref, disks: [...disks], hardware: HW, nic: { forwards: [{ hostPort: port, guestPort: guest.healthPort }] } });
        const qemuMs = performance.now() - t0;
        await ib.qemu.waitForSerial(guest.loginPrompt, 300_000);
        const loginMs = performance.now() - t0;
        await health(port, 60_000);
        record(name, qemuMs, loginMs, performance.now() - t0);
        if (round === ROUNDS - 1 && disks.length === 1) {
          const m0 = performance.now();
          await ib.mirror(path.join(dir, 'mirrored'), 'raw');
          mirrorMs = performance.now() - m0;
        }
        await ib.discard();
      }
    }
    await sweepInstantBoots(path.join(dir, 'boots'));
    await repo.close();

    const peer = median(rows['local file (peer)']!.healthMs);
    console.log(`\nInstant boot, ${os.cpus().length} cores, QEMU with ${accel}; medians of ${ROUNDS} round(s)\n`);
    console.log('| boots from | QEMU running | login prompt | health check | vs local file |');
    console.log('|---|---|---|---|---|');
    const out = Object.entries(rows).map(([name, r]) => {
      const row = { name, qemuS: s1(median(r.qemuMs)), loginS: s1(median(r.loginMs)), healthS: s1(median(r.healthMs)), ofLocal: Math.round((median(r.healthMs) / peer) * 100) / 100 };
      console.log(`| ${name} | ${row.qemuS} s | ${row.loginS} s | ${row.healthS} s | ${row.ofLocal}× |`);
      return row;
    });
    console.log(`\nlive mirror of the ${image.length / MiB} MiB boot disk to a local raw file while it runs: ${s1(mirrorMs)} s`);
    fs.writeFileSync(path.join(here, 'instant-boot.json'), `${JSON.stringify({ date: new Date().toISOString(), cores: os.cpus().length, accel, dataGiB: DATA_GIB, rounds: ROUNDS, rows: out, mirrorSeconds: s1(mirrorMs) }, null, 2)}\n`);
  } finally {
    await shutdownWorkerPools();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
