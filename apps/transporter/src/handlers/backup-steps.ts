/**
 * The steps of a VM's backup around the engine's cycle (packages/core runVmBackup), each against
 * PostgreSQL and the repository: opening the repository, room in it, the point to back up incrementally
 * from, recording the committed point (with the ransomware signal's verdict), and the job's retention.
 */
import { statfs } from 'node:fs/promises';
import { applyRetention, openRepository, type RepositoryRow, type Unsealer } from '@vaultline/appliance';
import type { JobOptions } from '@vaultline/contracts';
import { mib, VmBackupError, type PreviousPoint, type RunRecorder, type VmBackupResult } from '@vaultline/core';
import type { Db } from '@vaultline/db';
import type { Repository } from '@vaultline/repository';
import { recordRepositorySample } from '../adapters/repository-samples.ts';
import { judgeChangedData } from './ransomware-signal.ts';
import { retryCanHelp } from './retry.ts';

/** The job's repository, or a VmBackupError saying why not (retried when another attempt could open it). */
export async function openForBackup(row: RepositoryRow & { name: string }, unseal: Unsealer): Promise<Repository> {
  try {
    return await openRepository(row, unseal);
  } catch (err) {
    throw new VmBackupError(`repository ${row.name} cannot be opened: ${(err as Error).message}`, retryCanHelp(err));
  }
}

/**
 * The committed point's row (and the item's quiesce flag), with its new data's statistics and the
 * ransomware signal's verdict against the VM's recent points; the signal failing never costs the point.
 */
export async function recordPoint(db: Db, rec: RunRecorder, item: { repositoryId: string; runVmId: string; vmName: string }, result: VmBackupResult): Promise<{ anomalous: boolean }> {
  const m = result.manifest;
  const signal = await judgeChangedData(db, { repositoryId: item.repositoryId, vmInstanceUuid: m.vmId }, m, result.disks).catch((err: unknown) => {
    rec.log('warn', `ransomware signal: not evaluated (${(err as Error).message})`);
    return null;
  });
  for (const line of signal?.lines ?? []) rec.log(line.level, line.message);
  const anomalous = signal?.verdict.anomalous ?? false;
  await db.restorePoint.create({
    data: {
      repositoryId: item.repositoryId,
      repoPointId: m.id,
      runVmId: item.runVmId,
      vmInstanceUuid: m.vmId,
      vmName: item.vmName,
      createdAt: new Date(m.createdAt),
      logicalBytes: BigInt(m.disks.reduce((n, d) => n + d.capacity, 0)),
      newBytes: BigInt(m.stats.newStoredBytes),
      changeIds: result.changeIds,
      suspect: result.suspect,
      dataStats: (signal?.dataStats ?? []) as object[],
      ransomwareSuspect: anomalous,
      anomaly: anomalous ? signal!.verdict.findings.map((f) => f.message).join('\n') : null,
      immutableUntil: m.lockedUntil ? new Date(m.lockedUntil) : null,
    },
  });
  await db.runVm.update({ where: { id: item.runVmId }, data: { quiesced: result.quiesced } });
  rec.log('info', `restore point ${m.id} committed: ${m.disks.length} disk(s), ${mib(m.stats.newStoredBytes)} of new data stored`);
  return { anomalous };
}

/** Room for an estimate in a local repository: what the last backup of this VM added, plus a margin. */
export async function checkRoom(db: Db, repository: { kind: string; location: string; name: string }, repositoryId: string, vmName: string): Promise<void> {
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
export async function previousPoint(db: Db, repo: Repository, repositoryId: string, item: { vmInstanceUuid: string | null; vmName: string }, rec: RunRecorder): Promise<PreviousPoint | null> {
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
export async function retain(db: Db, repo: Repository, scope: Parameters<typeof applyRetention>[2], policy: JobOptions['retention'], runLog: (level: 'info' | 'warn', m: string) => void): Promise<boolean> {
  try {
    return await applyPolicy(db, repo, scope, policy, runLog);
  } finally {
    // The repository's size after the new point and what retention removed, for the capacity chart.
    await recordRepositorySample(db, repo, scope.repositoryId).catch((err: unknown) => runLog('warn', `repository size not sampled: ${(err as Error).message}`));
  }
}

async function applyPolicy(db: Db, repo: Repository, scope: Parameters<typeof applyRetention>[2], policy: JobOptions['retention'], runLog: (level: 'info' | 'warn', m: string) => void): Promise<boolean> {
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
