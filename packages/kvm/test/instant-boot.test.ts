/**
 * Instant boot of a real, bootable guest (test/guest: GRUB, a Debian kernel,
 * a busybox initramfs) stored as a restore point in a real repository, served
 * by flr's NBD server and run by QEMU through a qcow2 overlay: it reaches its
 * login prompt and answers its health check; what the guest sees is the
 * backed-up image bit for bit except the sector it writes; its writes land in
 * the overlay and never in the repository; a live mirror yields a local disk
 * that stands alone (the NBD server is closed and the guest keeps running);
 * discard and a kill -9 of the controller followed by a sweep leave nothing.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { repositoryFingerprint, storeRestorePoint } from '@vaultline/flr/testing';
import { DiskReader, Repository } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstantBoot, isSameProcess, processIdentity, sweepInstantBoots, type InstantBootJournal } from '../src/index.ts';
import { bootableGuest, parseMarker, type BootableGuest } from './guest/index.ts';
import type { ControllerArgs } from './guest/controller.ts';
import { freePort } from '@vaultline/config';

const exec = promisify(execFile);
const PASSPHRASE = 'instant boot test';
const DISK_KEY = '2000';
const VM = { uuid: '4210aaaa-0000-4000-8000-00000000cafe', name: 'kvm-guest' };
const HW = { memoryMiB: 256, numCpu: 1, firmware: 'bios' as const };
const BOOT_TIMEOUT = 180_000;
/** A test that boots the guest under TCG (tens of seconds) and then some. */
const TEST_TIMEOUT = 300_000;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const controllerEntry = path.join(import.meta.dirname, 'guest', 'controller.ts');

/** Reads a disk (any format QEMU knows, or an NBD URI) as raw bytes through qemu-img. */
async function readDisk(source: string, format: 'raw' | 'qcow2', out: string, shared = false): Promise<Buffer> {
  await exec('qemu-img', ['convert', ...(shared ? ['-U'] : []), '-f', format, '-O', 'raw', source, out]);
  const data = await readFile(out);
  await rm(out, { force: true });
  return data;
}

/** The differing 512-byte sectors of two equally long buffers (as byte offsets). */
function differingSectors(a: Buffer, b: Buffer): number[] {
  expect(a.length).toBe(b.length);
  const out: number[] = [];
  for (let off = 0; off < a.length; off += 512) if (!a.subarray(off, off + 512).equals(b.subarray(off, off + 512))) out.push(off);
  return out;
}

/** QEMU processes whose command line names something under `dir` (zombies have none and do not count). */
async function qemuUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const id = await processIdentity(Number(e));
    if (id && path.basename(id.cmdline[0] ?? '').startsWith('qemu-system') && id.cmdline.some((a) => a.includes(dir))) pids.push(id.pid);
  }
  return pids;
}

describe('instant boot on KVM/QEMU from a repository over NBD', () => {
  let dir: string;
  let repoDir: string;
  let guest: BootableGuest;
  let image: Buffer;
  let ref: { vmId: string; id: string };
  let repo: Repository;
  let fingerprint: Map<string, string>;

  /** SHA-256 of the restore point's disk as the repository gives it back. */
  const storedDiskSha = async () => {
    const r = await DiskReader.open(repo, ref, DISK_KEY);
    try {
      return sha256(await r.read(0, r.capacity));
    } finally {
      r.close();
    }
  };

  beforeAll(async () => {
    const t0 = Date.now();
    guest = await bootableGuest();
    console.log(`test guest: ${guest.path} (${guest.built ? `built in ${((Date.now() - t0) / 1000).toFixed(1)} s` : 'cached'})`);
    image = await readFile(guest.path);
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-instant-boot-'));
    repoDir = path.join(dir, 'repo');
    ref = { vmId: VM.uuid, id: await storeRestorePoint(repoDir, PASSPHRASE, VM, [{ key: DISK_KEY, image: guest.path }]) };
    repo = await Repository.open(repoDir, { passphrase: PASSPHRASE });
    expect(await storedDiskSha()).toBe(sha256(image));
    fingerprint = repositoryFingerprint(repoDir);
  });

  afterAll(async () => {
    if (dir) await sweepInstantBoots(path.join(dir, 'boots')).catch(() => undefined);
    await repo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('boots the restore point to its login prompt, reads bit-exact, keeps writes out of the repository, mirrors it live to a local disk that stands alone', async () => {
    const port = await freePort();
    const workDir = path.join(dir, 'boots', 'live');
    const t0 = Date.now();
    const ib = await InstantBoot.start({
      workDir,
      repository: repo,
      ref,
      disks: [{ key: DISK_KEY, interface: 'virtio' }],
      hardware: HW,
      nic: { forwards: [{ hostPort: port, guestPort: guest.healthPort }] },
    });
    try {
      const started = Date.now() - t0;
      await ib.qemu.waitForSerial(guest.loginPrompt, BOOT_TIMEOUT);
      const login = Date.now() - t0;
      console.log(`instant boot (${ib.qemu.accel}): QEMU running on the overlay ${(started / 1000).toFixed(1)} s after start, login prompt after ${(login / 1000).toFixed(1)} s`);
      expect(ib.qemu.serial()).toMatch(guest.banner);
      const bootId = guest.bootId.exec(ib.qemu.serial())![1]!;

      // The health check, over the user-mode network.
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(await health.text()).toBe(`ok vaultline-guest boot=${bootId}\n`);

      // What the guest sees, read through QEMU's own NBD export of the running drive: the image, but
      // for the marker sector the guest wrote, which holds this boot's line.
      await ib.qemu.waitForSerial(/tick=2 written/, 30_000);
      const blocks = await ib.qemu.qmp.execute<Array<{ device: string; inserted: { 'node-name': string; file: string; backing_file?: string } }>>('query-block');
      const drive = blocks.find((b) => b.device === 'disk0')!;
      expect(drive.inserted.file).toBe(ib.state.overlays[0]!.path);
      expect(drive.inserted.backing_file).toMatch(/^nbd\+unix:\/\/\/disk0\?socket=/);
      const viewSocket = path.join(dir, 'view.sock');
      await ib.qemu.qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: viewSocket } } });
      await ib.qemu.qmp.execute('block-export-add', { type: 'nbd', id: 'view', 'node-name': drive.inserted['node-name'], name: 'view', writable: false });
      const view = await readDisk(`nbd+unix:///view?socket=${viewSocket}`, 'raw', path.join(dir, 'view.raw'));
      await ib.qemu.qmp.execute('block-export-del', { id: 'view' });
      await ib.qemu.qmp.execute('nbd-server-stop');
      expect(differingSectors(view, image)).toEqual([guest.markerOffset]);
      expect(parseMarker(view.subarray(guest.markerOffset, guest.markerOffset + 512))?.bootId).toBe(bootId);

      // The guest's writes are in the overlay's own layer (depth 0), and nowhere in the repository.
      const map = JSON.parse((await exec('qemu-img', ['map', '-U', '--output=json', ib.state.overlays[0]!.path])).stdout) as Array<{ start: number; length: number; depth: number; data: boolean }>;
      const own = map.filter((m) => m.depth === 0 && m.data);
      expect(own.some((m) => m.start <= guest.markerOffset && guest.markerOffset < m.start + m.length)).toBe(true);
      // QEMU's NBD client took the holes from our server's base:allocation block status (structured replies):
      // the backing layer shows zero extents without data, and data where the image has it.
      const backing = map.filter((m) => m.depth === 1);
      expect(backing.some((m) => !m.data && (m as { zero?: boolean }).zero)).toBe(true);
      expect(backing.some((m) => m.data && m.start === 0)).toBe(true);
      expect(await storedDiskSha()).toBe(sha256(image));

      // Mirror while the guest runs.
      const targets = path.join(dir, 'mirrored');
      const mirrored = await ib.mirror(targets, 'qcow2');
      console.log(`mirror of the ${guest.sizeBytes / 1024 / 1024} MiB disk to local qcow2 while running: ${(mirrored.durationMs / 1000).toFixed(1)} s`);
      const target = mirrored.targets[0]!.path;
      expect(ib.state.state).toBe('migrated');
      // QEMU reads NBD no more: the server is closed (its socket gone), the overlay deleted, and the guest goes on.
      expect(existsSync(ib.state.nbdSocket)).toBe(false);
      expect(existsSync(ib.state.overlays[0]!.path)).toBe(false);
      const ticksBefore = [...ib.qemu.serial().matchAll(guest.tickWritten)].length;
      const lastTick = async () => Math.max(...[...ib.qemu.serial().matchAll(guest.tickWritten)].map((m) => Number(m[1])));
      const after = await lastTick();
      await ib.qemu.waitForSerial(new RegExp(`tick=${after + 2} written`), 30_000);
      expect([...ib.qemu.serial().matchAll(guest.tickWritten)].length).toBeGreaterThan(ticksBefore);
      expect(await (await fetch(`http://127.0.0.1:${port}/health`)).text()).toBe(`ok vaultline-guest boot=${bootId}\n`);
      const finalTick = await lastTick();

      await ib.discard();
      expect(existsSync(workDir)).toBe(false);
      expect(await qemuUnder(workDir)).toEqual([]);

      // The local disk stands alone (no backing file) and holds the image plus the guest's writes, up to its last tick.
      const info = JSON.parse((await exec('qemu-img', ['info', '--output=json', target])).stdout) as { format: string; 'backing-filename'?: string };
      expect(info.format).toBe('qcow2');
      expect(info['backing-filename']).toBeUndefined();
      const local = await readDisk(target, 'qcow2', path.join(dir, 'local.raw'));
      expect(differingSectors(local, image)).toEqual([guest.markerOffset]);
      const marker = parseMarker(local.subarray(guest.markerOffset, guest.markerOffset + 512))!;
      expect(marker.bootId).toBe(bootId);
      expect(marker.tick).toBeGreaterThanOrEqual(finalTick);

      // The repository: the point's disk as before, and not one file changed (the lock file is gone again).
      expect(await storedDiskSha()).toBe(sha256(image));
      expect(repositoryFingerprint(repoDir)).toEqual(fingerprint);
    } finally {
      await ib.discard(1000).catch(() => undefined);
    }
  }, TEST_TIMEOUT);

  it('discard while running leaves nothing: no QEMU, no overlay, no socket, no work folder, no repository lock', async () => {
    const workDir = path.join(dir, 'boots', 'discarded');
    const ib = await InstantBoot.start({ workDir, repository: repo, ref, disks: [{ key: DISK_KEY, interface: 'virtio' }], hardware: HW });
    const overlay = ib.state.overlays[0]!.path;
    expect(existsSync(overlay)).toBe(true);
    expect(existsSync(ib.state.nbdSocket)).toBe(true);
    expect(await repo.locks.list()).toHaveLength(1);
    await ib.qemu.waitForSerial(guest.banner, BOOT_TIMEOUT);
    const qemu = (await processIdentity(ib.qemu.pid))!;
    await ib.discard();
    expect(await isSameProcess(qemu)).toBe(false);
    expect(existsSync(workDir)).toBe(false);
    expect(await qemuUnder(workDir)).toEqual([]);
    expect(await repo.locks.list()).toHaveLength(0);
    expect(repositoryFingerprint(repoDir)).toEqual(fingerprint);
  }, TEST_TIMEOUT);

  /** Starts the controller in a child process and reads its steps. */
  function controller(args: ControllerArgs) {
    const child = spawn(process.execPath, ['--import', 'tsx', controllerEntry, JSON.stringify(args)], { cwd: path.resolve(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A child killed by a signal keeps exitCode null: its signalCode says it is gone.
    const running = () => child.exitCode === null && child.signalCode === null;
    const lines = createInterface({ input: child.stdout });
    const steps: Array<Record<string, unknown>> = [];
    const waiters: Array<() => void> = [];
    lines.on('line', (l) => {
      steps.push(JSON.parse(l) as Record<string, unknown>);
      for (const w of waiters.splice(0)) w();
    });
    const step = (name: string, timeoutMs: number) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`controller: no step ${name} within ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);
        const check = () => {
          const hit = steps.find((s) => s.step === name);
          if (hit) {
            clearTimeout(timer);
            resolve(hit);
          } else if (!running()) {
            clearTimeout(timer);
            reject(new Error(`controller exited (${child.exitCode ?? child.signalCode}) before step ${name}; stderr:\n${stderr}`));
          } else waiters.push(check);
        };
        child.once('exit', () => waiters.splice(0).forEach((w) => w()));
        check();
      });
    const kill9 = async () => {
      if (!running()) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    };
    return { child, step, kill9 };
  }

  it('kill -9 of the controller mid-boot, then a sweep: QEMU killed, overlay, sockets and work folder gone', async () => {
    const root = path.join(dir, 'boots');
    const workDir = path.join(root, 'killed-mid-boot');
    const c = controller({ repoDir, passphrase: PASSPHRASE, ref, diskKey: DISK_KEY, workDir });
    try {
      const started = await c.step('started', 60_000);
      const journal = JSON.parse(await readFile(path.join(workDir, 'journal.json'), 'utf8')) as InstantBootJournal;
      expect(journal.qemu?.pid).toBe(started.qemuPid);
      await c.kill9();
      // The controller is gone, its QEMU is not: that is what the sweep is for.
      const qemu = journal.qemu!;
      expect(await isSameProcess(qemu)).toBe(true);
      const report = await sweepInstantBoots(root);
      const mine = report.swept.find((s) => s.workDir === workDir)!;
      expect(mine.killed).toEqual([qemu.pid]);
      expect(mine.removed).toContain(journal.overlays[0]!.path);
      expect(await isSameProcess(qemu)).toBe(false);
      expect(await qemuUnder(workDir)).toEqual([]);
      expect(existsSync(workDir)).toBe(false);
      for (const p of [journal.overlays[0]!.path, journal.nbdSocket, journal.qmpSocket]) expect(existsSync(p)).toBe(false);
      // A second sweep finds nothing more.
      expect((await sweepInstantBoots(root)).swept.filter((s) => s.workDir === workDir)).toEqual([]);
      expect(await storedDiskSha()).toBe(sha256(image));
    } finally {
      await c.kill9();
    }
  }, TEST_TIMEOUT);

  it('kill -9 of the controller mid-mirror, then a sweep: QEMU killed, the partial mirror target removed', async () => {
    const root = path.join(dir, 'boots');
    const workDir = path.join(root, 'killed-mid-mirror');
    const targetDir = path.join(dir, 'partial-mirror');
    const c = controller({ repoDir, passphrase: PASSPHRASE, ref, diskKey: DISK_KEY, workDir, mirrorTo: targetDir, loginPrompt: guest.loginPrompt.source });
    try {
      const mirroring = await c.step('mirroring', BOOT_TIMEOUT);
      const [target] = mirroring.targets as string[];
      expect(existsSync(target!)).toBe(true);
      const journal = JSON.parse(await readFile(path.join(workDir, 'journal.json'), 'utf8')) as InstantBootJournal;
      expect(journal.state).toBe('mirroring');
      expect(journal.mirror?.targets).toEqual([{ diskKey: DISK_KEY, path: target, complete: false }]);
      await c.kill9();
      const report = await sweepInstantBoots(root);
      const mine = report.swept.find((s) => s.workDir === workDir)!;
      expect(mine.killed).toEqual([journal.qemu!.pid]);
      expect(mine.kept).toEqual([]);
      expect(existsSync(target!)).toBe(false);
      expect(await readdir(targetDir)).toEqual([]);
      expect(await qemuUnder(workDir)).toEqual([]);
      expect(existsSync(workDir)).toBe(false);
    } finally {
      await c.kill9();
    }
  }, TEST_TIMEOUT);

  it('a sweep leaves an instant boot alone while its controller lives', async () => {
    const root = path.join(dir, 'boots');
    const workDir = path.join(root, 'alive');
    const ib = await InstantBoot.start({ workDir, repository: repo, ref, disks: [{ key: DISK_KEY, interface: 'virtio' }], hardware: HW });
    try {
      const report = await sweepInstantBoots(root);
      expect(report.skipped).toContain(workDir);
      expect(await isSameProcess((await processIdentity(ib.qemu.pid))!)).toBe(true);
      expect(existsSync(ib.state.overlays[0]!.path)).toBe(true);
    } finally {
      await ib.discard(1000);
    }
    expect(existsSync(workDir)).toBe(false);
  }, TEST_TIMEOUT);
});
