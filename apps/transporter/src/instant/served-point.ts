/**
 * A restore point held open for an instant recovery's export: the repository, a shared lock (garbage collection
 * takes an exclusive one, so the chunks the host reads stay, even if retention deletes the point meanwhile), and a
 * reader per disk. Opened when a recovery starts or is served again after a restart; closed when it is over or the
 * Transporter stops.
 */
import { openRepository, type RepositoryRow, type Unsealer } from '@vaultline/appliance';
import type { RecoveryDisk } from '@vaultline/instant';
import { DiskReader, type Lock, type Repository } from '@vaultline/repository';
import type { HardwareDescription } from '@vaultline/vsphere';

export interface PointRow {
  repoPointId: string;
  vmInstanceUuid: string;
  repository: RepositoryRow;
}

export interface ServedPoint {
  ref: { vmId: string; id: string };
  hardware: HardwareDescription;
  disks: RecoveryDisk[];
  close(): Promise<void>;
}

export async function openServedPoint(point: PointRow, unseal: Unsealer, purpose: string): Promise<ServedPoint> {
  const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
  const repo: Repository = await openRepository(point.repository, unseal);
  let lock: Lock | null = null;
  const readers: DiskReader[] = [];
  const close = async () => {
    for (const r of readers) r.close();
    await lock?.release().catch(() => undefined);
    await repo.close().catch(() => undefined);
  };
  try {
    lock = await repo.locks.acquire('shared', purpose);
    const manifest = await repo.readManifest(ref);
    const hardware = (manifest.vm as { hardware?: HardwareDescription | null } | null)?.hardware;
    if (!hardware) throw new Error(`restore point ${ref.id} holds no hardware description, which an instant recovery registers the VM from`);
    const disks: RecoveryDisk[] = [];
    // Disks excluded from the backup have no data: the recovered VM goes without them.
    for (const d of manifest.disks.filter((m) => hardware.disks.some((h) => String(h.key) === m.key))) {
      const reader = await DiskReader.open(repo, ref, d.key, { cacheChunks: 128, readAhead: 8 });
      readers.push(reader);
      disks.push({ key: Number(d.key), capacity: reader.capacity, read: (offset, length) => reader.read(offset, length) });
    }
    return { ref, hardware, disks, close };
  } catch (err) {
    await close();
    throw err;
  }
}
