/**
 * The whole restore to KVM/Proxmox into a directory, from a real repository: the disks converted in boot
 * order (bit-exact), domain.xml (validated by virt-xml-validate where installed), <vmid>.conf,
 * import-proxmox.sh and NOTES.txt saying what was and was not adapted; refusals before any conversion.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Repository, openRestorePointWriter, shutdownWorkerPools, type Manifest } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreToKvm, type KvmRestoreRequest } from '../src/restore-kvm.ts';
import { recordedVm, type FixtureOptions } from './restore-kvm-fixtures.ts';

const MiB = 2 ** 20;
const small: FixtureOptions['disks'] = [['pvscsi', 0, 0, 4 * MiB]];
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const hasValidator = spawnSync('virt-xml-validate', ['--help']).error === undefined && spawnSync('xmllint', ['--version']).error === undefined;

let root = '';
let work = '';
let repo: Repository;
const images = new Map<string, Buffer>();

/** A restore point of `o`'s hardware whose disk 200N holds 1 MiB of random data at its start and at 3 MiB. */
async function point(vmId: string, o: FixtureOptions): Promise<Manifest> {
  const vm = recordedVm(o);
  const w = await openRestorePointWriter(repo, { vmId, vm });
  for (const d of (vm.hardware as { disks: Array<{ key: number; capacityBytes: number }> }).disks) {
    const img = Buffer.alloc(d.capacityBytes);
    randomBytes(MiB).copy(img, 0);
    randomBytes(MiB).copy(img, 3 * MiB);
    images.set(`${vmId}/${d.key}`, img);
    const dw = await w.openDisk({ key: String(d.key), capacity: img.length, mode: 'full' });
    await dw.write(0, img.subarray(0, MiB));
    await dw.write(3 * MiB, img.subarray(3 * MiB, 4 * MiB));
  }
  return w.commit();
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-rrepo-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-rout-'));
  await Repository.init(root);
  repo = await Repository.open(root);
}, 60_000);

afterAll(async () => {
  await repo?.close();
  await shutdownWorkerPools();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

const base = (m: Manifest, dir: string): KvmRestoreRequest => ({
  repo,
  ref: { vmId: m.vmId, id: m.id },
  format: 'qcow2',
  networks: { map: { 'VM Network': { network: 'default' } } },
  proxmox: { vmid: 200, storage: 'local-lvm', bridges: { map: { 'VM Network': 'vmbr0' } } },
  target: { kind: 'directory', dir },
});

describe('restore to KVM into a directory', () => {
  it('Linux, UEFI, 2 disks recorded out of order: disks in boot order, bit-exact; domain, qm conf, script and NOTES', async () => {
    const m = await point('vm-linux', { firmware: 'efi', disks: [['pvscsi', 0, 1, 8 * MiB], ['pvscsi', 0, 0, 6 * MiB]] });
    const dir = path.join(work, 'linux');
    const phases: string[] = [];
    const r = await restoreToKvm({ ...base(m, dir), onPhase: (p) => phases.push(p) });
    expect(phases.filter((p, i) => p !== phases[i - 1])).toEqual(['plan', 'check', 'convert', 'configure', 'done']);
    expect(fs.readdirSync(dir).sort()).toEqual(['200.conf', 'NOTES.txt', 'disk-0.qcow2', 'disk-1.qcow2', 'domain.xml', 'import-proxmox.sh']);
    // disk-0 is the boot disk scsi0:0 (key 2001), disk-1 is scsi0:1 (key 2000).
    for (const [file, key] of [['disk-0.qcow2', '2001'], ['disk-1.qcow2', '2000']] as const) {
      const flat = path.join(work, `${file}.raw`);
      execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', path.join(dir, file), flat]);
      expect(sha(fs.readFileSync(flat))).toBe(sha(images.get(`vm-linux/${key}`)!));
      fs.rmSync(flat);
    }
    const xml = fs.readFileSync(path.join(dir, 'domain.xml'), 'utf8');
    expect(xml).toContain(`<source file="${path.join(dir, 'disk-0.qcow2')}"/>`);
    expect(xml.indexOf('disk-0.qcow2')).toBeLessThan(xml.indexOf('disk-1.qcow2'));
    expect(xml).toContain('<os firmware="efi">');
    if (hasValidator) {
      const v = spawnSync('virt-xml-validate', [path.join(dir, 'domain.xml'), 'domain'], { encoding: 'utf8' });
      expect(`${v.stdout}${v.stderr}`).toMatch(/validates/);
      expect(v.status).toBe(0);
    }
    const conf = fs.readFileSync(path.join(dir, '200.conf'), 'utf8');
    expect(conf).toContain('scsi0: local-lvm:vm-200-disk-0,size=6M\nscsi1: local-lvm:vm-200-disk-1,size=8M\n');
    expect(conf).toContain('bios: ovmf\n');
    const script = fs.readFileSync(path.join(dir, 'import-proxmox.sh'), 'utf8');
    expect(script).toContain(`qm disk import 200 ${path.join(dir, 'disk-0.qcow2')} local-lvm --target-disk scsi0`);
    expect(fs.statSync(path.join(dir, 'import-proxmox.sh')).mode & 0o777).toBe(0o750);
    const notes = fs.readFileSync(path.join(dir, 'NOTES.txt'), 'utf8');
    expect(notes).toMatch(/Linux guest .*virtio-scsi/);
    expect(notes).toContain('Nothing was injected into or changed inside the guest');
    expect(notes).toMatch(/UEFI boot entries \(NVRAM\) are not carried over/);
    expect(r.disks.map((d) => d.capacity)).toEqual([6 * MiB, 8 * MiB]);
    expect(r.hostDir).toBe(dir);
  });

  it('Windows: SATA first boot, e1000e, and NOTES says plainly that no virtio driver was injected', async () => {
    const m = await point('vm-win', { guestId: 'windows2019srv_64Guest', guestFullName: 'Microsoft Windows Server 2019 (64-bit)', disks: [['lsisas', 0, 0, 4 * MiB]] });
    const dir = path.join(work, 'win');
    const r = await restoreToKvm({ ...base(m, dir), format: 'raw' });
    expect(r.plan.bus).toBe('sata');
    expect(fs.readFileSync(path.join(dir, 'domain.xml'), 'utf8')).toContain('<target dev="sda" bus="sata"/>');
    expect(fs.readFileSync(path.join(dir, '200.conf'), 'utf8')).toMatch(/^sata0: local-lvm:vm-200-disk-0,size=4M$/m);
    const notes = fs.readFileSync(path.join(dir, 'NOTES.txt'), 'utf8');
    expect(notes).toContain('SATA first boot');
    expect(notes).toContain('No virtio driver was injected');
    expect(notes).toMatch(/install the virtio-win drivers in the running guest first/);
    expect(sha(fs.readFileSync(path.join(dir, 'disk-0.raw')))).toBe(sha(images.get('vm-win/2000')!));
  });

  it('refuses before converting anything: an unmapped network, a non-empty directory, a point without hardware', async () => {
    const m = await point('vm-nets', { disks: small, nics: [{ networkName: 'VM Network' }, { networkName: 'Storage VLAN' }] });
    const dir = path.join(work, 'nets');
    await expect(restoreToKvm(base(m, dir))).rejects.toThrow(/"Storage VLAN"/);
    expect(fs.existsSync(dir)).toBe(false);

    const full = path.join(work, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'other.txt'), 'x');
    const ok = await point('vm-full', { disks: small });
    await expect(restoreToKvm(base(ok, full))).rejects.toThrow(/not empty/);
    expect(fs.readdirSync(full)).toEqual(['other.txt']);

    const w = await openRestorePointWriter(repo, { vmId: 'vm-bare' });
    await (await w.openDisk({ key: '2000', capacity: MiB })).write(0, randomBytes(4096));
    const bare = await w.commit();
    await expect(restoreToKvm(base(bare, path.join(work, 'bare')))).rejects.toThrow(/holds no VM description/);
  });

  it('Proxmox is optional: without it no qm files, and NOTES says so', async () => {
    const m = await point('vm-nopve', { disks: small });
    const dir = path.join(work, 'nopve');
    await restoreToKvm({ ...base(m, dir), proxmox: undefined, format: 'raw' });
    expect(fs.readdirSync(dir).sort()).toEqual(['NOTES.txt', 'disk-0.raw', 'domain.xml']);
    expect(fs.readFileSync(path.join(dir, 'NOTES.txt'), 'utf8')).toContain('Proxmox VE: no configuration was made');
  });
});
