/**
 * The `backup.run-vm` job: loads the run item from Postgres (the truth), runs
 * the cycle, and records the outcome — the restore point row and its changeIds
 * only when every disk succeeded. Duplicate deliveries of a finished item are
 * ignored; a cancelled run's items end as cancelled without touching vSphere.
 */
import { statfs } from 'node:fs/promises';
import { isTerminalStatus, JobOptionsSchema, settledRunStatus, type BackupVmJob, type JobOptions, type RunEvent, type RunStatus, type TransportMode } from '@vaultline/contracts';
import { applyRetention, openRepository, type Unsealer } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { PermanentError } from '@vaultline/queue';
import { DiskReader, RestorePointWriter, type Repository } from '@vaultline/repository';
import { CancelledError, runVmBackup, VmBackupError, type CleanupJournal, type LocalDevices, type PreviousPoint, type TransporterLimits } from '@vaultline/core';
import type { VCenterRow, VSphereSession } from '../sessions.ts';
import { interruptedAttempt, takeoverMessage } from './takeover.ts';
import { retryCanHelp } from './retry.ts';
import { runDiskRows } from './run-disk-rows.ts';

export interface BackupHandlerDeps {
  db: Db;
  /** Opens repository secrets (appliance key, or a remote Transporter's own key). */
  unseal: Unsealer;
  transporterId: string;
  /** This Transporter's name, as its run log lines call it (its id when it has none). */
  transporterName?: string;
  log: Logger;
  journal: CleanupJournal;
  devices: LocalDevices;
  connect(vcenter: VCenterRow): Promise<VSphereSession>;
  publish(event: RunEvent): void;
  isCancelled(runId: string): boolean;
  maxParallelDisks: number;
  maxAttempts: number;
  limits?: TransporterLimits;
}


export function createBackupVmHandler(deps: BackupHandlerDeps) {
  const { db } = deps;

  const appendLog = async (runVmId: string, level: string, message: string) => {
    const entry = JSON.stringify([{ at: new Date().toISOString(), level, message }]);
    await db.$executeRaw`UPDATE run_vms SET log = log || ${entry}::jsonb WHERE id = ${runVmId}::uuid`;
  };

  /** A run is finished when none of its items is queued or running. */
  const finaliseRun = async (runId: string) => {
    const status = settledRunStatus((await db.runVm.findMany({ where: { runId }, select: { status: true } })).map((i) => i.status));
    if (!status) return;
    await db.jobRun.update({ where: { id: runId }, data: { status, finishedAt: new Date() } });
    deps.publish({ type: 'run.finished', runId, status });
  };

  return async function handleBackupVm(payload: BackupVmJob, ctx: { attempt: number }): Promise<void> {
    const item = await db.runVm.findUnique({
      where: { id: payload.runVmId },
      include: { run: { include: { job: { include: { vcenter: true, repository: true } } } } },
    });
    if (!item) throw new PermanentError(`run item ${payload.runVmId} does not exist`);
    if (isTerminalStatus(item.status)) return;
    const run = item.run;
    const job = run.job;
    const log = deps.log.child({ runId: run.id, runVmId: item.id, vm: item.vmName });
    // Log lines are appended one after the other (in order), and all of them before the item is finished.
    let logWrites: Promise<unknown> = Promise.resolve();
    const runLog = (level: 'info' | 'warn' | 'error', message: string) => {
      log[level](message);
      logWrites = logWrites.then(() => appendLog(item.id, level, message)).catch(() => undefined);
      deps.publish({ type: 'run.log', runId: run.id, runVmId: item.id, level, message });
    };
    const finish = async (status: RunStatus, error: string | null) => {
      await logWrites;
      await db.runVm.update({ where: { id: item.id }, data: { status, error, phase: status, finishedAt: new Date() } });
      deps.publish({ type: 'vm.finished', runId: run.id, runVmId: item.id, status, error });
      await finaliseRun(run.id);
    };

    if (!job) return finish('failed', 'the job of this run was deleted');
    if (run.cancelRequested || deps.isCancelled(run.id)) return finish('cancelled', null);

    await db.jobRun.updateMany({ where: { id: run.id, startedAt: null }, data: { startedAt: new Date(), status: 'running' } });
    const interrupted = await interruptedAttempt(db, item, 'read');
    await db.runVm.update({ where: { id: item.id }, data: { status: 'running', phase: 'preflight', transporterId: deps.transporterId, transporterLostAt: null, startedAt: new Date(), error: null } });
    if (interrupted) runLog('warn', takeoverMessage(interrupted, { id: deps.transporterId, name: deps.transporterName ?? deps.transporterId }, 'backup'));
    if (ctx.attempt > 1) runLog('info', `attempt ${ctx.attempt} of ${deps.maxAttempts}`);

    let repo: Repository | null = null;
    let session: VSphereSession | null = null;
    const rows = runDiskRows(db, item.id, deps.publish);
    try {
      try {
        repo = await openRepository(job.repository, deps.unseal);
      } catch (err) {
        throw new VmBackupError(`repository ${job.repository.name} cannot be opened: ${(err as Error).message}`, retryCanHelp(err));
      }
      // Room for an estimate: what the last backup of this VM added, plus a margin.
      if (job.repository.kind === 'local') {
        const st = await statfs(job.repository.location);
        const free = Number(st.bavail) * Number(st.bsize);
        const lastNew = await db.restorePoint.findFirst({ where: { repositoryId: job.repositoryId, vmName: item.vmName }, orderBy: { createdAt: 'desc' }, select: { newBytes: true } });
        const estimate = Number(lastNew?.newBytes ?? 0n) + 16 * 1024 * 1024;
        if (free < estimate) {
          throw new VmBackupError(`repository ${job.repository.name} is full: ${Math.floor(free / 1048576)} MiB free, about ${Math.ceil(estimate / 1048576)} MiB needed`, true);
        }
      }
      session = await deps.connect(job.vcenter);
      const options = JobOptionsSchema.parse(job.options);
      const instanceUuid = item.vmInstanceUuid;
      const last = await db.restorePoint.findFirst({
        where: { repositoryId: job.repositoryId, ...(instanceUuid ? { vmInstanceUuid: instanceUuid } : { vmName: item.vmName }) },
        orderBy: { createdAt: 'desc' },
      });
      let previous: PreviousPoint | null = null;
      if (last) {
        const manifest = await repo.readManifest({ vmId: last.vmInstanceUuid, id: last.repoPointId }).catch(() => null);
        if (manifest) {
          previous = {
            ref: { vmId: manifest.vmId, id: manifest.id },
            changeIds: (last.changeIds ?? {}) as Record<string, string>,
            capacities: Object.fromEntries(manifest.disks.map((d) => [d.key, d.capacity])),
            suspect: last.suspect,
          };
        } else {
          runLog('warn', `the last restore point ${last.repoPointId} is missing from the repository; taking a full backup`);
        }
      }
      const blockDevices = await deps.devices.canUseBlockDevices();
      const result = await runVmBackup(
        {
          runId: run.id,
          runVmId: item.id,
          vcenterId: job.vcenterId,
          vmMoref: item.vmMoref,
          transportMode: job.transportMode as TransportMode,
          options,
          previous,
          repositoryVmId: (vm) => vm.instanceUuid ?? `${job.vcenterId}-${vm.moref}`,
        },
        {
          vsphere: session.port,
          devices: deps.devices,
          journal: deps.journal,
          repo,
          openWriter: (r, o) => RestorePointWriter.open(r, o),
          openParentReader: (r, ref, key) => DiskReader.open(r, ref, key),
          transporter: { ...session.facts, blockDevices },
          progress: rows.progress,
          log,
          runLog,
          phase: async (phase) => {
            await db.runVm.update({ where: { id: item.id }, data: { phase } });
            deps.publish({ type: 'vm.phase', runId: run.id, runVmId: item.id, phase });
          },
          diskPhase: rows.diskPhase,
          isCancelled: () => deps.isCancelled(run.id),
          maxParallelDisks: deps.maxParallelDisks,
          ...(deps.limits ? { limits: deps.limits } : {}),
        },
      );
      const m = result.manifest;
      await db.restorePoint.create({
        data: {
          repositoryId: job.repositoryId,
          repoPointId: m.id,
          runVmId: item.id,
          vmInstanceUuid: m.vmId,
          vmName: item.vmName,
          createdAt: new Date(m.createdAt),
          logicalBytes: BigInt(m.disks.reduce((n, d) => n + d.capacity, 0)),
          newBytes: BigInt(m.stats.newStoredBytes),
          changeIds: result.changeIds,
          suspect: result.suspect,
          immutableUntil: m.lockedUntil ? new Date(m.lockedUntil) : null,
        },
      });
      await db.runVm.update({ where: { id: item.id }, data: { quiesced: result.quiesced } });
      runLog('info', `restore point ${m.id} committed: ${m.disks.length} disk(s), ${m.stats.newStoredBytes} new bytes stored`);
      const retained = await retain(db, repo, { repositoryId: job.repositoryId, jobId: job.id, vmInstanceUuid: m.vmId }, options.retention, runLog);
      await finish(result.warnings.length > 0 || !retained ? 'warning' : 'succeeded', null);
    } catch (err) {
      if (err instanceof CancelledError) {
        runLog('warn', 'cancelled: nothing was committed and everything was cleaned up');
        await finish('cancelled', null);
        return;
      }
      const message = (err as Error).message;
      const permanent = !retryCanHelp(err);
      if (permanent || ctx.attempt >= deps.maxAttempts) {
        runLog('error', message);
        await finish('failed', message);
        if (permanent) throw new PermanentError(message);
        return;
      }
      runLog('warn', `attempt ${ctx.attempt} failed: ${message}; will retry`);
      await logWrites;
      await db.runVm.update({ where: { id: item.id }, data: { phase: 'retrying', error: message } });
      throw err;
    } finally {
      await session?.close().catch(() => undefined);
      await repo?.close().catch(() => undefined);
    }
  };
}

/**
 * The job's retention for this VM, once its new restore point is safe. A
 * failure here never undoes the backup; it is a warning, retried next time.
 */
async function retain(db: Db, repo: Repository, scope: Parameters<typeof applyRetention>[2], policy: JobOptions['retention'], runLog: (level: 'info' | 'warn', m: string) => void): Promise<boolean> {
  const { keepLast, keepDaily, keepWeekly, keepMonthly, keepYearly } = policy;
  try {
    const r = await applyRetention(db, repo, scope, { keepLast, keepDaily, keepWeekly, keepMonthly, keepYearly });
    if (r.pruned.length > 0) runLog('info', `retention: removed ${r.pruned.length} older restore point(s) (${r.pruned.map((p) => p.repoPointId).join(', ')}); ${r.kept} kept`);
    for (const f of r.failed) runLog('warn', `retention: restore point ${f.repoPointId} could not be removed (${f.error}); retried after the next backup`);
    return r.failed.length === 0;
  } catch (err) {
    runLog('warn', `retention was not applied: ${(err as Error).message}; retried after the next backup`);
    return false;
  }
}
