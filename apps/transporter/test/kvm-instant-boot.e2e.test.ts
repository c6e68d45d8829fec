/**
 * Instant boot on KVM, the whole way (issue #18): a lab VM whose disk holds a
 * real bootable guest (GRUB, a Debian kernel, a busybox initramfs) is backed
 * up by the real backup handler over NBDSSL into the bench's encrypted
 * repository; that restore point then boots in QEMU straight from the
 * repository (NBD + a qcow2 overlay) with the hardware the backup recorded,
 * reaches its login prompt and answers its health check; it is mirrored live
 * to a local raw disk, which holds the image plus the guest's own writes; the
 * repository's point is unchanged and nothing of the instant boot is left.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { InstantBoot, instantBootHardware, sweepInstantBoots } from '@vaultline/kvm';
import { bootableGuest, parseMarker, type BootableGuest } from '@vaultline/kvm/testing';
import type { Repository } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, startBench, type Bench, type BenchPoint } from './fixture.ts';
import { labVmWithGuest } from './kvm-guest.ts';
import { freePort } from '@vaultline/config';

const exec = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// Root only, like the other lab e2e tests here (the bench starts its lab with HotAdd and SAN, which need loop
// devices); CI runs as root, and with CI=true vitest.config.ts refuses a run that is not root.
describe.runIf(isRoot)('instant boot on KVM of a lab VM backed up by the real backup handler', () => {
  let b: Bench;
  let guest: BootableGuest;
  let dir: string;
  let point: BenchPoint;
  let repo: Repository;
  let diskKey: string;

  beforeAll(async () => {
    [b, guest, dir] = await Promise.all([startBench({ passphrase: 'kvm instant boot' }), bootableGuest(), mkdtemp(path.join(os.tmpdir(), 'vaultline-kvm-e2e-'))]);
    const vm = await labVmWithGuest(b.lab, 'kvmguest01', guest, { cpus: 1, memoryMiB: 256 });
    diskKey = String(vm.disks[0]!.key);
    point = await b.backupPoint('kvmguest01', 1);
    repo = await b.openRepository();
  });

  afterAll(async () => {
    if (dir) await sweepInstantBoots(path.join(dir, 'boots')).catch(() => undefined);
    await repo?.close();
    await b?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('boots the restore point to its login prompt, answers its health check, mirrors to a local disk, leaves the point unchanged', async () => {
    const image = await readFile(guest.path);
    // The backup holds the guest's image, bit for bit.
    expect(point.truth[0]).toBe(sha256(image));
    expect(await b.restoredSha256(point.id, point.vmId, diskKey)).toBe(sha256(image));

    const ref = { vmId: point.vmId, id: point.id };
    const manifest = await repo.readManifest(ref);
    const hardware = instantBootHardware((manifest.vm as { hardware?: unknown }).hardware, { memoryMiB: 4096, numCpu: 4, firmware: 'efi' });
    // What the lab VM was made with, as the backup recorded it (not the defaults above).
    expect(hardware).toEqual({ memoryMiB: 256, numCpu: 1, firmware: 'bios' });

    const port = await freePort();
    const workDir = path.join(dir, 'boots', 'kvmguest01');
    const t0 = Date.now();
    const ib = await InstantBoot.start({ workDir, repository: repo, ref, disks: [{ key: diskKey }], hardware, nic: { forwards: [{ hostPort: port, guestPort: guest.healthPort }] } });
    try {
      await ib.qemu.waitForSerial(guest.loginPrompt, 180_000);
      console.log(`instant boot of the backed-up lab VM (${ib.qemu.accel}): login prompt ${((Date.now() - t0) / 1000).toFixed(1)} s after start`);
      const bootId = guest.bootId.exec(ib.qemu.serial())![1]!;
      expect(await (await fetch(`http://127.0.0.1:${port}/health`)).text()).toBe(`ok vaultline-guest boot=${bootId}\n`);
      await ib.qemu.waitForSerial(/tick=1 written/, 30_000);

      const { targets, durationMs } = await ib.mirror(path.join(dir, 'local'), 'raw');
      console.log(`live mirror to a local raw disk: ${(durationMs / 1000).toFixed(1)} s`);
      const last = Math.max(...[...ib.qemu.serial().matchAll(guest.tickWritten)].map((m) => Number(m[1])));
      await ib.qemu.waitForSerial(new RegExp(`tick=${last + 1} written`), 30_000);
      await ib.discard();
      expect(existsSync(workDir)).toBe(false);

      const local = await readFile(targets[0]!.path);
      expect(local.length).toBe(image.length);
      const marker = parseMarker(local.subarray(guest.markerOffset, guest.markerOffset + 512));
      expect(marker?.bootId).toBe(bootId);
      expect(marker!.tick).toBeGreaterThan(last);
      // Apart from that sector, the local disk is the backed-up image.
      local.fill(0, guest.markerOffset, guest.markerOffset + 512);
      const base = Buffer.from(image);
      base.fill(0, guest.markerOffset, guest.markerOffset + 512);
      expect(sha256(local)).toBe(sha256(base));
      const info = JSON.parse((await exec('qemu-img', ['info', '--output=json', targets[0]!.path])).stdout) as { format: string };
      expect(info.format).toBe('raw');

      // The restore point is as the backup wrote it.
      expect(await b.restoredSha256(point.id, point.vmId, diskKey)).toBe(sha256(image));
    } finally {
      await ib.discard(1000).catch(() => undefined);
    }
  }, 600_000);
});
