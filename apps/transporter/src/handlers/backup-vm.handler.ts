/**
 * The `backup.run-vm` job: loads the run item from Postgres (the truth), runs
 * the cycle, and records the outcome — the restore point row and its changeIds
 * only when every disk succeeded. Duplicate deliveries of a finished item are
 * ignored; a cancelled run's items end as cancelled without touching vSphere.
 */
import { isContainerSource, isTerminalStatus, JobOptionsSchema, JobSourceSchema, OneOffBackupSchema, type BackupVmJob, type RunEvent, type TransportMode, type VmSource } from '@vaultline/contracts';
import type { Unsealer } from '@vaultline/appliance';
import { z } from 'zod';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { PermanentError } from '@vaultline/queue';
import { DiskReader, RestorePointWriter, type Repository } from '@vaultline/repository';
import { runVmBackup, type CleanupJournal, type LocalDevices, type TransporterLimits, type VmBackupInput } from '@vaultline/core';
import type { VCenterRow, VSphereSession } from '../sessions.ts';
import { pgRunRecorder } from '../adapters/pg-run-recorder.ts';
import { recordRepositorySample } from '../adapters/repository-samples.ts';
import { checkRoom, openForBackup, previousPoint, recordPoint, retain } from './backup-steps.ts';
import { settleThrown, startItem } from './outcome.ts';

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


const OneOffRequest = z.object({ oneOff: OneOffBackupSchema });

/**
 * What a backup item runs with: its job's settings, or for a one-off backup (a run without a job, POST
 * /api/backups) those its request carries, with the vCenter and repository rows they name. null when the
 * run's job was deleted; a string when a one-off's vCenter or repository is gone.
 */
async function backupSettings(db: Db, run: NonNullable<Awaited<ReturnType<typeof loadItem>>>['run']) {
  if (run.job) return { jobId: run.job.id as string | null, vcenterId: run.job.vcenterId, repositoryId: run.job.repositoryId, vcenter: run.job.vcenter, repository: run.job.repository, transportMode: run.job.transportMode, options: run.job.options };
  const oneOff = OneOffRequest.safeParse(run.request);
  if (!oneOff.success) return null;
  const { vcenterId, repositoryId, transportMode, options } = oneOff.data.oneOff;
  const [vcenter, repository] = await Promise.all([db.vCenter.findUnique({ where: { id: vcenterId } }), db.repository.findUnique({ where: { id: repositoryId } })]);
  if (!vcenter) return 'the vCenter of this one-off backup is no longer registered';
  if (!repository) return 'the repository of this one-off backup was removed';
  return { jobId: null, vcenterId, repositoryId, vcenter, repository, transportMode, options };
}

/** The disks the item's VM source leaves out: its job's VM source (by instance UUID, else moref), or a one-off's VM. */
function excludedDisks(run: NonNullable<Awaited<ReturnType<typeof loadItem>>>['run'], item: { vmMoref: string; vmInstanceUuid: string | null }): number[] {
  const same = (s: VmSource) => (s.instanceUuid && item.vmInstanceUuid ? s.instanceUuid === item.vmInstanceUuid : s.moref === item.vmMoref);
  if (!run.job) return OneOffRequest.safeParse(run.request).data?.oneOff.vm.excludeDisks ?? [];
  const sources = z.array(JobSourceSchema).catch([]).parse(run.job.sources);
  return sources.find((s): s is VmSource => !isContainerSource(s) && same(s))?.excludeDisks ?? [];
}

const loadItem = (db: Db, id: string) => db.runVm.findUnique({ where: { id }, include: { run: { include: { job: { include: { vcenter: true, repository: true } } } } } });

export function createBackupVmHandler(deps: BackupHandlerDeps) {
  const { db } = deps;

  return async function handleBackupVm(payload: BackupVmJob, ctx: { attempt: number }): Promise<void> {
    const item = await loadItem(db, payload.runVmId);
    if (!item) throw new PermanentError(`run item ${payload.runVmId} does not exist`);
    if (isTerminalStatus(item.status)) return;
    const run = item.run;
    const job = await backupSettings(db, run);
    const log = deps.log.child({ runId: run.id, runVmId: item.id, vm: item.vmName });
    const rec = pgRunRecorder({ db, publish: deps.publish, log, transporterId: deps.transporterId }, { id: item.id, runId: run.id, kind: 'backup' });
    if (!job) return rec.finish('failed', 'the job of this run was deleted');
    if (typeof job === 'string') return rec.finish('failed', job);
    if (run.cancelRequested || deps.isCancelled(run.id)) return rec.finish('cancelled', null);
    const attempt = { number: ctx.attempt, of: deps.maxAttempts };
    await startItem(db, rec, item, 'backup', 'preflight', attempt, { id: deps.transporterId, name: deps.transporterName ?? deps.transporterId });

    let repo: Repository | null = null;
    let session: VSphereSession | null = null;
    try {
      repo = await openForBackup(job.repository, deps.unseal);
      await checkRoom(db, job.repository, job.repositoryId, item.vmName);
      session = await deps.connect(job.vcenter);
      const options = JobOptionsSchema.parse(job.options);
      const input: VmBackupInput = {
        runId: run.id,
        runVmId: item.id,
        vcenterId: job.vcenterId,
        vmMoref: item.vmMoref,
        transportMode: job.transportMode as TransportMode,
        options,
        previous: await previousPoint(db, repo, job.repositoryId, item, rec),
        repositoryVmId: (vm) => vm.instanceUuid ?? `${job.vcenterId}-${vm.moref}`,
        excludeDisks: excludedDisks(run, item),
      };
      const result = await runVmBackup(input, {
        vsphere: session.port,
        devices: deps.devices,
        journal: deps.journal,
        repo,
        openWriter: (r, o) => RestorePointWriter.open(r, o),
        openParentReader: (r, ref, key) => DiskReader.open(r, ref, key),
        transporter: { ...session.facts, blockDevices: await deps.devices.canUseBlockDevices() },
        progress: rec.progress,
        log,
        runLog: rec.log,
        phase: rec.phase,
        diskPhase: rec.diskPhase,
        isCancelled: () => deps.isCancelled(run.id),
        maxParallelDisks: deps.maxParallelDisks,
        ...(deps.limits ? { limits: deps.limits } : {}),
      });
      const { anomalous } = await recordPoint(db, rec, { repositoryId: job.repositoryId, runVmId: item.id, vmName: item.vmName }, result);
      let retained = true;
      if (job.jobId) retained = await retain(db, repo, { repositoryId: job.repositoryId, jobId: job.jobId, vmInstanceUuid: result.manifest.vmId }, options.retention, rec.log);
      else {
        rec.log('info', 'A one-off backup: no job\'s retention applies, so this restore point is kept until it is deleted.');
        await recordRepositorySample(db, repo, job.repositoryId).catch((err: unknown) => rec.log('warn', `repository size not sampled: ${(err as Error).message}`));
      }
      await rec.finish(result.warnings.length > 0 || !retained || anomalous ? 'warning' : 'succeeded', null);
    } catch (err) {
      await settleThrown(rec, err, { cancelled: 'cancelled: nothing was committed and everything was cleaned up', attempt });
    } finally {
      await session?.close().catch(() => undefined);
      await repo?.close().catch(() => undefined);
    }
  };
}
