/**
 * Restore to KVM delivered over SSH to a real OpenSSH sshd on 127.0.0.1 (@vaultline/ssh-lab): the host
 * key is pinned (a wrong one is refused before anything is converted or sent), the bundle arrives
 * whole (SHA-256 checked), a raw image stays sparse on the host, and a non-empty remote directory is
 * refused. The lab needs root (useradd); CI runs as root.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RemoteProblem } from '@vaultline/remote';
import { Repository, openRestorePointWriter, shutdownWorkerPools, type Manifest } from '@vaultline/repository';
import { startSshLab, type SshLab } from '@vaultline/ssh-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreToKvm, type KvmRestoreRequest } from '../src/restore-kvm.ts';
import { recordedVm } from './restore-kvm-fixtures.ts';

// CI runs as root: the SSH lab creates a local user and runs sshd.
const isRoot = process.getuid?.() === 0;
const MiB = 2 ** 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!isRoot)('restore to KVM over SSH', () => {
  let lab: SshLab;
  let root = '';
  let work = '';
  let repo: Repository;
  let m: Manifest;
  const img = Buffer.alloc(32 * MiB);

  beforeAll(async () => {
    lab = await startSshLab({ userPrefix: 'vlkvm' });
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-srepo-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-kvm-stage-'));
    await Repository.init(root);
    repo = await Repository.open(root);
    randomBytes(2 * MiB).copy(img, 0);
    randomBytes(MiB).copy(img, 20 * MiB);
    const w = await openRestorePointWriter(repo, { vmId: 'vm-ssh', vm: recordedVm({ disks: [['pvscsi', 0, 0, img.length]] }) });
    const d = await w.openDisk({ key: '2000', capacity: img.length, mode: 'full' });
    await d.write(0, img.subarray(0, 2 * MiB));
    await d.write(20 * MiB, img.subarray(20 * MiB, 21 * MiB));
    m = await w.commit();
  }, 180_000);

  afterAll(async () => {
    await lab?.stop();
    await repo?.close();
    await shutdownWorkerPools();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  const request = (remoteDir: string, stagingDir: string, hostKeySha256 = lab.hostKeyFingerprint()): KvmRestoreRequest => ({
    repo,
    ref: { vmId: m.vmId, id: m.id },
    format: 'raw',
    networks: { map: {}, default: { network: 'default' } },
    proxmox: { vmid: 321, storage: 'local-lvm', bridges: { map: {}, default: 'vmbr0' } },
    target: { kind: 'ssh', stagingDir, remoteDir, target: { host: lab.host, port: lab.port, username: lab.user, credential: { privateKey: lab.privateKey }, hostKeySha256 } },
  });

  it('a wrong pinned host key is refused before anything is converted or sent', async () => {
    const remoteDir = path.join(lab.home, 'wrong-key');
    const staging = path.join(work, 'wrong-key');
    const wrong = `SHA256:${createHash('sha256').update('not the host key').digest('base64').replace(/=+$/, '')}`;
    const err = await restoreToKvm(request(remoteDir, staging, wrong)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteProblem);
    expect((err as RemoteProblem).kind).toBe('host_key');
    expect((err as Error).message).toContain(lab.hostKeyFingerprint());
    expect(fs.existsSync(remoteDir)).toBe(false);
    expect(fs.readdirSync(staging)).toEqual([]);
  });

  it('delivers the bundle: files whole, the raw disk sparse on the host, the staging copy removed', async () => {
    const remoteDir = path.join(lab.home, 'restores', 'app01');
    const staging = path.join(work, 'ok');
    const r = await restoreToKvm(request(remoteDir, staging));
    expect(r.hostDir).toBe(remoteDir);
    expect(fs.readdirSync(remoteDir).sort()).toEqual(['321.conf', 'NOTES.txt', 'disk-0.raw', 'domain.xml', 'import-proxmox.sh']);
    const disk = path.join(remoteDir, 'disk-0.raw');
    expect(sha(fs.readFileSync(disk))).toBe(sha(img));
    const st = fs.statSync(disk);
    expect(st.size).toBe(32 * MiB);
    expect(st.blocks * 512).toBeLessThan(4 * MiB);
    expect(st.uid).toBe(lab.uid);
    // The configs name the disks where they are on the host.
    expect(fs.readFileSync(path.join(remoteDir, 'domain.xml'), 'utf8')).toContain(`<source file="${disk}"/>`);
    expect(fs.readFileSync(path.join(remoteDir, 'import-proxmox.sh'), 'utf8')).toContain(`qm disk import 321 ${disk} local-lvm --target-disk scsi0`);
    expect(r.delivered?.map((f) => f.name).sort()).toEqual(['321.conf', 'NOTES.txt', 'disk-0.raw', 'domain.xml', 'import-proxmox.sh']);
    expect(r.delivered?.find((f) => f.name === 'disk-0.raw')?.sha256).toBe(sha(img));
    expect(fs.existsSync(staging)).toBe(false);
  });

  it('refuses a remote directory that is not empty, before converting', async () => {
    const remoteDir = path.join(lab.home, 'busy');
    fs.mkdirSync(remoteDir);
    fs.writeFileSync(path.join(remoteDir, 'keep.txt'), 'mine');
    fs.chownSync(remoteDir, lab.uid, -1);
    const staging = path.join(work, 'busy');
    await expect(restoreToKvm(request(remoteDir, staging))).rejects.toThrow(/is not empty/);
    expect(fs.readdirSync(remoteDir)).toEqual(['keep.txt']);
    expect(fs.readdirSync(staging)).toEqual([]);
  });
});
