import { z } from 'zod';
import { TransporterStatusSchema } from './transporters.ts';

export const ComponentHealthSchema = z.object({
  ok: z.boolean(),
  /** Why it is not ok, in words an operator can act on. */
  reason: z.string().optional(),
  latencyMs: z.number().optional(),
});
export type ComponentHealth = z.infer<typeof ComponentHealthSchema>;

export const HealthResponseSchema = z.object({
  ok: z.boolean(),
  version: z.string(),
  time: z.string(),
  postgres: ComponentHealthSchema,
  redis: ComponentHealthSchema,
  transporters: z.array(TransporterStatusSchema),
});
export type HealthResponse = z.infer<typeof HealthResponseSchema>;

/** GET /api/health without a session: whether it is up and why not, Transporters only counted. */
export const PublicHealthSchema = z.object({
  ok: z.boolean(),
  version: z.string(),
  time: z.string(),
  postgres: ComponentHealthSchema.pick({ ok: true, reason: true }),
  redis: ComponentHealthSchema.pick({ ok: true, reason: true }),
  transporters: z.object({ online: z.number(), total: z.number() }),
});
export type PublicHealth = z.infer<typeof PublicHealthSchema>;
