/**
 * Instant recoveries as the Director sees them: rows it creates in `requested` and actions it records as
 * `pendingAction`; a Transporter that serves NFS (VAULTLINE_NFS_ADDRESS) claims the rows and carries them out
 * (apps/transporter/src/instant). The Director never talks to the export or the host itself.
 */
import {
  INSTANT_RECOVERY_FINAL_STATES,
  type InstantRecovery,
  type InstantRecoveryCreate,
  type InstantRecoveryState,
  type TransporterStatus,
} from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { AppError } from '../errors.ts';

type Row = NonNullable<Awaited<ReturnType<Db['instantRecovery']['findUnique']>>> & { vcenter: { name: string } };

/** What the console shows when no Transporter can serve: the setting that turns it on, and where. */
export const NO_INSTANT_TRANSPORTER =
  'no online Transporter offers instant recovery: set VAULTLINE_NFS_ADDRESS (the address ESXi hosts reach it at) on a Transporter the ESXi hosts can reach over NFS (TCP 2049 and 111), restart it, and try again';

export function instantRecoveryDto(row: Row, transporterNames: ReadonlyMap<string, string>): InstantRecovery {
  return {
    id: row.id,
    name: row.name,
    restorePointId: row.restorePointRef,
    sourceVm: row.sourceVm,
    restorePointTime: row.restorePointTime.toISOString(),
    vcenterId: row.vcenterId,
    vcenterName: row.vcenter.name,
    host: row.hostName,
    transporterId: row.transporterId,
    transporterName: row.transporterId ? (transporterNames.get(row.transporterId) ?? row.transporterId) : null,
    state: row.state as InstantRecoveryState,
    detail: row.detail,
    error: row.error,
    datastoreName: row.datastoreName,
    migratedTo: row.migratedTo,
    powerOn: row.powerOn,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Newest first; `id` for one. */
export async function listInstantRecoveries(db: Db, where: { id?: string } = {}): Promise<InstantRecovery[]> {
  const rows = await db.instantRecovery.findMany({ where, orderBy: { createdAt: 'desc' }, include: { vcenter: { select: { name: true } } } });
  const ids = [...new Set(rows.flatMap((r) => (r.transporterId ? [r.transporterId] : [])))];
  const names = new Map((await db.transporter.findMany({ where: { id: { in: ids } }, select: { id: true, name: true } })).map((t) => [t.id, t.name]));
  return rows.map((r) => instantRecoveryDto(r, names));
}

export async function getInstantRecovery(db: Db, id: string): Promise<InstantRecovery> {
  const [row] = await listInstantRecoveries(db, { id });
  if (!row) throw new AppError('not_found', 'no such instant recovery');
  return row;
}

/**
 * The request as a row in `requested`, after the checks that need no vCenter: the restore point and vCenter exist,
 * a Transporter is online to serve it, and no unfinished recovery has the name. The Transporter checks the name
 * against vSphere and the placement before it creates anything.
 */
export async function createInstantRecovery(db: Db, transporters: TransporterStatus[], body: InstantRecoveryCreate, createdBy: string): Promise<{ id: string; sourceVm: string }> {
  const point = await db.restorePoint.findUnique({ where: { id: body.restorePointId } });
  if (!point) throw new AppError('not_found', 'no such restore point');
  if (point.pruningAt) throw new AppError('conflict', `the restore point of ${point.vmName} taken ${point.createdAt.toISOString()} is being deleted by retention`);
  const vc = await db.vCenter.findUnique({ where: { id: body.vcenterId } });
  if (!vc) throw new AppError('not_found', 'no such vCenter');
  if (!transporters.some((t) => t.online && t.capabilities.instantRecovery)) throw new AppError('conflict', NO_INSTANT_TRANSPORTER);
  // One request at a time decides on the name, so two concurrent requests for it cannot both pass.
  const id = await db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('instant_recoveries.name'))`;
    const taken = await tx.instantRecovery.findFirst({ where: { name: body.name, state: { notIn: [...INSTANT_RECOVERY_FINAL_STATES] } }, select: { state: true } });
    if (taken) throw new AppError('conflict', `an instant recovery named ${body.name} is already ${taken.state}; choose another name, or discard that one first`, [{ path: 'name', message: 'in use' }]);
    const row = await tx.instantRecovery.create({
      data: {
        name: body.name,
        restorePointId: point.id,
        restorePointRef: point.id,
        sourceVm: point.vmName,
        restorePointTime: point.createdAt,
        vcenterId: vc.id,
        hostMoref: body.host,
        // The Transporter replaces it with the host's name once it has read the inventory.
        hostName: body.host,
        folder: body.folder,
        resourcePool: body.resourcePool,
        powerOn: body.powerOn,
        connectNics: body.connectNics,
        createdBy,
      },
    });
    return row.id;
  });
  return { id, sourceVm: point.vmName };
}

/**
 * Records an action for the Transporter serving the recovery: only while it runs and nothing else is pending, in
 * one conditional update so a second click (or a racing one) is refused rather than queued.
 */
export async function requestInstantAction(db: Db, id: string, action: { kind: 'migrate'; datastore: string } | { kind: 'discard' }): Promise<InstantRecovery> {
  const done = await db.instantRecovery.updateMany({
    where: { id, state: 'running', pendingAction: null },
    data: { pendingAction: action.kind, pendingDatastore: action.kind === 'migrate' ? action.datastore : null, error: null },
  });
  const row = await getInstantRecovery(db, id);
  if (done.count === 0) {
    const why = row.state === 'running' ? 'another action on it is pending' : `it is ${row.state}`;
    throw new AppError('conflict', `instant recovery ${row.name} cannot be ${action.kind === 'migrate' ? 'migrated' : 'discarded'} now: ${why} (only a running recovery can)`);
  }
  return row;
}
