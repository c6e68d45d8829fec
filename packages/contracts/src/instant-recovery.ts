import { z } from 'zod';

/**
 * Instant recovery to vSphere: a backed-up VM run on an ESXi host straight from its restore point (served over
 * NFS by a Transporter), later moved to production storage while it runs, or thrown away.
 *
 *  requested → starting → running → migrating → migrated
 *                               ↘ discarding → discarded
 *  any step may end in failed (the Transporter undoes what it had done; `error` says what went wrong and what to do).
 */
export const InstantRecoveryStateSchema = z.enum(['requested', 'starting', 'running', 'migrating', 'migrated', 'discarding', 'discarded', 'failed']);
export type InstantRecoveryState = z.infer<typeof InstantRecoveryStateSchema>;
/** States in which the recovered VM runs from the appliance's export (the two actions apply). */
export const INSTANT_RECOVERY_LIVE_STATES: readonly InstantRecoveryState[] = ['running'];
/** States that are over: nothing of the recovery is left on the host or the Transporter. */
export const INSTANT_RECOVERY_FINAL_STATES: readonly InstantRecoveryState[] = ['migrated', 'discarded', 'failed'];

export const InstantRecoverySchema = z.object({
  id: z.uuid(),
  /** The recovered VM's name in vSphere. */
  name: z.string(),
  restorePointId: z.uuid(),
  /** The backed-up VM's name and the restore point's time. */
  sourceVm: z.string(),
  restorePointTime: z.string(),
  vcenterId: z.uuid(),
  vcenterName: z.string(),
  /** The ESXi host it runs on (name, as the placement list shows it). */
  host: z.string(),
  /** The Transporter that serves the export (null until one took the request). */
  transporterId: z.string().nullable(),
  transporterName: z.string().nullable(),
  state: InstantRecoveryStateSchema,
  /** What is happening now, in words (e.g. "mounting the NFS datastore on esx-01"), or null. */
  detail: z.string().nullable(),
  error: z.string().nullable(),
  /** The NFS datastore the VM runs from while recovered. */
  datastoreName: z.string().nullable(),
  /** The datastore the VM was moved to (migrate). */
  migratedTo: z.string().nullable(),
  powerOn: z.boolean(),
  createdBy: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type InstantRecovery = z.infer<typeof InstantRecoverySchema>;

export const InstantRecoveryCreateSchema = z.object({
  restorePointId: z.uuid(),
  vcenterId: z.uuid(),
  /** Host MoRef, from GET /api/vcenters/:id/placement. */
  host: z.string().trim().min(1),
  /** The VM's name in vSphere; it must not exist there yet. */
  name: z.string().trim().min(1).max(80),
  powerOn: z.boolean().default(true),
  /** Off by default: a recovered copy on the production network may clash with the VM it replaces. */
  connectNics: z.boolean().default(false),
  /** Folder and resource pool MoRefs; default: the host's datacenter VM folder and the host's pool. */
  folder: z.string().trim().min(1).nullable().default(null),
  resourcePool: z.string().trim().min(1).nullable().default(null),
});
export type InstantRecoveryCreate = z.infer<typeof InstantRecoveryCreateSchema>;

export const InstantRecoveryMigrateSchema = z.object({
  /** Datastore MoRef to move the running VM to (Storage vMotion). */
  datastore: z.string().trim().min(1),
});
export type InstantRecoveryMigrate = z.infer<typeof InstantRecoveryMigrateSchema>;
