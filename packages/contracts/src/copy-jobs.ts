import { z } from 'zod';
import { RetentionSchema } from './jobs.ts';

/** POST /api/copy-jobs: copy the restore points of one repository into another. */
export const CopyJobInputSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    sourceRepositoryId: z.uuid(),
    targetRepositoryId: z.uuid(),
    /** Per VM, only its newest N restore points; null = every one. */
    newest: z.number().int().min(1).max(10_000).nullable().default(null),
    /** Retention of the copies in the target, counted from each source point's time. */
    retention: RetentionSchema.default(RetentionSchema.parse({})),
    /** Cron expression in the appliance's time zone; null = on demand only. */
    schedule: z.string().trim().min(1).nullable().default(null),
    enabled: z.boolean().default(true),
  })
  .refine((j) => j.sourceRepositoryId !== j.targetRepositoryId, { message: 'a copy job copies into another repository than its source', path: ['targetRepositoryId'] });
export type CopyJobInput = z.infer<typeof CopyJobInputSchema>;

export const CopyJobSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  source: z.object({ id: z.uuid(), name: z.string() }),
  target: z.object({ id: z.uuid(), name: z.string() }),
  newest: z.number().int().nullable(),
  retention: RetentionSchema,
  schedule: z.string().nullable(),
  enabled: z.boolean(),
  /** Copies this job holds in its target now. */
  copies: z.number().int(),
  createdAt: z.string(),
});
export type CopyJob = z.infer<typeof CopyJobSchema>;
