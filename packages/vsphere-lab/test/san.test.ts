import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopDevicesUnder, mountsUnder, startLab, type Lab } from '../src/index.ts';
import { httpRequest, tag, type SoapClient } from '../src/soap.ts';
import { createSnapshot, MiB, removeSnapshot } from './helpers.ts';

// SAN emulation needs root (losetup, mkfs.ext4, mount); tests run as root here and in CI.
let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab({ san: true });
  soap = await lab.soap();
});
afterAll(async () => {
  await lab?.stop();
});

async function datastoreMoref(name: string): Promise<string> {
  const res = await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem });
  return (JSON.parse(res.body.toString()) as { datastores: Record<string, string> }).datastores[name]!;
}

describe('Direct SAN emulation', () => {
  it("each datastore is a VMFS volume whose extent is a read-only LUN linked by its NAA id under by-id", async () => {
    for (const ds of lab.datastores) {
      expect(ds.naa).toMatch(/^naa\.6000c29[0-9a-f]{25}$/);
      const xml = await soap.retrieve('Datastore', await datastoreMoref(ds.name), ['info', 'summary.type']);
      expect(tag(xml, 'diskName')).toBe(ds.naa);
      expect(xml).toContain('<type>VMFS</type>');
      const link = path.join(lab.byIdDir, `wwn-0x${ds.naa!.slice(4)}`);
      expect(fs.readlinkSync(link)).toBe(ds.lunDevice);
      expect(spawnSync('blockdev', ['--getro', ds.lunDevice!], { encoding: 'utf8' }).stdout.trim()).toBe('1');
      expect(mountsUnder(lab.dir)).toContain(ds.path);
    }
    // every host lists the LUNs among its SCSI disks, as ESXi does for a VMFS datastore's disk
    const inv = JSON.parse((await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem })).body.toString()) as { hosts: string[] };
    for (const host of inv.hosts) {
      const xml = await soap.retrieve('HostSystem', host, ['config.storageDevice.scsiLun']);
      for (const ds of lab.datastores) expect(xml).toContain(`<canonicalName>${ds.naa}</canonicalName>`);
    }
  });

  it("a snapshot's disk read through the LUN (mounted read-only) equals the snapshot's bytes", async () => {
    const vm = await lab.createVm({ name: 'san-src', disks: [{ capacityBytes: 32 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite('san-src', 0, [{ offset: 2 * MiB, length: 3 * MiB, pattern: 'random', seed: 21 }]);
    const snap = await createSnapshot(soap, vm.moref); // freezes + syncs the datastore filesystem
    await lab.guestWrite('san-src', 0, [{ offset: 2 * MiB, length: 1 * MiB, pattern: 'zeros' }]);
    const expected = await lab.diskSha256('san-src', 0, { snapshot: snap });

    const lun = lab.datastores[0]!.lunDevice!;
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-san-mnt-'));
    try {
      spawnSync('blockdev', ['--flushbufs', lun]);
      const m = spawnSync('mount', ['-t', 'ext4', '-o', 'ro,noload', lun, mnt], { encoding: 'utf8' });
      expect(m.status, m.stderr).toBe(0);
      const data = fs.readFileSync(path.join(mnt, 'san-src', 'san-src-flat.vmdk'));
      expect(createHash('sha256').update(data).digest('hex')).toBe(expected);
    } finally {
      spawnSync('umount', [mnt]);
      fs.rmdirSync(mnt);
    }
    await removeSnapshot(soap, snap);
  });

  it('stop() leaves no loop device, mount or folder behind', async () => {
    const other = await startLab({ san: true });
    const dir = other.dir;
    expect(loopDevicesUnder(dir).length).toBe(4); // 2 datastores x (read-write image + read-only LUN)
    await other.stop();
    expect(loopDevicesUnder(dir)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
