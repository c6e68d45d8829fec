/**
 * The backed-up bootable guest, restored to KVM, boots in QEMU: the test guest's disk image
 * (@vaultline/kvm/testing) goes into a repository restore point with recorded hardware (a Linux
 * guestId, BIOS), restoreToKvm converts it into a directory, and QEMU boots the converted image on the
 * devices domain.xml names (the disks, their bus and format are read from the generated XML) to the
 * guest's login prompt.
 *
 * The login prompt proves the firmware booted GRUB, the kernel and the initramfs from the converted
 * disk on that bus. The guest's kernel seeing and writing the disk (its marker partition, "tick=N
 * written") is checked on SATA, and on virtio-scsi when the guest's initramfs carries virtio_scsi.
 */
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Repository, openRestorePointWriter, shutdownWorkerPools, type Manifest } from '@vaultline/repository';
import { bootableGuest, type BootableGuest } from '@vaultline/kvm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startQemu, type QemuHandle } from '../src/qemu.ts';
import { restoreToKvm } from '../src/restore-kvm.ts';
import type { DiskBus } from '../src/hardware.ts';
import { recordedVm } from './restore-kvm-fixtures.ts';

const MiB = 2 ** 20;
let guest: BootableGuest;
let root = '';
let work = '';
let repo: Repository;
let m: Manifest;
const running: QemuHandle[] = [];

beforeAll(async () => {
  guest = await bootableGuest();
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-brepo-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-boot-'));
  await Repository.init(root);
  repo = await Repository.open(root);
  const img = fs.readFileSync(guest.path);
  const w = await openRestorePointWriter(repo, {
    vmId: 'vm-guest',
    vm: recordedVm({ name: 'guest01', guestId: 'debian12_64Guest', guestFullName: 'Debian GNU/Linux 12 (64-bit)', firmware: 'bios', numCpu: 1, numCoresPerSocket: 1, memoryMiB: 256, disks: [['pvscsi', 0, 0, img.length]] }),
  });
  const d = await w.openDisk({ key: '2000', capacity: img.length, mode: 'full' });
  // As a backup with the allocation map would: all-zero MiBs are not sent.
  const zero = Buffer.alloc(MiB);
  for (let o = 0; o < img.length; o += MiB) {
    const part = img.subarray(o, Math.min(img.length, o + MiB));
    if (!part.equals(zero.subarray(0, part.length))) await d.write(o, part);
  }
  m = await w.commit();
}, 600_000);

afterAll(async () => {
  await Promise.all(running.map((q) => q.stop()));
  await repo?.close();
  await shutdownWorkerPools();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

/** QEMU devices for the disks of a generated domain.xml, as libvirt would give them on q35. */
function qemuDisksOf(xml: string): string[] {
  const disks = [...xml.matchAll(/<disk type="file" device="disk">([\s\S]*?)<\/disk>/g)].map((d) => ({
    format: /<driver name="qemu" type="(\w+)"/.exec(d[1]!)![1]!,
    file: /<source file="([^"]+)"\/>/.exec(d[1]!)![1]!,
    bus: /<target dev="\w+" bus="(\w+)"\/>/.exec(d[1]!)![1]!,
    unit: Number(/unit="(\d+)"/.exec(d[1]!)![1]),
    boot: /<boot order="(\d+)"\/>/.exec(d[1]!)?.[1],
  }));
  const args: string[] = [];
  if (/<controller type="scsi" index="0" model="virtio-scsi"\/>/.test(xml)) args.push('-device', 'virtio-scsi-pci,id=scsi0');
  for (const [i, d] of disks.entries()) {
    args.push('-drive', `file=${d.file.replace(/,/g, ',,')},format=${d.format},if=none,id=disk${i}`);
    const boot = d.boot ? `,bootindex=${d.boot}` : '';
    if (d.bus === 'scsi') args.push('-device', `scsi-hd,drive=disk${i},bus=scsi0.0,channel=0,scsi-id=0,lun=${d.unit}${boot}`);
    else if (d.bus === 'sata') args.push('-device', `ide-hd,drive=disk${i},bus=ide.${d.unit}${boot}`); // q35's built-in ICH9 AHCI
    else throw new Error(`no QEMU device for bus ${d.bus}`);
  }
  return args;
}

async function restoreAndBoot(name: string, format: 'raw' | 'qcow2', bus: DiskBus | undefined): Promise<{ q: QemuHandle; xml: string; dir: string }> {
  const dir = path.join(work, name);
  const r = await restoreToKvm({
    repo,
    ref: { vmId: m.vmId, id: m.id },
    format,
    bus,
    networks: { map: { 'VM Network': { network: 'default' } } },
    proxmox: { vmid: 900, storage: 'local-lvm', bridges: { map: { 'VM Network': 'vmbr0' } } },
    target: { kind: 'directory', dir },
  });
  expect(r.plan.family).toBe('linux');
  const q = await startQemu({
    memoryMiB: r.plan.hardware.memoryMiB,
    cpus: r.plan.hardware.numCpu,
    firmware: 'bios',
    drives: [],
    serialLog: path.join(work, `${name}.serial`),
    qmpSocket: path.join(work, `${name}.qmp`),
    noReboot: true,
    name: `vaultline-test-restore-kvm-${name}`,
    extraArgs: ['-machine', 'q35', ...qemuDisksOf(r.domainXml)],
  });
  running.push(q);
  return { q, xml: r.domainXml, dir };
}

describe('the restored guest boots in QEMU', () => {
  it('Linux plan (virtio-scsi, qcow2): the firmware boots the converted disk to the login prompt', async () => {
    const { q, xml } = await restoreAndBoot('virtio-scsi', 'qcow2', undefined);
    expect(xml).toContain('model="virtio-scsi"');
    expect(q.args.join(' ')).toContain('scsi-hd,drive=disk0,bus=scsi0.0');
    await q.waitForSerial(guest.banner, 120_000);
    await q.waitForSerial(guest.loginPrompt, 120_000);
    // The kernel's view of the disk needs virtio_scsi in the initramfs; checked when the test guest carries it.
    if (fs.readFileSync(guest.path).includes('virtio_scsi.ko')) await q.waitForSerial(/vaultline-guest tick=1 written/, 60_000);
    await q.stop();
  }, 300_000);

  it('SATA (raw): boots to the login prompt and the guest kernel writes to the restored disk', async () => {
    const { q, xml, dir } = await restoreAndBoot('sata', 'raw', 'sata');
    expect(xml).toContain('bus="sata"');
    await q.waitForSerial(guest.loginPrompt, 120_000);
    await q.waitForSerial(/vaultline-guest marker on \/dev\/sda3/, 60_000);
    await q.waitForSerial(/vaultline-guest tick=2 written/, 60_000);
    await q.stop();
    // The write landed in the restored image (and so not in the repository).
    const fd = fs.openSync(path.join(dir, 'disk-0.raw'), 'r');
    const sector = Buffer.alloc(512);
    fs.readSync(fd, sector, 0, 512, guest.markerOffset);
    fs.closeSync(fd);
    expect(sector.toString('latin1')).toMatch(/^vaultline-guest boot=[0-9a-f-]{36} tick=\d+\n/);
  }, 300_000);
});
