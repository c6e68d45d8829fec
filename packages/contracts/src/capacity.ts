/** A repository's size over time, as GET /api/repositories/:id/capacity returns it for the capacity chart. */
import { z } from 'zod';

export const CapacityQuerySchema = z.object({
  /** How far back, in days. */
  days: z.coerce.number().int().min(1).max(3650).default(30),
});
export type CapacityQuery = z.infer<typeof CapacityQuerySchema>;

/** The repository's figures when its size changed (a restore point recorded, retention, garbage collection). */
export const RepositorySampleSchema = z.object({
  at: z.string(),
  /** Bytes the chunks take on storage (compressed, encrypted); falls only when garbage collection frees space. */
  storedBytes: z.number(),
  /** Sum of the restore points' sizes as disk images: what restoring every one would write. */
  logicalBytes: z.number(),
  /** The unique chunks before compression; null when not measured. */
  uniqueBytes: z.number().nullable(),
  restorePoints: z.number(),
  chunks: z.number().nullable(),
});
export type RepositorySample = z.infer<typeof RepositorySampleSchema>;

export const RepositoryCapacitySchema = z.object({
  repositoryId: z.string(),
  days: z.number(),
  /** Within the last `days`, oldest first. */
  samples: z.array(RepositorySampleSchema),
  /** The newest sample (whatever its age) and its ratios; null before the first backup. */
  current: RepositorySampleSchema.extend({
    /** Logical over unique bytes: what deduplication (and skipping zeroes) saves; null when unknown. */
    dedupRatio: z.number().nullable(),
    /** Unique over stored bytes; null when unknown. */
    compressionRatio: z.number().nullable(),
  }).nullable(),
});
export type RepositoryCapacity = z.infer<typeof RepositoryCapacitySchema>;

export const TransporterLoadQuerySchema = z.object({
  /** How far back, in hours (samples are kept a week). */
  hours: z.coerce.number().int().min(1).max(168).default(24),
});
export type TransporterLoadQuery = z.infer<typeof TransporterLoadQuerySchema>;

/** A Transporter's load over time, column by column, oldest first, as GET /api/transporters/:id/load returns it. */
export const TransporterLoadHistorySchema = z.object({
  transporterId: z.string(),
  hours: z.number(),
  /** Epoch ms. */
  at: z.array(z.number()),
  activeDisks: z.array(z.number()),
  /** The process's CPU, in % of one core. */
  cpuPercent: z.array(z.number()),
  /** The host's 1-minute load average. */
  load1: z.array(z.number()),
  rssBytes: z.array(z.number()),
});
export type TransporterLoadHistory = z.infer<typeof TransporterLoadHistorySchema>;
