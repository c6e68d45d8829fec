import { z } from 'zod';

/** The answer of an action that has nothing else to say (delete, sign out, test sent). */
export const OkSchema = z.object({ ok: z.literal(true) });
export type Ok = z.infer<typeof OkSchema>;

/** 202 of an action carried out by a run (restore, verify, GC): follow it at GET /api/runs/:id. */
export const RunStartedSchema = z.object({ runId: z.string() });
export type RunStarted = z.infer<typeof RunStartedSchema>;
