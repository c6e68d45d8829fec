/**
 * What the console needs around jobs beyond creating them: the job as listed
 * (with its next scheduled run and last result), partial updates, schedule
 * previews and the run history filter.
 */
import { z } from 'zod';
import { JobOptionsSchema, JobSourceSchema, RunStatusSchema, TransportModeSchema } from './jobs.ts';

export const JobLastRunSchema = z.object({
  id: z.string(),
  status: RunStatusSchema,
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});

export const JobSchema = z.object({
  id: z.string(),
  name: z.string(),
  vcenterId: z.string(),
  repositoryId: z.string(),
  sources: z.array(JobSourceSchema),
  transportMode: TransportModeSchema,
  options: JobOptionsSchema,
  /** Five-field cron expression in the appliance's time zone; null = run on demand only. */
  schedule: z.string().nullable(),
  enabled: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** When the scheduler will start it next (null: no schedule, or disabled). */
  nextRunAt: z.string().nullable(),
  lastRun: JobLastRunSchema.nullable(),
});
export type Job = z.infer<typeof JobSchema>;

/**
 * PATCH /api/jobs/:id. Only the fields sent change; `options`, when sent, replaces
 * the job's options as a whole. While a run of the job is queued or running,
 * only name, schedule and enabled may change. Lowering `options.retention.immutableDays`
 * needs the signed-in user's password in `currentPassword`.
 */
export const JobUpdateSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    vcenterId: z.uuid(),
    repositoryId: z.uuid(),
    sources: z.array(JobSourceSchema).min(1, 'choose at least one VM or container'),
    transportMode: TransportModeSchema,
    options: JobOptionsSchema,
    schedule: z.string().trim().min(1).nullable(),
    enabled: z.boolean(),
    /** Needed when the change lowers the job's immutability (see REAUTH_FIELD). */
    currentPassword: z.string().min(1).max(1024),
  })
  .partial()
  .strict()
  .refine((u) => Object.keys(u).some((k) => k !== 'currentPassword'), 'nothing to change');
export type JobUpdate = z.infer<typeof JobUpdateSchema>;

export const SchedulePreviewRequestSchema = z.object({ schedule: z.string().trim().min(1, 'enter a cron expression') });

/** The next occurrences of a valid schedule (an invalid one is a 400 saying why). */
export const SchedulePreviewSchema = z.object({
  schedule: z.string(),
  /** The appliance's time zone, in which the expression is read. */
  timeZone: z.string(),
  next: z.array(z.string()),
});
export type SchedulePreview = z.infer<typeof SchedulePreviewSchema>;

export const RunListQuerySchema = z.object({
  jobId: z.uuid().optional(),
  status: RunStatusSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** `false`: each item's log is left out (a history list does not show it; the run's page reads it). */
  logs: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
});
