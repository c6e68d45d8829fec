/**
 * Direct SAN on real VMFS: the VMFS5 and VMFS6 volumes made on ESXi in
 * ../shared/testdata/vmfs are attached read-only as loop devices, found by an
 * NAA id link as a LUN would be, and read through the Transporter's SAN path
 * (Debian's read-only VMFS FUSE drivers). The images are read in place
 * (decompressed to a temp file) and must be byte-identical afterwards.
 * Here each image is a whole, unpartitioned LUN; vmfs-partitions.test.ts puts
 * them in GPT and MBR partitions as ESXi does. Without ../shared/testdata
 * these tests skip, except on CI, where that fails (vmfs-images.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalDevices } from '../src/adapters/devices.ts';
import { ensureVmfsTools, IMAGE_BYTES, isRoot, sha256, unpackImage, vmfsTestdataPresent } from './vmfs-images.ts';

describe.runIf(isRoot && vmfsTestdataPresent())('Direct SAN reads from real VMFS volumes made on ESXi', () => {
  let dir: string;
  const loops: string[] = [];
  const quiet = memoryLogger('vmfs').log;

  beforeAll(async () => {
    ensureVmfsTools();
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-vmfs-'));
  });
  afterAll(async () => {
    for (const l of loops) execFileSync('losetup', ['-d', l]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const [name, naa] of [
    ['vmfs5', 'naa.6000c29000000000000000000000f005'],
    ['vmfs6', 'naa.6000c29000000000000000000000f006'],
  ] as const) {
    it(`${name}: finds the LUN by NAA id, reads files through the read-only mount, unmounts, and changes nothing`, async () => {
      const image = path.join(dir, `${name}.bin`);
      await unpackImage(name, image, 0, IMAGE_BYTES[name]);
      const before = await sha256(image);
      const device = execFileSync('losetup', ['-f', '--show', '-r', image], { encoding: 'utf8' }).trim();
      loops.push(device);
      const byId = path.join(dir, `by-id-${name}`);
      execFileSync('mkdir', ['-p', byId]);
      await symlink(device, path.join(byId, `wwn-0x${naa.slice(4)}`));

      const devices = createLocalDevices({ byIdDir: byId, mountDir: path.join(dir, 'mnt'), log: quiet });
      expect(await devices.findLun(naa)).toBe(device);
      expect(await devices.findLun('naa.6000c29000000000000000000000dead')).toBeNull();

      // vSphere reports partition 1 for every VMFS extent; a LUN without a partition table is read whole.
      const file4 = await devices.openSan(naa, device, 1, '[VMFS Test] directory/file4', 8);
      expect(file4.volume).toBe(`LUN ${naa} whole device (no partition table, ${name.toUpperCase()})`);
      expect((await file4.read(0, 8)).toString()).toBe('content\n');
      const mount = (file4.cleanup as { mountPoint: string }).mountPoint;
      expect(await readFile('/proc/mounts', 'utf8')).toContain(mount);
      await file4.close();
      expect(await readFile('/proc/mounts', 'utf8')).not.toContain(mount);

      const file5 = await devices.openSan(naa, device, 0, '[VMFS Test] directory/file5', 8193);
      const data = await file5.read(0, 8193);
      expect(data.subarray(0, 8192).every((b) => b === 0x61)).toBe(true);
      expect(data[8192]).toBe(0x0a);
      // A crash leaves the mount: the journaled cleanup descriptor undoes it.
      await devices.undoSan(file5.cleanup);
      expect(await readFile('/proc/mounts', 'utf8')).not.toContain((file5.cleanup as { mountPoint: string }).mountPoint);

      expect(execFileSync('blockdev', ['--getro', device], { encoding: 'utf8' }).trim()).toBe('1');
      expect(await sha256(image)).toBe(before);
      await rm(image);
    });
  }
});
