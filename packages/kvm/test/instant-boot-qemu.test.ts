/**
 * The QEMU runner and QMP client on their own, with the real QEMU and the
 * test guest: the guest boots from a SATA and from an IDE disk, UEFI starts
 * OVMF, a QMP command QEMU refuses rejects with its error class, and a QEMU
 * that cannot start or a console line that never comes fail with QEMU's own
 * words or the console's tail.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpError, startQemu, waitForSerial, type DiskInterface, type QemuHandle } from '../src/index.ts';
import { bootableGuest, type BootableGuest } from './guest/index.ts';

describe('QEMU runner (qemu-system-x86_64, QMP, serial console)', () => {
  let dir: string;
  let guest: BootableGuest;
  const running: QemuHandle[] = [];

  beforeAll(async () => {
    guest = await bootableGuest();
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-qemu-'));
  });
  afterAll(async () => {
    for (const q of running) await q.stop(1000).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const boot = async (name: string, iface: DiskInterface) => {
    const disk = path.join(dir, `${name}.raw`);
    await copyFile(guest.path, disk);
    const q = await startQemu({ memoryMiB: 256, cpus: 1, drives: [{ file: disk, format: 'raw', interface: iface }], serialLog: path.join(dir, `${name}.log`), qmpSocket: path.join(dir, `${name}.qmp`), noReboot: true });
    running.push(q);
    return q;
  };

  for (const iface of ['sata', 'ide'] as const) {
    it(`boots the guest from a${iface === 'ide' ? 'n IDE' : ' SATA'} disk to its login prompt; QMP answers and quits it`, async () => {
      const t0 = Date.now();
      const q = await boot(iface, iface);
      await q.waitForSerial(guest.loginPrompt, 180_000);
      console.log(`${iface}: login prompt after ${((Date.now() - t0) / 1000).toFixed(1)} s (${q.accel})`);
      // The guest found its disk on this controller (sda for both).
      expect(q.serial()).toMatch(/marker on \/dev\/sda3/);
      expect(await q.qmp.execute<{ status: string }>('query-status')).toMatchObject({ status: 'running' });
      await expect(q.qmp.execute('no-such-command')).rejects.toBeInstanceOf(QmpError);
      await expect(q.qmp.execute('block-job-complete', { device: 'nothing' })).rejects.toMatchObject({ errorClass: expect.stringMatching(/DeviceNotActive|GenericError/) });
      expect(await q.stop()).toEqual({ code: 0, signal: null });
    }, 240_000);
  }

  it('starts UEFI firmware (OVMF) when asked', async () => {
    const q = await startQemu({ memoryMiB: 256, cpus: 1, firmware: 'efi', drives: [], serialLog: path.join(dir, 'efi.log'), qmpSocket: path.join(dir, 'efi.qmp') });
    running.push(q);
    expect(q.args.join(' ')).toMatch(/OVMF/);
    // With no disk OVMF ends in its shell, on the serial console.
    await q.waitForSerial(/Shell>|UEFI Interactive Shell/, 120_000);
    await q.stop();
  }, 180_000);

  it('says why when QEMU cannot start, and when a console line does not come', async () => {
    await expect(
      startQemu({ memoryMiB: 64, cpus: 1, drives: [{ file: path.join(dir, 'missing.raw'), format: 'raw', interface: 'virtio' }], serialLog: path.join(dir, 'bad.log'), qmpSocket: path.join(dir, 'bad.qmp') }),
    ).rejects.toThrow(/QEMU did not start: .*missing\.raw/s);
    const q = await boot('wait', 'sata');
    await expect(q.waitForSerial(/this never appears/, 3000)).rejects.toThrow(/no \/this never appears\/ on the serial console within 3 s/);
    await q.stop(1000);
    await expect(waitForSerial(q.serialLog, /this never appears/, { timeoutMs: 60_000, exited: () => true, why: () => 'gone' })).rejects.toThrow(/QEMU exited while waiting .*: gone/);
  }, 120_000);
});
