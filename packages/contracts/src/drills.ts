import { z } from 'zod';
import { RunStatusSchema } from './jobs.ts';

/** A VM whose restore points a drill job restores, by the instance UUID the restore points carry. */
export const DrillVmSchema = z.object({
  instanceUuid: z.string().trim().min(1),
  name: z.string().trim().min(1).max(80),
});

export const DrillPointChoiceSchema = z.enum(['newest', 'random']);

export const DrillCreateSchema = z.object({
  name: z.string().trim().min(1).max(100),
  /** The vCenter the throwaway VMs are created in. */
  vcenterId: z.uuid(),
  vms: z.array(DrillVmSchema).min(1, 'choose at least one VM'),
  /** Which restore point to drill: the newest, or one at random (catches damage in older points). */
  pointChoice: DrillPointChoiceSchema.default('newest'),
  /** Datastore for the throwaway VMs; default: the source disks' datastore. */
  datastore: z.string().trim().min(1).nullable().default(null),
  /** Cron expression; null = on demand only. */
  schedule: z.string().trim().min(1).nullable().default(null),
  enabled: z.boolean().default(true),
});
export type DrillCreate = z.infer<typeof DrillCreateSchema>;

export const DrillUpdateSchema = z
  .object({
    vms: DrillCreateSchema.shape.vms,
    pointChoice: DrillPointChoiceSchema,
    datastore: z.string().trim().min(1).nullable(),
    schedule: z.string().trim().min(1).nullable(),
    enabled: z.boolean(),
  })
  .partial()
  .refine((u) => Object.keys(u).length > 0, 'nothing to change');
export type DrillUpdate = z.infer<typeof DrillUpdateSchema>;

export const DrillJobSchema = z.object({
  id: z.string(),
  name: z.string(),
  vcenterId: z.string(),
  vms: z.array(DrillVmSchema),
  pointChoice: DrillPointChoiceSchema,
  datastore: z.string().nullable(),
  schedule: z.string().nullable(),
  enabled: z.boolean(),
  lastScheduledAt: z.string().nullable(),
  /** When the scheduler starts it next (null: no schedule, or disabled). */
  nextRunAt: z.string().nullable(),
  /** Per VM of the drill, its latest drill run (null: never drilled). */
  lastResults: z.array(
    z.object({
      instanceUuid: z.string(),
      name: z.string(),
      run: z.object({ id: z.string(), status: RunStatusSchema, createdAt: z.string(), finishedAt: z.string().nullable(), error: z.string().nullable() }).nullable(),
    }),
  ),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type DrillJobDto = z.infer<typeof DrillJobSchema>;

/** POST /api/drills/:id/run: one run per VM of the drill. */
export const DrillRunsStartedSchema = z.object({ runIds: z.array(z.string()) });
export type DrillRunsStarted = z.infer<typeof DrillRunsStartedSchema>;
