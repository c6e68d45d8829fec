/** A job's recent runs, oldest first, for the history bars of the Jobs list and the job page. */
import { z } from 'zod';
import { RunSchema, RunStatusSchema } from './jobs.ts';

/** GET /api/jobs/:id/history: how many of the job's latest runs. */
export const JobHistoryQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(30),
});
export type JobHistoryQuery = z.infer<typeof JobHistoryQuerySchema>;

/** GET /api/jobs/history: how many of each job's latest runs (one answer for the whole Jobs list). */
export const JobsHistoryQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(50).default(12),
});
export type JobsHistoryQuery = z.infer<typeof JobsHistoryQuerySchema>;

export const JobHistoryRunSchema = z.object({
  id: z.string(),
  status: RunStatusSchema,
  kind: RunSchema.shape.kind,
  /** 'manual' or 'schedule'. */
  trigger: z.string(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  /** From start to finish; null until the run finishes, 0 for a run that ended before it started (cancelled while queued). */
  durationSeconds: z.number().nullable(),
  /** Summed over the run's disks. */
  bytesRead: z.number(),
  bytesWritten: z.number(),
});
export type JobHistoryRun = z.infer<typeof JobHistoryRunSchema>;

export const JobHistorySchema = z.object({
  jobId: z.string(),
  /** Oldest first. */
  runs: z.array(JobHistoryRunSchema),
});
export type JobHistory = z.infer<typeof JobHistorySchema>;

/** A compact run for the Jobs list's bars. */
export const JobHistoryBarSchema = JobHistoryRunSchema.pick({ id: true, status: true, createdAt: true, startedAt: true, durationSeconds: true });
export type JobHistoryBar = z.infer<typeof JobHistoryBarSchema>;

/** GET /api/jobs/history: every job's latest runs (oldest first); a job without runs is listed with none. */
export const JobsHistorySchema = z.array(z.object({ jobId: z.string(), runs: z.array(JobHistoryBarSchema) }));
export type JobsHistory = z.infer<typeof JobsHistorySchema>;
