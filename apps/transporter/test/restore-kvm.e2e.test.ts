/**
 * A restore onto KVM/Proxmox as the Director asks for it (a restore request with `kvm`), carried out by the
 * real restore handler: a lab VM backed up through the lab vCenter, then written into a folder of the
 * Transporter's KVM export folder as thin images with a libvirt domain, a Proxmox configuration and NOTES.
 * No vCenter is used by the restore. Also: a folder that is not empty is refused before anything is
 * written, and a cancel leaves the folder empty.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBench, type Bench, type BenchPoint } from './fixture.ts';

const MiB = 1024 * 1024;

function sha256Of(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('restore onto KVM/Proxmox through the restore handler (lab vCenter, real repository)', () => {
  let b: Bench;
  let point: BenchPoint;

  beforeAll(async () => {
    b = await startBench();
    await b.lab.createVm({ name: 'kvm01', cbt: true, guestId: 'debian12_64Guest', cpus: 2, memoryMiB: 512, nics: ['VM Network'], disks: [{ capacityBytes: 32 * MiB }, { capacityBytes: 16 * MiB, controller: 'lsilogic' }] });
    await b.lab.guestWrite('kvm01', 0, [
      { offset: 0, length: 2 * MiB, pattern: 'random', seed: 181 },
      { offset: 20 * MiB, length: 1 * MiB, pattern: 'text', seed: 182 },
    ]);
    await b.lab.guestWrite('kvm01', 1, [{ offset: 4 * MiB, length: 3 * MiB, pattern: 'random', seed: 183 }]);
    point = await b.backupPoint('kvm01', 2);
  }, 240_000);
  afterAll(async () => {
    await b?.close();
  });

  const exportDir = () => path.join(b.dataDir, 'kvm-exports');

  it('writes raw images equal to the disks at backup time, thin, with a libvirt domain, a Proxmox configuration and NOTES; the run succeeds and says where', async () => {
    const { runId, runVmId } = await b.newRestoreRun({
      restorePointId: point.rowId,
      name: 'kvm01-on-kvm',
      kvm: { folder: 'kvm01-raw', format: 'raw', networks: { 'VM Network': { bridge: 'br0' } }, proxmox: { vmid: 4242, storage: 'local-lvm' } },
    });
    await b.restoreHandler({ runVmId });
    const item = await b.db.runVm.findUniqueOrThrow({ where: { id: runVmId } });
    const log = (item.log as { message: string }[]).map((l) => l.message);
    expect(item.status, `${item.error}\n${log.join('\n')}`).toBe('succeeded');
    const dir = path.join(exportDir(), 'kvm01-raw');
    expect(fs.readdirSync(dir).sort()).toEqual(['4242.conf', 'NOTES.txt', 'disk-0.raw', 'disk-1.raw', 'domain.xml', 'import-proxmox.sh']);
    // The boot disk first, each bit-exact to the disk when it was backed up, and thin: only what was written is allocated.
    expect(sha256Of(path.join(dir, 'disk-0.raw'))).toBe(point.truth[0]);
    expect(sha256Of(path.join(dir, 'disk-1.raw'))).toBe(point.truth[1]);
    expect(fs.statSync(path.join(dir, 'disk-0.raw')).size).toBe(32 * MiB);
    expect(fs.statSync(path.join(dir, 'disk-0.raw')).blocks * 512).toBeLessThan(8 * MiB);
    const xml = fs.readFileSync(path.join(dir, 'domain.xml'), 'utf8');
    expect(xml).toContain('<name>kvm01-on-kvm</name>');
    expect(xml).toMatch(/<source bridge=['"]br0['"]\/>/);
    expect(xml).toContain(path.join(dir, 'disk-0.raw'));
    const validator = spawnSync('virt-xml-validate', [path.join(dir, 'domain.xml'), 'domain'], { encoding: 'utf8' });
    if (!validator.error) expect(validator.status, validator.stdout + validator.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, '4242.conf'), 'utf8')).toMatch(/^memory: 512$/m);
    expect(fs.readFileSync(path.join(dir, 'NOTES.txt'), 'utf8')).toMatch(/virtio/i);
    expect(log.some((l) => l.startsWith(`written to ${dir}: `))).toBe(true);
    const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId } });
    expect(run.status).toBe('succeeded');
  });

  it('refuses a folder that is not empty, writing nothing into it', async () => {
    const dir = path.join(exportDir(), 'occupied');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'keep.txt'), 'mine');
    const { runVmId } = await b.newRestoreRun({ restorePointId: point.rowId, name: 'kvm01-again', kvm: { folder: 'occupied', format: 'qcow2' } });
    await b.restoreHandler({ runVmId });
    const item = await b.db.runVm.findUniqueOrThrow({ where: { id: runVmId } });
    expect(item.status).toBe('failed');
    expect(item.error).toMatch(/not empty/);
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
  });

  it('a cancel before the disks are converted ends the run cancelled and leaves the folder empty', async () => {
    const { runId, runVmId } = await b.newRestoreRun({ restorePointId: point.rowId, name: 'kvm01-cancel', kvm: { folder: 'cancelled', format: 'qcow2' } });
    // Cancelled as soon as the item starts: the handler checks at each step and while it converts.
    const seen = b.onEvent;
    b.onEvent = (e) => {
      if (e.type === 'vm.phase' && e.phase === 'preflight') b.cancelled.add(runId);
    };
    try {
      await b.restoreHandler({ runVmId });
    } finally {
      b.onEvent = seen;
      b.cancelled.delete(runId);
    }
    const item = await b.db.runVm.findUniqueOrThrow({ where: { id: runVmId } });
    expect(item.status).toBe('cancelled');
    expect(fs.readdirSync(path.join(exportDir(), 'cancelled'))).toEqual([]);
  });
});
