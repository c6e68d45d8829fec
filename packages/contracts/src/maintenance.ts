import { z } from 'zod';

/** What a maintenance run (kind 'verify', 'gc' or 'copy') was asked to do; kept on the run row. */
export const MaintenanceRequestSchema = z.discriminatedUnion('task', [
  z.object({
    task: z.literal('verify'),
    repositoryId: z.uuid(),
    /** Fraction of referenced chunks re-hashed: 1 = full verify. */
    sample: z.number().gt(0).max(1).default(1),
  }),
  z.object({ task: z.literal('gc'), repositoryId: z.uuid() }),
  /** A backup copy job's run: `repositoryId` is the job's target (one copy into a repository at a time). */
  z.object({ task: z.literal('copy'), repositoryId: z.uuid(), copyJobId: z.uuid() }),
]);
export type MaintenanceRequest = z.infer<typeof MaintenanceRequestSchema>;

/** Body of POST /api/repositories/:id/verify. */
export const VerifyStartSchema = z.object({ sample: z.number().gt(0).max(1).default(1) });

/** PUT /api/repositories/:id/maintenance: when GC and verify run by themselves. */
export const MaintenanceSettingsSchema = z.object({
  gcSchedule: z.string().trim().min(1).nullable(),
  verifySchedule: z.string().trim().min(1).nullable(),
  verifySample: z.number().gt(0).max(1),
});
export type MaintenanceSettings = z.infer<typeof MaintenanceSettingsSchema>;

/** GET /api/repositories/:id/maintenance: the settings and what verify found. */
export const MaintenanceStateSchema = MaintenanceSettingsSchema.extend({
  damagedRestorePoints: z.number(),
  lastFullVerifyAt: z.string().nullable(),
});
export type MaintenanceState = z.infer<typeof MaintenanceStateSchema>;
