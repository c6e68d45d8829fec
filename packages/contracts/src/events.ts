/**
 * Every event that travels Transporter → Redis → Director → browser (and the one the Director sends
 * Transporters): one discriminated union, validated where it leaves Redis, and the socket.io event
 * maps the Director and the web console are typed by.
 */
import { z } from 'zod';
import type { HealthResponse } from './health.ts';
import { InstantRecoveryStateSchema } from './instant-recovery.ts';
import { DiskProgressSchema, RunStatusSchema } from './jobs.ts';

const item = { runId: z.string(), runVmId: z.string() };

export const RunEventSchema = z.discriminatedUnion('type', [
  DiskProgressSchema.extend({ type: z.literal('disk.progress') }),
  z.object({ type: z.literal('vm.phase'), ...item, phase: z.string(), detail: z.string().nullable().default(null) }),
  z.object({ type: z.literal('vm.finished'), ...item, status: RunStatusSchema, error: z.string().nullable() }),
  z.object({ type: z.literal('run.log'), ...item, level: z.enum(['info', 'warn', 'error']), message: z.string() }),
  z.object({ type: z.literal('run.finished'), runId: z.string(), status: RunStatusSchema }),
  /** Director → Transporters: stop the run's items at the next safe point. */
  z.object({ type: z.literal('run.cancel'), runId: z.string() }),
  /** Director → Transporters: an instant recovery was asked for, or an action on one (they also poll; this saves the wait). */
  z.object({ type: z.literal('instant-recovery.requested'), id: z.string() }),
  /** Transporter → browsers: an instant recovery's state or detail changed (GET /api/instant-recoveries/:id has the row). */
  z.object({ type: z.literal('instant-recovery.changed'), id: z.string(), state: InstantRecoveryStateSchema }),
]);
export type RunEvent = z.infer<typeof RunEventSchema>;
export type RunEventType = RunEvent['type'];
export type RunEventOf<T extends RunEventType> = Extract<RunEvent, { type: T }>;

/** What the Director emits to the browser over socket.io: the run events as they come, health, and the end of a session. */
export type ServerToClientEvents = { [T in RunEventType]: (event: RunEventOf<T>) => void } & {
  health: (health: HealthResponse) => void;
  'session.ended': (why: { reason: string }) => void;
};
/** The browser sends nothing over the socket (everything it asks goes through the API). */
export type ClientToServerEvents = Record<string, never>;
