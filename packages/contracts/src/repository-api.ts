/** Repository figures and restore points as the console shows them. */
import { z } from 'zod';

export const RepositoryStatsSchema = z.object({
  repositoryId: z.string(),
  restorePoints: z.number(),
  /** Sum of the disk sizes of every restore point: what a restore could write. */
  logicalBytes: z.number(),
  /** Unique data before compression. */
  uniqueRawBytes: z.number(),
  /** Bytes on storage (compressed, encrypted). */
  storedBytes: z.number(),
  dedupRatio: z.number(),
  compressionRatio: z.number(),
  /** Free space where the repository lives; null when the storage does not say (SFTP). */
  freeBytes: z.number().nullable(),
  totalBytes: z.number().nullable(),
});
export type RepositoryStats = z.infer<typeof RepositoryStatsSchema>;

export const RepositoryRestorePointSchema = z.object({
  id: z.string(),
  vmName: z.string(),
  vmInstanceUuid: z.string(),
  repositoryId: z.string(),
  /** The repository's name. */
  repository: z.string(),
  createdAt: z.string(),
  logicalBytes: z.number(),
  newBytes: z.number(),
  suspect: z.boolean(),
  immutableUntil: z.string().nullable(),
  /** A verify found a damaged or missing chunk (or an unreadable index/manifest); `damage` says what. */
  damaged: z.boolean(),
  damage: z.string().nullable(),
  /** The last full verify that re-read every chunk of this point and found it intact. */
  verifiedAt: z.string().nullable(),
  /** The run that wrote it, when known. */
  runId: z.string().nullable(),
  /**
   * The ransomware signal: its new data jumped to high-entropy, incompressible against the VM's recent
   * restore points (`anomaly` says what was measured against what). Not `suspect` (a CBT sanity mismatch).
   */
  ransomwareSuspect: z.boolean(),
  anomaly: z.string().nullable(),
  /** While a ransomware-suspect point's hold is not released, retention prunes nothing of the VM in that repository. */
  holdReleasedAt: z.string().nullable(),
  holdReleasedBy: z.string().nullable(),
  /** A backup copy (made by a copy job) of a point in another repository: restorable like the original. */
  copy: z.boolean(),
});
export type RepositoryRestorePoint = z.infer<typeof RepositoryRestorePointSchema>;

/**
 * POST /api/restore-points/:id/release-hold (operator): the operator has looked at a ransomware-suspect
 * point and releases the retention hold it put on its VM; `note` (why) goes to the audit log.
 */
export const ReleaseHoldSchema = z.object({ note: z.string().trim().min(1, 'say why the hold is released').max(500) });
export type ReleaseHold = z.infer<typeof ReleaseHoldSchema>;

/**
 * GET /api/restore-points/:id: one restore point with what a restore needs to offer: the vCenter it was
 * backed up from, the recorded hardware (null for points taken before hardware was recorded), its disks
 * and the networks of its NICs.
 */
export const RestorePointDetailSchema = RepositoryRestorePointSchema.extend({
  /** The vCenter of the backup job that wrote it; null when that job is gone. */
  vcenterId: z.string().nullable(),
  /** The VM as it was backed up (its moref in that vCenter then). */
  sourceVm: z.object({ moref: z.string().nullable(), name: z.string() }),
  hardware: z
    .object({
      guestId: z.string().nullable(),
      guestFullName: z.string().nullable(),
      cpus: z.number().nullable(),
      memoryMiB: z.number().nullable(),
      firmware: z.string().nullable(),
    })
    .nullable(),
  disks: z.array(
    z.object({
      key: z.string(),
      label: z.string(),
      capacityBytes: z.number(),
      controller: z.string().nullable(),
      /** The source disk's datastore, when the hardware was recorded. */
      datastore: z.string().nullable(),
      thin: z.boolean().nullable(),
    }),
  ),
  /** Network names of the VM's NICs, as recorded (the keys of a restore's networkMap). */
  networks: z.array(z.string()),
});
export type RestorePointDetail = z.infer<typeof RestorePointDetailSchema>;

/** GET /api/restore-points/:id/disks: the disks of a restore point, from its manifest. */
export const RestorePointDiskSchema = z.object({
  key: z.string(),
  capacityBytes: z.number(),
  controller: z.string().nullable(),
  transport: z.string().nullable(),
});
export type RestorePointDisk = z.infer<typeof RestorePointDiskSchema>;
