/**
 * Direct SAN on partitioned LUNs, as real ones are: the real VMFS5 and VMFS6
 * volumes made on ESXi (../shared/testdata/vmfs) are put into partition 1 of
 * a GPT (at 1 MiB, where ESXi 5+ puts it, and at 17 MiB behind a vmkcore
 * partition) and of an MBR (type 0xFB at sector 128, as VMFS3-era LUNs were),
 * in sparse LUN images attached as loop devices. The Transporter reads
 * `directory/file4` and `directory/file5` through openSan with the partition
 * vSphere reports, both through a read-only loop device over the partition
 * and through the partition's own device node (the `-part1` by-id link, as
 * udev makes it). The LUN images must be byte-identical afterwards, and no
 * loop device or mount may be left.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { JournalTrustError } from '@vaultline/appliance';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalDevices, type SanCleanup } from '../src/adapters/devices.ts';
import { gptRegions, mbrSector, VMFS_TYPE, VMKCORE_TYPE, writeRegions } from './partition-images.ts';
import { ensureVmfsTools, IMAGE_BYTES, isRoot, sha256, unpackImage, vmfsTestdataPresent } from './vmfs-images.ts';

const MiB = 1024 * 1024;
const SECTOR = 512;

interface Layout {
  label: string;
  image: 'vmfs5' | 'vmfs6';
  scheme: 'gpt' | 'mbr';
  /** Byte offset of the VMFS partition (partition 1). */
  offset: number;
  /** A vmkcore partition in slot 2, in front of the VMFS one (GPT only). */
  vmkcore?: boolean;
}

const layouts: Layout[] = [
  { label: 'vmfs5 in GPT partition 1 at 1 MiB', image: 'vmfs5', scheme: 'gpt', offset: MiB },
  { label: 'vmfs5 in GPT partition 1 at 17 MiB behind a vmkcore partition 2', image: 'vmfs5', scheme: 'gpt', offset: 17 * MiB, vmkcore: true },
  { label: 'vmfs5 in MBR partition 1 (type 0xFB) at sector 128', image: 'vmfs5', scheme: 'mbr', offset: 128 * SECTOR },
  { label: 'vmfs6 in GPT partition 1 at 1 MiB', image: 'vmfs6', scheme: 'gpt', offset: MiB },
  { label: 'vmfs6 in GPT partition 1 at 17 MiB behind a vmkcore partition 2', image: 'vmfs6', scheme: 'gpt', offset: 17 * MiB, vmkcore: true },
];

/** Builds the LUN image: the table, then the VMFS volume unpacked at the partition's offset. Returns its size. */
async function buildLun(file: string, l: Layout): Promise<number> {
  const partBytes = IMAGE_BYTES[l.image];
  if (l.scheme === 'mbr') {
    const size = l.offset + partBytes;
    await writeRegions(file, size, [[0, mbrSector([{ type: 0xfb, lba: l.offset / SECTOR, sectors: partBytes / SECTOR }])]]);
    await unpackImage(l.image, file, l.offset, size);
    return size;
  }
  const size = l.offset + partBytes + MiB; // room for the backup GPT at the end
  const first = l.offset / SECTOR;
  const parts = [{ type: VMFS_TYPE, firstLba: first, lastLba: first + partBytes / SECTOR - 1, name: 'datastore1' }];
  if (l.vmkcore) parts.push({ type: VMKCORE_TYPE, firstLba: 2048, lastLba: first - 1, name: 'vmkcore' });
  await writeRegions(file, size, gptRegions({ sectorSize: SECTOR, sectors: size / SECTOR, parts }));
  await unpackImage(l.image, file, l.offset, size);
  return size;
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
const mounted = async (p: string) => (await readFile('/proc/mounts', 'utf8')).split('\n').some((line) => line.split(' ')[1] === p);
const readOnly = (dev: string) => sh('blockdev', ['--getro', dev]);

/** What a loop device is over now (sysfs), or null when it is free. */
async function loopBacking(loop: string): Promise<string | null> {
  try {
    return (await readFile(`/sys/block/${path.basename(loop)}/loop/backing_file`, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Loop devices over `backing`. */
async function loopsOver(backing: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/sys/block')) {
    if (name.startsWith('loop') && (await loopBacking(`/dev/${name}`)) === backing) out.push(`/dev/${name}`);
  }
  return out.sort();
}

/** A detached loop device goes away once its last user (the exiting FUSE driver) lets go. */
async function gone(loop: string, backing: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if ((await loopBacking(loop)) !== backing) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe.runIf(isRoot && vmfsTestdataPresent())('Direct SAN reads VMFS in partition 1 of GPT and MBR LUNs (real VMFS5/6 volumes)', () => {
  let dir: string;
  const luns: string[] = [];
  const { log, lines } = memoryLogger('vmfs-partitions');

  beforeAll(async () => {
    ensureVmfsTools();
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-vmfs-parts-'));
  });
  afterAll(async () => {
    const failed: string[] = [];
    for (const l of luns) {
      spawnSync('partx', ['-d', l], { stdio: 'ignore' }); // fails when no partition was added: fine
      const r = spawnSync('losetup', ['-d', l], { encoding: 'utf8' });
      if (r.status !== 0) failed.push(`losetup -d ${l}: ${r.stderr}`);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    if (failed.length) throw new Error(failed.join('; '));
  });

  /** The LUN image attached read-write (the Transporter must mark it read-only itself), with partition scanning on. */
  async function attach(l: Layout, n: number, logger = log) {
    const file = path.join(dir, `lun${n}.img`);
    await buildLun(file, l);
    const before = await sha256(file);
    const lun = sh('losetup', ['-f', '--show', '-P', file]);
    luns.push(lun);
    const naa = `naa.6000c29000000000000000000000${(0xa00 + n).toString(16)}`;
    const byId = path.join(dir, `by-id-${n}`);
    sh('mkdir', ['-p', byId]);
    await symlink(lun, path.join(byId, `wwn-0x${naa.slice(4)}`));
    const mountDir = path.join(dir, `mnt-${n}`);
    const devices = createLocalDevices({ byIdDir: byId, mountDir, log: logger });
    return { file, before, lun, naa, byId, mountDir, devices };
  }

  /**
   * The kernel's node for partition 1, linked as udev would (wwn-0x<naa>-part1).
   * This kernel may not read partition tables itself: then util-linux's partx adds it.
   */
  async function linkPartitionNode(lun: string, byId: string, naa: string): Promise<string> {
    const node = `${lun}p1`;
    if (!existsSync(node)) execFileSync('partx', ['-a', '--nr', '1', lun]);
    for (let i = 0; i < 50 && !existsSync(node); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(node), `${node} after partx -a`).toBe(true);
    await symlink(node, path.join(byId, `wwn-0x${naa.slice(4)}-part1`));
    return node;
  }

  layouts.forEach((l, n) => {
    it(`${l.label}: file4 through a loop device over the partition, file5 through the partition's own node; bit-exact, nothing changed or left`, async () => {
      const { file, before, lun, naa, byId, mountDir, devices } = await attach(l, n);
      const fs = l.image === 'vmfs6' ? 'VMFS6' : 'VMFS5';
      const at = l.offset % MiB === 0 ? `${l.offset / MiB} MiB` : `${l.offset / 1024} KiB`;

      // No -part1 link: a read-only loop device over the partition's bytes.
      const file4 = await devices.openSan(naa, lun, 1, '[VMFS Test] directory/file4', 8);
      const c4 = file4.cleanup as SanCleanup;
      expect(c4.loop).toEqual({ device: expect.stringMatching(/^\/dev\/loop\d+$/), offset: l.offset, sizeLimit: IMAGE_BYTES[l.image] });
      const loop = c4.loop!.device;
      expect(file4.volume).toBe(`LUN ${naa} partition 1 (${l.scheme.toUpperCase()}, ${fs} at ${at}, through ${loop})`);
      expect(await loopBacking(loop)).toBe(lun);
      expect(readOnly(loop)).toBe('1');
      expect(readOnly(lun), 'the LUN is marked read-only while in use').toBe('1');
      expect(await mounted(c4.mountPoint)).toBe(true);
      expect((await file4.read(0, 8)).toString()).toBe('content\n');
      await file4.close();
      expect(await mounted(c4.mountPoint)).toBe(false);
      expect(await gone(loop, lun), `${loop} detached`).toBe(true);
      expect(readOnly(lun), 'the read-only flag is put back as found').toBe('0');

      // With the -part1 link: the kernel's partition device, no loop device of ours.
      await linkPartitionNode(lun, byId, naa);
      const file5 = await devices.openSan(naa, lun, 1, '[VMFS Test] directory/file5', 8193);
      const c5 = file5.cleanup as SanCleanup;
      expect(c5.loop).toBeUndefined();
      expect(await loopsOver(lun)).toEqual([]);
      expect(file5.volume).toBe(`LUN ${naa} partition 1 (${l.scheme.toUpperCase()}, ${fs} at ${at})`);
      expect((await readFile('/proc/mounts', 'utf8')).split('\n').find((line) => line.split(' ')[1] === c5.mountPoint)).toMatch(/^\S+ \S+ fuse/);
      const data = await file5.read(0, 8193);
      expect(data.subarray(0, 8192).equals(Buffer.alloc(8192, 'a'))).toBe(true);
      expect(data[8192]).toBe(0x0a);
      await file5.close();
      expect(await mounted(c5.mountPoint)).toBe(false);

      expect(await readdir(mountDir)).toEqual([]);
      expect(readOnly(lun)).toBe('0');
      expect(await sha256(file), 'the LUN image is unchanged').toBe(before);
    });
  });

  it('a partition number the table does not hold, or one that is not VMFS: a clear error naming the partitions; a -part1 link to another partition is not trusted; nothing left', async () => {
    const l = layouts[4]!;
    const own = memoryLogger('vmfs-partitions-wrong');
    const { lun, naa, byId, mountDir, devices } = await attach(l, 10, own.log);
    const refused = (partition: number) =>
      devices.openSan(naa, lun, partition, '[VMFS Test] directory/file4', 8).then(
        async (r) => {
          await r.close();
          return new Error(`partition ${partition} was opened: ${r.volume}`);
        },
        (e: unknown) => e as Error,
      );
    const err3 = await refused(3);
    expect(err3.message).toBe(
      `LUN ${naa} (${lun}): vSphere reports the datastore in partition 3, but its GPT holds partitions 1 (VMFS at 17 MiB, ${IMAGE_BYTES.vmfs6 / MiB} MiB), 2 (vmkcore at 1 MiB, 16 MiB)`,
    );
    const err2 = await refused(2);
    expect(err2.message).toMatch(new RegExp(`^LUN ${naa} \\(${lun}\\): vSphere reports the datastore in partition 2, but that is not a VMFS partition \\(type vmkcore, ${VMKCORE_TYPE}\\)`));
    // The preflight (before any snapshot) gives the same answers from the headers, then mounts the volume
    // read-only through vmfs6-fuse, lists it and unmounts it, leaving nothing.
    expect(await devices.probeSan(naa, lun, 1)).toBe(`partition 1 of LUN ${naa} (GPT at 17 MiB), VMFS6, mounted read-only and unmounted`);
    expect(await devices.probeSan(naa, lun, 0)).toBe(`partition 1 of LUN ${naa} (GPT at 17 MiB), VMFS6, mounted read-only and unmounted`);
    await expect(devices.probeSan(naa, lun, 3)).rejects.toThrow(err3.message);
    await expect(devices.probeSan(naa, lun, 2)).rejects.toThrow(/^LUN .* vSphere reports the datastore in partition 2, but that is not a VMFS partition/);
    expect(await readdir(mountDir).catch(() => [])).toEqual([]);

    // A -part1 link that leads to the kernel's partition 2: the table says otherwise, so a loop device is used (and a warning says why).
    if (!existsSync(`${lun}p2`)) execFileSync('partx', ['-a', '--nr', '2', lun]);
    for (let i = 0; i < 50 && !existsSync(`${lun}p2`); i++) await new Promise((r) => setTimeout(r, 100));
    await symlink(`${lun}p2`, path.join(byId, `wwn-0x${naa.slice(4)}-part1`));
    // vSphere not saying which partition: the table's one VMFS partition.
    const f = await devices.openSan(naa, lun, 0, '[VMFS Test] directory/file4', 8);
    expect(f.volume).toMatch(new RegExp(`^LUN ${naa} partition 1 \\(GPT, VMFS6 at 17 MiB, through /dev/loop\\d+\\)$`));
    expect((await f.read(0, 8)).toString()).toBe('content\n');
    await f.close();
    expect(own.lines.map((x) => (JSON.parse(x) as { msg: string }).msg)).toEqual([expect.stringMatching(/partition link does not match the LUN's partition table; reading the partition through a loop device/)]);

    expect(await readdir(mountDir)).toEqual([]);
    for (let i = 0; i < 100 && (await loopsOver(lun)).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await loopsOver(lun)).toEqual([]);
    expect(readOnly(lun)).toBe('0');
  });

  it('a crash (kill -9, no close): undoSan on the journaled cleanup unmounts and detaches the loop device; forged descriptors naming another loop device are refused first', async () => {
    const l = layouts[0]!;
    const { file, before, lun, naa, byId, mountDir, devices } = await attach(l, 11);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'san-open-child.ts'), byId, mountDir, naa, lun, '1', '[VMFS Test] directory/file5', '8193'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((r) => child.once('exit', r));
    let recorded: Record<string, unknown> | null = null;
    try {
      for await (const line of createInterface({ input: child.stdout })) {
        if (line.startsWith('recorded ')) recorded = JSON.parse(line.slice('recorded '.length)) as Record<string, unknown>;
        if (line === 'open') break;
      }
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    // What the journal holds: recorded before the mount, naming the loop device.
    expect(recorded).toMatchObject({ kind: 'lun_mount', device: lun, naa, restoreRw: true, loop: { device: expect.stringMatching(/^\/dev\/loop\d+$/), offset: MiB, sizeLimit: IMAGE_BYTES.vmfs5 } });
    const c = recorded as unknown as SanCleanup;
    const loop = c.loop!.device;
    expect(await mounted(c.mountPoint)).toBe(true);
    expect(await loopBacking(loop)).toBe(lun);

    // Forged: the LUN's own loop device (over the image file), a wrong offset, something that is no loop device.
    const forged: [Record<string, unknown>, RegExp][] = [
      [{ ...c, loop: { ...c.loop, device: lun } }, new RegExp(`loop device ${lun} is over ${file} at byte 0`)],
      [{ ...c, loop: { ...c.loop, offset: MiB + 512 } }, new RegExp(`loop device ${loop} is over ${lun} at byte ${MiB} .*not the partition of ${lun} at byte ${MiB + 512}`)],
      [{ ...c, loop: { ...c.loop, device: '/dev/sda' } }, /partition loop device \/dev\/sda is not a device Vaultline uses/],
      [{ ...c, loop: { ...c.loop, offset: '1048576; losetup -D' } }, /are not byte counts/],
    ];
    for (const [cleanup, message] of forged) {
      const err = await devices.undoSan(cleanup).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(JournalTrustError);
      expect((err as Error).message).toMatch(message);
    }
    // Nothing was touched by the refused ones.
    expect(await mounted(c.mountPoint)).toBe(true);
    expect(await loopBacking(loop)).toBe(lun);
    expect(await loopBacking(lun)).toBe(file);

    await devices.undoSan(JSON.parse(JSON.stringify(recorded)));
    expect(await mounted(c.mountPoint)).toBe(false);
    expect(await gone(loop, lun), `${loop} detached`).toBe(true);
    expect(readOnly(lun)).toBe('0');
    expect(await readdir(mountDir)).toEqual([]);
    // Undoing again (a second sweep) finds nothing to do.
    await devices.undoSan(recorded);
    expect(await sha256(file)).toBe(before);
    // No warnings on the way (a -part1 link that disagrees with the table, a damaged GPT).
    expect(lines.filter((x) => (JSON.parse(x) as { level: number }).level >= 40)).toEqual([]);
  });
});
