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
import { isTerminalStatus, type BackupVmJob, type RunEvent } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { PermanentError } from '@vaultline/queue';
import { restoreDisk, restoreVm, type CleanupJournal, type RestoreDevices, type TransporterLimits } from '@vaultline/core';
import type { Repository } from '@vaultline/repository';
import type { RestoreSession, VCenterRow } from '../sessions.ts';
import { pgRunRecorder } from '../adapters/pg-run-recorder.ts';
import { settleThrown, startItem } from './outcome.ts';
import { readRestoreRequest, restoreVmDone, restoreVmInput, restoreVmStarting } from './restore-request.ts';
import { runKvmRestore } from './restore-kvm.ts';

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
  /** Where restores onto KVM/Proxmox are written (VAULTLINE_KVM_EXPORT_DIR); each into a folder of its own. */
  kvmExportDir: string;
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
    if (run.cancelRequested || deps.isCancelled(run.id)) {
      rec.log('warn', 'cancelled before it started: nothing was created');
      return rec.finish('cancelled', null);
    }
    const read = readRestoreRequest(run.request);
    if ('problem' in read) {
      rec.log('error', read.problem);
      return rec.finish('failed', read.problem);
    }
    if ('kvm' in read) {
      const request = read.kvm;
      await startItem(db, rec, item, 'restore', 'preflight', { number: ctx.attempt }, { id: deps.transporterId, name: deps.transporterName ?? deps.transporterId });
      let repo: Repository | null = null;
      try {
        const point = await db.restorePoint.findUnique({ where: { id: request.restorePointId }, include: { repository: true } });
        if (!point) throw new Error(`restore point ${request.restorePointId} no longer exists`);
        repo = await openRepository(point.repository, deps.unseal);
        await runKvmRestore(rec, { repo, ref: { vmId: point.vmInstanceUuid, id: point.repoPointId }, request, exportDir: deps.kvmExportDir, isCancelled: () => deps.isCancelled(run.id) });
      } catch (err) {
        await settleThrown(rec, err, { cancelled: 'cancelled: the folder was left empty' });
      } finally {
        await repo?.close().catch(() => undefined);
      }
      return;
    }
    const { request } = read;
    await startItem(db, rec, item, 'restore', 'preflight', { number: ctx.attempt }, { id: deps.transporterId, name: deps.transporterName ?? deps.transporterId });
    let session: RestoreSession | null = null;
    let repo: Repository | null = null;
    try {
      const point = await db.restorePoint.findUnique({ where: { id: request.restorePointId }, include: { repository: true } });
      if (!point) throw new Error(`restore point ${request.restorePointId} no longer exists`);
      const vc = await db.vCenter.findUnique({ where: { id: request.vcenterId } });
      if (!vc) throw new Error(`vCenter ${request.vcenterId} is no longer registered`);
      repo = await openRepository(point.repository, deps.unseal);
      session = await deps.connect(vc);
      const base = { repo, ref: { vmId: point.vmInstanceUuid, id: point.repoPointId }, vcenterId: vc.id, runId: run.id, runVmId: item.id };
      const common = { vsphere: session.port, journal: deps.journal, log, runLog: rec.log, phase: rec.phase, progress: rec.progress, diskPhase: rec.diskPhase, isCancelled: () => deps.isCancelled(run.id) };
      if (request.disk) {
        rec.log('info', `restoring disk ${request.disk.key} of ${point.vmName} (restore point ${point.repoPointId}) as a new disk of ${request.disk.targetVm}`);
        const d = await restoreDisk({ ...base, diskKey: request.disk.key, targetVm: request.disk.targetVm, ...(request.datastore ? { datastore: request.datastore } : {}) }, common);
        rec.log('info', `disk written to ${d.fileName}, SHA-256 ${d.sha256} verified`);
        return await rec.finish('succeeded', null, { vmMoref: request.disk.targetVm });
      }
      rec.log('info', restoreVmStarting(request, point));
      const result = await restoreVm(restoreVmInput(request, { ...base, restoreId: randomUUID() }), { ...common, devices: deps.devices, proxy: session.facts, ...(deps.limits ? { limits: deps.limits } : {}) });
      for (const line of restoreVmDone(request, result)) rec.log('info', line);
      await rec.finish(result.warnings.length ? 'warning' : 'succeeded', null, request.drill ? {} : { vmMoref: result.vmMoref });
    } catch (err) {
      await settleThrown(rec, err, { cancelled: 'cancelled: every attached disk was detached and the half-created VM removed' });
    } finally {
      await session?.close().catch(() => undefined);
      await repo?.close().catch(() => undefined);
    }
  };
}
