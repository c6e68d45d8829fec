/**
 * GET /api/overview/protection: per VM (in a vCenter's inventory or in a job's sources) whether it is
 * protected, its last backup and restore points, and the last 24 hours of backup runs, computed by the Director.
 */
import { z } from 'zod';
import { RunStatusSchema } from './jobs.ts';

export const ProtectionQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(5000).default(500),
  offset: z.coerce.number().int().min(0).default(0),
  /** Read every vCenter's inventory now instead of the copy the Director keeps for a minute. */
  fresh: z.enum(['true', 'false', '1', '0']).optional().transform((v) => v === 'true' || v === '1'),
  /**
   * Only the VMs in that state: `unprotected` and `protected` as `counts` splits them, `attention` those whose last
   * backup failed or ended with warnings (as `counts.attention`). `total` is then the number that matched.
   */
  status: z.enum(['unprotected', 'attention', 'protected']).optional(),
  /** Only the VMs whose name contains this (case-insensitive); `total` is then the number that matched. */
  q: z.string().trim().max(200).optional(),
});
/** The states `status` filters on, in the console's order. */
export const PROTECTION_FILTERS = ['unprotected', 'attention', 'protected'] as const;
export type ProtectionFilter = (typeof PROTECTION_FILTERS)[number];
export type ProtectionQuery = z.infer<typeof ProtectionQuerySchema>;

export const LastBackupSchema = z.object({
  runId: z.string(),
  status: RunStatusSchema,
  /** When the VM's item finished (or was created, for one that never started). */
  at: z.string(),
  /** Incremental when every disk was read through CBT since an earlier restore point of the VM; null when no disk was read. */
  mode: z.enum(['full', 'incremental']).nullable(),
  /** Bytes written to the repository by that backup. */
  bytesWritten: z.number(),
  error: z.string().nullable(),
});
export type LastBackup = z.infer<typeof LastBackupSchema>;

export const VmProtectionSchema = z.object({
  /** The instance UUID, or `<vCenter id>/<moref>` for a VM without one. */
  key: z.string(),
  name: z.string(),
  vcenterId: z.string().nullable(),
  vcenterName: z.string().nullable(),
  moref: z.string().nullable(),
  instanceUuid: z.string().nullable(),
  /** Seen in its vCenter's inventory just now (false: only a job names it, or the vCenter did not answer). */
  inInventory: z.boolean(),
  /** Enabled jobs whose sources include it. */
  jobs: z.array(z.object({ id: z.string(), name: z.string() })),
  protected: z.boolean(),
  /** Why it is unprotected: no enabled job covers it, or no restore point exists yet. */
  unprotectedReason: z.enum(['no_job', 'no_restore_point']).nullable(),
  lastBackup: LastBackupSchema.nullable(),
  restorePoints: z.number(),
  newestPointAt: z.string().nullable(),
  /** The earliest next scheduled run of the jobs covering it. */
  nextRunAt: z.string().nullable(),
});
export type VmProtection = z.infer<typeof VmProtectionSchema>;

export const ProtectionOverviewSchema = z.object({
  generatedAt: z.string(),
  /** Every VM known (those matching `status`/`q` when given), before paging; `vms` is the page asked for, unprotected and failed first. */
  total: z.number(),
  counts: z.object({ protected: z.number(), unprotected: z.number(), attention: z.number() }),
  /** Backup runs finished in the last 24 hours, by result, and those running now. */
  last24h: z.object({ succeeded: z.number(), warnings: z.number(), failed: z.number(), running: z.number() }),
  /** The next scheduled backup runs, soonest first. */
  nextRuns: z.array(z.object({ jobId: z.string(), jobName: z.string(), at: z.string(), vms: z.number() })),
  /** When the oldest inventory shown was read (the Director keeps each vCenter's for a minute); null without vCenters. */
  inventoryAsOf: z.string().nullable(),
  /**
   * vCenters whose inventory could not be read, and why: `asOf` is when the copy shown instead was read, null
   * when there is none (their VMs are then known from jobs only).
   */
  inventoryProblems: z.array(z.object({ vcenterId: z.string(), vcenterName: z.string(), reason: z.string(), asOf: z.string().nullable() })),
  vms: z.array(VmProtectionSchema),
});
export type ProtectionOverview = z.infer<typeof ProtectionOverviewSchema>;
