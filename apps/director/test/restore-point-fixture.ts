/** A restore point written through the real repository and registered in a test Director's database. */
import path from 'node:path';
import { SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { Repository, RestorePointWriter } from '@vaultline/repository';
import type { HardwareDescription } from '@vaultline/vsphere';
import type { TestDirector } from './helpers.ts';

const MiB = 1024 * 1024;

export interface PointDisk {
  key: string;
  image: Buffer;
  controller: string;
}

export async function createRestorePoint(d: TestDirector, dir: string, vm: { name: string; uuid: string; hardware?: HardwareDescription; moref?: string }, disks: PointDisk[]): Promise<string> {
  const passphrase = 'download passphrase';
  const repoDir = path.join(dir, `repo-${vm.uuid}`);
  await Repository.init(repoDir, { passphrase });
  const repo = await Repository.open(repoDir, { passphrase });
  const rp = await RestorePointWriter.open(repo, { vmId: vm.uuid, vm: { name: vm.name, ...(vm.moref ? { moref: vm.moref } : {}), ...(vm.hardware ? { hardware: vm.hardware } : {}) } });
  for (const disk of disks) {
    const w = await rp.openDisk({ key: disk.key, capacity: disk.image.length, controller: disk.controller });
    for (let off = 0; off < disk.image.length; off += MiB) await w.write(off, disk.image.subarray(off, Math.min(off + MiB, disk.image.length)));
  }
  const m = await rp.commit();
  await repo.close();
  const row = await d.db.repository.create({
    data: { name: `dl-${vm.uuid}`, location: repoDir, encrypted: true, passphraseSealed: sealSecret(Buffer.alloc(32, 3), SECRET_LABELS.repositoryPassphrase, passphrase) },
  });
  const point = await d.db.restorePoint.create({
    data: { repositoryId: row.id, repoPointId: m.id, vmInstanceUuid: vm.uuid, vmName: vm.name, createdAt: new Date(), logicalBytes: BigInt(disks.reduce((n, x) => n + x.image.length, 0)) },
  });
  return point.id;
}

