/**
 * The `restore.run-vm` job: a restore asked for through the Director (full VM,
 * drill, replace, or one disk into an existing VM). The request lives on the
 * run row; progress goes where a backup's does — per-disk RunDisk rows
 * (phase, transport and why, bytes), `disk.progress` events, run-log lines —
 * and the run can be cancelled the same way (checked between writes: the
 * half-created VM is removed and the run ends `cancelled`).
 */
import { randomUUID } from 'node:crypto';
import { openRepository, type Unsealer } from '@vaultline/appliance';
import { isTerminalStatus, RestoreRequestSchema, type BackupVmJob, type RunEvent } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { PermanentError } from '@vaultline/queue';
import { CancelledError, restoreDisk, restoreVm, type CleanupJournal, type RestoreDevices, type TransporterLimits } from '@vaultline/core';
import type { RestoreSession, VCenterRow } from '../sessions.ts';
import { pgRunRecorder } from '../adapters/pg-run-recorder.ts';
import { interruptedAttempt, takeoverMessage } from './takeover.ts';

export interface RestoreHandlerDeps {
  db: Db;
  /** Opens repository secrets (appliance key, or a remote Transporter's own key). */
  unseal: Unsealer;
  transporterId: string;
  /** This Transporter's name, as its run log lines call it (its id when it has none). */
  transporterName?: string;
  journal: CleanupJournal;
  log: Logger;
  publish(e: RunEvent): void;
  devices: RestoreDevices;
  connect(vcenter: VCenterRow): Promise<RestoreSession>;
  isCancelled(runId: string): boolean;
  limits?: TransporterLimits;
}


export function createRestoreVmHandler(deps: RestoreHandlerDeps) {
  const { db } = deps;
  return async function handleRestore(payload: BackupVmJob, ctx: { attempt: number } = { attempt: 1 }): Promise<void> {
    const item = await db.runVm.findUnique({ where: { id: payload.runVmId }, include: { run: true } });
    if (!item) throw new PermanentError(`run item ${payload.runVmId} does not exist`);
    if (isTerminalStatus(item.status)) return;
    const run = item.run;
    const log = deps.log.child({ runId: run.id, runVmId: item.id });
    const rec = pgRunRecorder({ db, publish: deps.publish, log, transporterId: deps.transporterId }, { id: item.id, runId: run.id, kind: 'restore' });
    const runLog = rec.log.bind(rec);
    const finish = (status: Parameters<typeof rec.finish>[0], error: string | null, vmMoref?: string) => rec.finish(status, error, vmMoref ? { vmMoref } : {});
    if (run.cancelRequested || deps.isCancelled(run.id)) {
      runLog('warn', 'cancelled before it started: nothing was created');
      return finish('cancelled', null);
    }
    const parsed = RestoreRequestSchema.safeParse(run.request);
    if (!parsed.success || !parsed.data.vcenterId) {
      const message = `the restore request is not valid: ${parsed.success ? 'no target vCenter' : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
      runLog('error', message);
      return finish('failed', message);
    }
    const request = parsed.data;
    const interrupted = await interruptedAttempt(db, item, 'written');
    await rec.start('preflight');
    if (interrupted) runLog('warn', takeoverMessage(interrupted, { id: deps.transporterId, name: deps.transporterName ?? deps.transporterId }, 'restore'));
    else if (ctx.attempt > 1) runLog('warn', `attempt ${ctx.attempt}: an earlier attempt of this restore failed; what it left was removed; restoring again`);
    const restoreId = randomUUID();
    let session: RestoreSession | null = null;
    let repo: Awaited<ReturnType<typeof openRepository>> | null = null;
    try {
      const point = await db.restorePoint.findUnique({ where: { id: request.restorePointId }, include: { repository: true } });
      if (!point) throw new Error(`restore point ${request.restorePointId} no longer exists`);
      const vc = await db.vCenter.findUnique({ where: { id: request.vcenterId } });
      if (!vc) throw new Error(`vCenter ${request.vcenterId} is no longer registered`);
      repo = await openRepository(point.repository, deps.unseal);
      session = await deps.connect(vc);
      const ref = { vmId: point.vmInstanceUuid, id: point.repoPointId };
      const common = { runLog, phase: (p: string) => rec.phase(p), progress: rec.progress, diskPhase: rec.diskPhase.bind(rec), isCancelled: () => deps.isCancelled(run.id) };
      if (request.disk) {
        runLog('info', `restoring disk ${request.disk.key} of ${point.vmName} (restore point ${point.repoPointId}) as a new disk of ${request.disk.targetVm}`);
        const d = await restoreDisk(
          { repo, ref, diskKey: request.disk.key, targetVm: request.disk.targetVm, runId: run.id, runVmId: item.id, vcenterId: vc.id, ...(request.datastore ? { datastore: request.datastore } : {}) },
          { vsphere: session.port, journal: deps.journal, log, ...common },
        );
        runLog('info', `disk written to ${d.fileName}, SHA-256 ${d.sha256} verified`);
        await finish('succeeded', null, request.disk.targetVm);
        return;
      }
      const what = request.drill ? 'drill: restoring' : request.replace ? 'replacing' : 'restoring';
      runLog('info', `${what} ${request.replace ? `${request.name} with ` : ''}${point.vmName} from restore point ${point.repoPointId}${request.replace ? '' : ` as ${request.name}`} (transport ${request.transport})`);
      const result = await restoreVm(
        {
          repo,
          ref,
          name: request.name,
          restoreId,
          powerOn: request.powerOn,
          vcenterId: vc.id,
          transport: request.transport,
          failoverToNetwork: request.failoverToNetwork,
          drill: request.drill,
          runId: run.id,
          runVmId: item.id,
          ...(request.replace ? { replace: request.replace } : {}),
          placement: {
            host: request.host,
            folder: request.folder,
            resourcePool: request.resourcePool,
            datastore: request.datastore,
            networkMap: request.networkMap,
          },
        },
        { vsphere: session.port, journal: deps.journal, log, devices: deps.devices, proxy: session.facts, ...common, ...(deps.limits ? { limits: deps.limits } : {}) },
      );
      for (const d of result.disks) runLog('info', `disk ${d.key} written to ${d.fileName} over ${d.transport}, SHA-256 ${d.sha256} verified`);
      if (result.replaced) runLog('info', `replaced: ${request.name} is the restored VM (${result.vmMoref}); the original is kept as ${result.replaced.renamedTo} (${result.replaced.moref}), powered off`);
      await finish(result.warnings.length ? 'warning' : 'succeeded', null, request.drill ? undefined : result.vmMoref);
    } catch (err) {
      if (err instanceof CancelledError) {
        runLog('warn', 'cancelled: every attached disk was detached and the half-created VM removed');
        await finish('cancelled', null);
        return;
      }
      const message = (err as Error).message;
      runLog('error', message);
      await finish('failed', message);
    } finally {
      await session?.close().catch(() => undefined);
      await repo?.close().catch(() => undefined);
    }
  };
}
