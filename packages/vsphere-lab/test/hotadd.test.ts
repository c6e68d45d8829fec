import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopDevicesUnder, startLab, type Lab } from '../src/index.ts';
import { tag, type SoapClient } from '../src/soap.ts';
import { createSnapshot, MiB, removeSnapshot, soapDisks } from './helpers.ts';

let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab({ hotadd: true });
  soap = await lab.soap();
});
afterAll(async () => {
  await lab?.stop();
});

async function proxyController(): Promise<number> {
  const xml = await soap.retrieve('VirtualMachine', lab.proxyVm.moref, ['config.hardware.device']);
  const m = /<VirtualDevice\b[^>]*type="ParaVirtualSCSIController"[^>]*>([\s\S]*?)<\/VirtualDevice>/.exec(xml);
  return Number(tag(m![1]!, 'key'));
}

function diskXml(key: number, fileName: string, controllerKey: number, unit: number, mode = 'independent_nonpersistent'): string {
  return (
    `<device xsi:type="VirtualDisk"><key>${key}</key>` +
    `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>${fileName}</fileName><diskMode>${mode}</diskMode></backing>` +
    `<controllerKey>${controllerKey}</controllerKey><unitNumber>${unit}</unitNumber><capacityInKB>0</capacityInKB></device>`
  );
}

/** HotAdd as a Transporter does it: ReconfigVM add of an existing disk file, no fileOperation. */
async function attach(fileName: string, unit: number, mode?: string): Promise<{ key: number; uuid: string }> {
  const ctl = await proxyController();
  await soap.task(
    `<ReconfigVM_Task><_this type="VirtualMachine">${lab.proxyVm.moref}</_this><spec><deviceChange><operation>add</operation>` +
      `${diskXml(-1, fileName, ctl, unit, mode)}</deviceChange></spec></ReconfigVM_Task>`,
  );
  const disk = (await soapDisks(soap, 'VirtualMachine', lab.proxyVm.moref)).find((d) => d.fileName === fileName)!;
  return { key: disk.key, uuid: disk.uuid };
}

async function detach(key: number, fileName: string, unit: number, fileOperation?: 'destroy'): Promise<void> {
  const ctl = await proxyController();
  await soap.task(
    `<ReconfigVM_Task><_this type="VirtualMachine">${lab.proxyVm.moref}</_this><spec><deviceChange><operation>remove</operation>` +
      (fileOperation ? `<fileOperation>${fileOperation}</fileOperation>` : '') +
      `${diskXml(key, fileName, ctl, unit)}</deviceChange></spec></ReconfigVM_Task>`,
  );
}

function readDev(dev: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(dev, 'r');
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

describe('HotAdd emulation on the proxy VM', () => {
  it('attaching a snapshot disk makes a read-only block device appear as by-id/wwn-0x<disk uuid>; detaching removes it and keeps the file', async () => {
    const vm = await lab.createVm({ name: 'hot-src', disks: [{ capacityBytes: 64 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite('hot-src', 0, [{ offset: 3 * MiB, length: 1 * MiB, pattern: 'random', seed: 11 }]);
    const snap = await createSnapshot(soap, vm.moref);
    const [snapDisk] = await soapDisks(soap, 'VirtualMachineSnapshot', snap);
    await lab.guestWrite('hot-src', 0, [{ offset: 3 * MiB, length: 1 * MiB, pattern: 'zeros' }]); // after the snapshot

    const { key, uuid } = await attach(snapDisk!.fileName, 1);
    expect(uuid).toBe(snapDisk!.uuid); // the uuid comes from the disk's descriptor
    const link = path.join(lab.byIdDir, `wwn-0x${uuid.replace(/-/g, '').toLowerCase()}`);
    expect(fs.existsSync(link)).toBe(true);
    const dev = fs.readlinkSync(link);
    expect(fs.readlinkSync(path.join(lab.byIdDir, `scsi-3${uuid.replace(/-/g, '').toLowerCase()}`))).toBe(dev);
    expect(dev).toMatch(/^\/dev\/loop\d+$/);
    expect(spawnSync('blockdev', ['--getro', dev], { encoding: 'utf8' }).stdout.trim()).toBe('1');
    expect(spawnSync('blockdev', ['--getsize64', dev], { encoding: 'utf8' }).stdout.trim()).toBe(String(64 * MiB));
    const frozenFlat = path.join(lab.datastores[0]!.path, 'hot-src', 'hot-src-flat.vmdk');
    expect(readDev(dev, 3 * MiB, 1 * MiB).equals(fs.readFileSync(frozenFlat).subarray(3 * MiB, 4 * MiB))).toBe(true);
    expect(readDev(dev, 3 * MiB, 16).equals(Buffer.alloc(16))).toBe(false); // the snapshot's data, not the later zeros
    expect(() => {
      const fd = fs.openSync(dev, 'r+');
      try {
        fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 0);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }).toThrow(/EROFS|EPERM|EACCES/);

    await detach(key, snapDisk!.fileName, 1);
    expect(fs.existsSync(link)).toBe(false);
    expect(fs.readdirSync(lab.byIdDir)).toEqual([]);
    expect(loopDevicesUnder(lab.datastores[0]!.path)).toEqual([]);
    expect(fs.existsSync(frozenFlat)).toBe(true);
    await removeSnapshot(soap, snap);
  });

  it('a disk attached in a persistent mode is a read-write device whose writes land in its flat file; independent_nonpersistent stays read-only', async () => {
    const vm = await lab.createVm({ name: 'hot-rw', disks: [{ capacityBytes: 16 * MiB }, { capacityBytes: 16 * MiB }, { capacityBytes: 8 * MiB }] });
    const hex = (u: string) => u.replace(/-/g, '').toLowerCase();
    for (const [i, mode] of [[0, 'independent_persistent'], [1, 'persistent']] as const) {
      const disk = vm.disks[i]!;
      const { key, uuid } = await attach(disk.fileName, i + 1, mode);
      expect(uuid).toBe(disk.uuid);
      const dev = fs.readlinkSync(path.join(lab.byIdDir, `wwn-0x${hex(uuid)}`));
      expect(fs.readlinkSync(path.join(lab.byIdDir, `scsi-3${hex(uuid)}`))).toBe(dev);
      expect(spawnSync('blockdev', ['--getro', dev], { encoding: 'utf8' }).stdout.trim()).toBe('0');
      const data = Buffer.alloc(1 * MiB, 0x5a + i);
      const fd = fs.openSync(dev, 'r+');
      try {
        fs.writeSync(fd, data, 0, data.length, 2 * MiB);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      expect(readDev(dev, 2 * MiB, data.length).equals(data)).toBe(true);
      await detach(key, disk.fileName, i + 1);
      expect(fs.existsSync(path.join(lab.byIdDir, `wwn-0x${hex(uuid)}`))).toBe(false);
      const flat = fs.readFileSync(disk.flatPath);
      expect(flat.length).toBe(16 * MiB);
      expect(flat.subarray(2 * MiB, 3 * MiB).equals(data)).toBe(true);
      expect(flat.subarray(0, 2 * MiB).equals(Buffer.alloc(2 * MiB))).toBe(true);
      // Only what was written is allocated: the thin disk stays thin.
      expect(fs.statSync(disk.flatPath).blocks * 512).toBeLessThanOrEqual(2 * MiB);
    }
    const third = vm.disks[2]!;
    const { key } = await attach(third.fileName, 3, 'independent_nonpersistent');
    const dev = fs.readlinkSync(path.join(lab.byIdDir, `wwn-0x${hex(third.uuid)}`));
    expect(spawnSync('blockdev', ['--getro', dev], { encoding: 'utf8' }).stdout.trim()).toBe('1');
    await detach(key, third.fileName, 3);
    expect(loopDevicesUnder(lab.datastores[0]!.path)).toEqual([]);
    expect(fs.readdirSync(lab.byIdDir)).toEqual([]);
  });

  it('HAZARD: a detach sent with fileOperation=destroy deletes the SOURCE disk in this simulator (a Transporter must never send it)', async () => {
    const vm = await lab.createVm({ name: 'hot-destroy', disks: [{ capacityBytes: 16 * MiB }] });
    const flat = vm.disks[0]!.flatPath;
    const { key } = await attach(vm.disks[0]!.fileName, 2);
    expect(loopDevicesUnder(lab.datastores[0]!.path)).toHaveLength(1);
    await detach(key, vm.disks[0]!.fileName, 2, 'destroy');
    expect(fs.existsSync(flat)).toBe(false);
    expect(fs.existsSync(flat.replace(/-flat\.vmdk$/, '.vmdk'))).toBe(false);
    expect(loopDevicesUnder(lab.datastores[0]!.path)).toEqual([]);
  });

  it('stopping the lab detaches every loop device it made', async () => {
    const other = await startLab({ hotadd: true });
    try {
      const s = await other.soap();
      const vm = await other.createVm({ name: 'left-attached', disks: [{ capacityBytes: 8 * MiB }] });
      const ctl = /<VirtualDevice\b[^>]*type="ParaVirtualSCSIController"[^>]*>([\s\S]*?)<\/VirtualDevice>/.exec(
        await s.retrieve('VirtualMachine', other.proxyVm.moref, ['config.hardware.device']),
      )!;
      await s.task(
        `<ReconfigVM_Task><_this type="VirtualMachine">${other.proxyVm.moref}</_this><spec><deviceChange><operation>add</operation>` +
          `${diskXml(-1, vm.disks[0]!.fileName, Number(tag(ctl[1]!, 'key')), 1)}</deviceChange></spec></ReconfigVM_Task>`,
      );
      expect(loopDevicesUnder(other.dir)).toHaveLength(1);
    } finally {
      await other.stop();
    }
    expect(loopDevicesUnder(other.dir)).toEqual([]);
    expect(fs.existsSync(other.dir)).toBe(false);
  });
});
