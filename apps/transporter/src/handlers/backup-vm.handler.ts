/**
 * The `backup.run-vm` job: loads the run item from Postgres (the truth), runs
 * the cycle, and records the outcome — the restore point row and its changeIds
 * only when every disk succeeded. Duplicate deliveries of a finished item are
 * ignored; a cancelled run's items end as cancelled without touching vSphere.
 */
import { statfs } from 'node:fs/promises';
import { isTerminalStatus, JobOptionsSchema, type BackupVmJob, type JobOptions, type RunEvent, type TransportMode } from '@vaultline/contracts';
import { applyRetention, openRepository, type Unsealer } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { PermanentError } from '@vaultline/queue';
import { DiskReader, RestorePointWriter, type Repository } from '@vaultline/repository';
import { CancelledError, runVmBackup, VmBackupError, type CleanupJournal, type LocalDevices, type PreviousPoint, type RunRecorder, type TransporterLimits } from '@vaultline/core';
import type { VCenterRow, VSphereSession } from '../sessions.ts';
import { interruptedAttempt, takeoverMessage } from './takeover.ts';
import { retryCanHelp } from './retry.ts';
import { pgRunRecorder } from '../adapters/pg-run-recorder.ts';
import { judgeChangedData } from './ransomware-signal.ts';

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
    const rec = pgRunRecorder({ db, publish: deps.publish, log, transporterId: deps.transporterId }, { id: item.id, runId: run.id, kind: 'backup' });
    const finish = rec.finish.bind(rec);
    const runLog = rec.log.bind(rec);

    if (!job) return finish('failed', 'the job of this run was deleted');
    if (run.cancelRequested || deps.isCancelled(run.id)) return finish('cancelled', null);

    const interrupted = await interruptedAttempt(db, item, 'read');
    await rec.start('preflight');
    if (interrupted) runLog('warn', takeoverMessage(interrupted, { id: deps.transporterId, name: deps.transporterName ?? deps.transporterId }, 'backup'));
    if (ctx.attempt > 1) runLog('info', `attempt ${ctx.attempt} of ${deps.maxAttempts}`);

    let repo: Repository | null = null;
    let session: VSphereSession | null = null;
    try {
      try {
        repo = await openRepository(job.repository, deps.unseal);
      } catch (err) {
        throw new VmBackupError(`repository ${job.repository.name} cannot be opened: ${(err as Error).message}`, retryCanHelp(err));
      }
      await checkRoom(db, job.repository, job.repositoryId, item.vmName);
      session = await deps.connect(job.vcenter);
      const options = JobOptionsSchema.parse(job.options);
      const previous = await previousPoint(db, repo, job.repositoryId, item, rec);
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
          progress: rec.progress,
          log,
          runLog,
          phase: (phase) => rec.phase(phase),
          diskPhase: (key, u) => rec.diskPhase(key, u),
          isCancelled: () => deps.isCancelled(run.id),
          maxParallelDisks: deps.maxParallelDisks,
          ...(deps.limits ? { limits: deps.limits } : {}),
        },
      );
      const m = result.manifest;
      const signal = await judgeChangedData(db, { repositoryId: job.repositoryId, vmInstanceUuid: m.vmId }, m, result.disks).catch((err: unknown) => {
        // The statistics never cost the restore point: the signal is skipped for it, with a warning.
        runLog('warn', `ransomware signal: not evaluated (${(err as Error).message})`);
        return null;
      });
      for (const line of signal?.lines ?? []) runLog(line.level, line.message);
      const ransomwareSuspect = signal?.verdict.anomalous ?? false;
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
          dataStats: (signal?.dataStats ?? []) as object[],
          ransomwareSuspect,
          anomaly: ransomwareSuspect ? signal!.verdict.findings.map((f) => f.message).join('\n') : null,
          immutableUntil: m.lockedUntil ? new Date(m.lockedUntil) : null,
        },
      });
      await db.runVm.update({ where: { id: item.id }, data: { quiesced: result.quiesced } });
      runLog('info', `restore point ${m.id} committed: ${m.disks.length} disk(s), ${m.stats.newStoredBytes} new bytes stored`);
      const retained = await retain(db, repo, { repositoryId: job.repositoryId, jobId: job.id, vmInstanceUuid: m.vmId }, options.retention, runLog);
      await finish(result.warnings.length > 0 || !retained || ransomwareSuspect ? 'warning' : 'succeeded', null);
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
      await rec.retrying(message);
      throw err;
    } finally {
      await session?.close().catch(() => undefined);
      await repo?.close().catch(() => undefined);
    }
  };
}

/** Room for an estimate in a local repository: what the last backup of this VM added, plus a margin. */
async function checkRoom(db: Db, repository: { kind: string; location: string; name: string }, repositoryId: string, vmName: string): Promise<void> {
  if (repository.kind !== 'local') return;
  const st = await statfs(repository.location);
  const free = Number(st.bavail) * Number(st.bsize);
  const lastNew = await db.restorePoint.findFirst({ where: { repositoryId, vmName }, orderBy: { createdAt: 'desc' }, select: { newBytes: true } });
  const estimate = Number(lastNew?.newBytes ?? 0n) + 16 * 1024 * 1024;
  if (free < estimate) {
    throw new VmBackupError(`repository ${repository.name} is full: ${Math.floor(free / 1048576)} MiB free, about ${Math.ceil(estimate / 1048576)} MiB needed`, true);
  }
}

/** The VM's last restore point in this repository, to back up incrementally from; null for a full backup. */
async function previousPoint(db: Db, repo: Repository, repositoryId: string, item: { vmInstanceUuid: string | null; vmName: string }, rec: RunRecorder): Promise<PreviousPoint | null> {
  const last = await db.restorePoint.findFirst({
    where: { repositoryId, ...(item.vmInstanceUuid ? { vmInstanceUuid: item.vmInstanceUuid } : { vmName: item.vmName }) },
    orderBy: { createdAt: 'desc' },
  });
  if (!last) return null;
  const manifest = await repo.readManifest({ vmId: last.vmInstanceUuid, id: last.repoPointId }).catch(() => null);
  if (!manifest) {
    rec.log('warn', `the last restore point ${last.repoPointId} is missing from the repository; taking a full backup`);
    return null;
  }
  return {
    ref: { vmId: manifest.vmId, id: manifest.id },
    changeIds: (last.changeIds ?? {}) as Record<string, string>,
    capacities: Object.fromEntries(manifest.disks.map((d) => [d.key, d.capacity])),
    suspect: last.suspect,
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
    if (r.heldBy.length > 0) {
      const by = r.heldBy.map((h) => `${h.repoPointId} (${h.createdAt.toISOString()})`).join(', ');
      runLog('warn', `retention: held, nothing pruned: ransomware-suspect restore point(s) ${by} of this VM are not released yet`);
      // The policy is not being applied until an operator looks: every backup until then ends as a warning.
      return false;
    }
    if (r.pruned.length > 0) runLog('info', `retention: removed ${r.pruned.length} older restore point(s) (${r.pruned.map((p) => p.repoPointId).join(', ')}); ${r.kept} kept`);
    for (const f of r.failed) runLog('warn', `retention: restore point ${f.repoPointId} could not be removed (${f.error}); retried after the next backup`);
    return r.failed.length === 0;
  } catch (err) {
    runLog('warn', `retention was not applied: ${(err as Error).message}; retried after the next backup`);
    return false;
  }
}
