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
  createdAt: z.string(),
  logicalBytes: z.number(),
  newBytes: z.number(),
  suspect: z.boolean(),
  immutableUntil: z.string().nullable(),
  /** The run that wrote it, when known. */
  runId: z.string().nullable(),
});
export type RepositoryRestorePoint = z.infer<typeof RepositoryRestorePointSchema>;
