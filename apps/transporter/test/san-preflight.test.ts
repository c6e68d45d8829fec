/**
 * The Direct SAN preflight, before any snapshot: it mounts the LUN's datastore read-only, lists it and
 * unmounts it, journaling the mount while it exists, so a datastore the driver cannot open is known (with
 * the reason) while the backup can still choose another transport. Real loop devices and mounts (root).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm, symlink, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from './fixture.ts';
import { createLocalDevices } from '../src/adapters/devices.ts';

const MiB = 1024 * 1024;

// Root only (loop devices, mounts); with CI=true vitest.config.ts refuses a run that is not root.
describe.runIf(isRoot)('the Direct SAN preflight mounts the datastore read-only before the snapshot', () => {
  let tmp: string;
  const loops: string[] = [];
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'vaultline-san-preflight-'));
  });
  afterAll(async () => {
    for (const l of loops) execFileSync('losetup', ['-d', l]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** An ext4 LUN (the lab's stand-in for VMFS) on a loop device, linked by its NAA id; `damage` makes it unmountable. */
  async function lun(name: string, damage: boolean) {
    const image = path.join(tmp, `${name}.img`);
    execFileSync('truncate', ['-s', String(32 * MiB), image]);
    execFileSync('mkfs.ext4', ['-q', '-F', image]);
    if (damage) {
      // An incompatible feature bit no kernel knows: the magic still says ext4, but mount refuses it.
      const fh = await open(image, 'r+');
      const b = Buffer.alloc(4);
      await fh.read(b, 0, 4, 1024 + 0x60);
      b.writeUInt32LE((b.readUInt32LE(0) | 0x80000000) >>> 0);
      await fh.write(b, 0, 4, 1024 + 0x60);
      await fh.close();
    }
    const device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    loops.push(device);
    const naa = `naa.6000c29${Buffer.from(name).toString('hex').padEnd(25, '0').slice(0, 25)}`;
    const byIdDir = path.join(tmp, `${name}-by-id`);
    const mountDir = path.join(tmp, `${name}-mnt`);
    await mkdir(byIdDir);
    await symlink(device, path.join(byIdDir, `wwn-0x${naa.slice(4)}`));
    const { log } = memoryLogger(`preflight-${name}`);
    return { device, naa, mountDir, devices: createLocalDevices({ byIdDir, mountDir, log }) };
  }

  const mounted = async (dir: string) => (await readFile('/proc/mounts', 'utf8')).split('\n').some((l) => (l.split(' ')[1] ?? '').startsWith(dir));

  it('a healthy datastore: mounted, listed and unmounted again, the mount journaled first, nothing left', async () => {
    const l = await lun('healthy', false);
    const recorded: unknown[] = [];
    const found = await l.devices.probeSan(l.naa, l.device, 0, async (c) => void recorded.push(c));
    expect(found).toBe(`LUN ${l.naa}, ext4, mounted read-only and unmounted`);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ kind: 'lun_mount', device: l.device, naa: l.naa, mountPoint: expect.stringContaining(l.mountDir) });
    expect(await readdir(l.mountDir)).toEqual([]);
    expect(await mounted(l.mountDir)).toBe(false);
    expect(execFileSync('blockdev', ['--getro', l.device], { encoding: 'utf8' }).trim()).toBe('0');
  });

  it('a datastore whose filesystem cannot be mounted is refused before the snapshot, with the reason, leaving nothing', async () => {
    const l = await lun('damaged', true);
    await expect(l.devices.probeSan(l.naa, l.device, 0, async () => undefined)).rejects.toThrow(/cannot mount the datastore of LUN naa\.6000c29[0-9a-f]+ \(\/dev\/loop\d+\): .*mount/);
    expect(await readdir(l.mountDir)).toEqual([]);
    expect(await mounted(l.mountDir)).toBe(false);
    expect(execFileSync('blockdev', ['--getro', l.device], { encoding: 'utf8' }).trim()).toBe('0');
  });
});
