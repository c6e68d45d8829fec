/**
 * A backup copy job's run (kind `copy`, through the maintenance queue): every restore point of the source
 * repository that the job wants (each VM's newest N, or all) and has not copied yet is copied into the
 * target, oldest first, each incrementally against the VM's newest copy there (copyRestorePoint reads only
 * the chunks that changed since it). Each copy is recorded as a restore point of the target (a restore can
 * use either), with the source point's time, and the job's retention then applies to its copies of the VM.
 * Damaged points and points being pruned are not copied; one VM failing does not stop the others.
 */
import { applyRetention, openRepository, type Unsealer } from '@vaultline/appliance';
import { RetentionSchema, type MaintenanceRequest } from '@vaultline/contracts';
import type { RunRecorder } from '@vaultline/core';
import type { Db } from '@vaultline/db';
import { copyRestorePoint, type Repository } from '@vaultline/repository';
import { recordRepositorySample } from '../adapters/repository-samples.ts';

const MiB = 1024 * 1024;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

type CopyRequest = Extract<MaintenanceRequest, { task: 'copy' }>;

export async function runCopy(deps: { db: Db; unseal: Unsealer }, rec: RunRecorder, item: { id: string; runId: string }, request: CopyRequest): Promise<void> {
  const { db } = deps;
  const log = rec.log.bind(rec);
  const job = await db.copyJob.findUnique({ where: { id: request.copyJobId }, include: { source: true, target: true } });
  if (!job) return rec.finish('failed', 'the copy job was removed');
  await rec.start('copying');
  const retention = RetentionSchema.parse(job.retention);
  let source: Repository | null = null;
  let target: Repository | null = null;
  try {
    // The points are listed before the source's index is read: a backup that ends in between (its packs and
    // index named before its row) must not leave a listed point whose chunks this index does not know.
    const points = await db.restorePoint.findMany({ where: { repositoryId: job.sourceRepositoryId, damaged: false, pruningAt: null }, orderBy: { createdAt: 'asc' } });
    source = await openRepository(job.source, deps.unseal);
    target = await openRepository(job.target, deps.unseal);
    const copies = await db.restorePoint.findMany({ where: { repositoryId: job.targetRepositoryId, copyJobId: job.id }, orderBy: { createdAt: 'asc' } });
    const copied = new Set(copies.flatMap((c) => (c.copyOfId ? [c.copyOfId] : [])));
    const byVm = new Map<string, typeof points>();
    for (const p of points) byVm.set(p.vmInstanceUuid, [...(byVm.get(p.vmInstanceUuid) ?? []), p]);
    log('info', `copying ${job.source.name} → ${job.target.name}: ${byVm.size} VM(s), ${job.newest ? `each VM's newest ${job.newest} restore point(s)` : 'every restore point'}`);

    let done = 0;
    let failed = 0;
    let readTotal = 0;
    let storedTotal = 0;
    for (const [vmId, all] of byVm) {
      const wanted = job.newest ? all.slice(-job.newest) : all;
      const todo = wanted.filter((p) => !copied.has(p.id));
      const name = all[all.length - 1]!.vmName;
      if (todo.length === 0) continue;
      await rec.phase('copying', `${name}: ${todo.length} restore point(s)`);
      // This VM's copies (read once above; each new one is added as it is made) and its points in the source by row id.
      const mine = copies.filter((c) => c.vmInstanceUuid === vmId && c.copyOfId !== null).map((c) => ({ copyOfId: c.copyOfId!, repoPointId: c.repoPointId, createdAt: c.createdAt }));
      const sources = new Map(all.map((s) => [s.id, s]));
      try {
        for (const p of todo) {
          if ((await db.jobRun.findUnique({ where: { id: item.runId }, select: { cancelRequested: true } }))?.cancelRequested) throw new CopyCancelled();
          // The base: the VM's newest copy in the target whose source point is still in the source repository.
          const baseCopy = mine.filter((c) => sources.has(c.copyOfId)).reduce<(typeof mine)[number] | null>((a, c) => (a && a.createdAt >= c.createdAt ? a : c), null);
          const base = baseCopy ? { source: { vmId, id: sources.get(baseCopy.copyOfId)!.repoPointId }, target: { vmId, id: baseCopy.repoPointId } } : null;
          const lockedUntil = retention.immutableDays > 0 ? new Date(Date.now() + retention.immutableDays * 86_400_000) : null;
          const r = await copyRestorePoint(source, target, { vmId, id: p.repoPointId }, { base, lockedUntil });
          await db.restorePoint.create({
            data: {
              repositoryId: job.targetRepositoryId,
              repoPointId: r.manifest.id,
              runVmId: item.id,
              vmInstanceUuid: vmId,
              vmName: p.vmName,
              createdAt: p.createdAt,
              logicalBytes: p.logicalBytes,
              newBytes: BigInt(r.stats.newStoredBytes),
              suspect: p.suspect,
              dataStats: p.dataStats as object[],
              immutableUntil: lockedUntil,
              copyOfId: p.id,
              copyJobId: job.id,
            },
          });
          mine.push({ copyOfId: p.id, repoPointId: r.manifest.id, createdAt: p.createdAt });
          done += 1;
          readTotal += r.readBytes;
          storedTotal += r.stats.newStoredBytes;
          log('info', `${name}: restore point of ${p.createdAt.toISOString()} copied (${r.incremental ? 'incremental' : 'full'}): read ${mib(r.readBytes)} of its ${mib(r.dataBytes)}, ${mib(r.stats.newStoredBytes)} new in ${job.target.name}`);
        }
        const outcome = await applyRetention(db, target, { repositoryId: job.targetRepositoryId, copyJobId: job.id, vmInstanceUuid: vmId }, retention);
        if (outcome.pruned.length > 0) log('info', `${name}: retention removed ${outcome.pruned.length} older copy(ies); ${outcome.kept} kept`);
        for (const f of outcome.failed) log('warn', `${name}: retention could not remove copy ${f.repoPointId} (${f.error}); retried after the next copy`);
      } catch (err) {
        if (err instanceof CopyCancelled) throw err;
        failed += 1;
        log('error', `${name}: copy failed: ${(err as Error).message}`);
      }
    }
    await recordRepositorySample(db, target, job.targetRepositoryId).catch((err: unknown) => log('warn', `repository size not sampled: ${(err as Error).message}`));
    log('info', `${done} restore point(s) copied: ${mib(readTotal)} read from ${job.source.name}, ${mib(storedTotal)} stored anew in ${job.target.name}${failed ? `; ${failed} VM(s) failed` : ''}`);
    if (failed) return await rec.finish(done > 0 ? 'warning' : 'failed', `${failed} VM(s) could not be copied`);
    return await rec.finish('succeeded', null);
  } catch (err) {
    if (err instanceof CopyCancelled) {
      log('warn', 'cancelled: the copies made so far are kept, the one under way left nothing');
      return await rec.finish('cancelled', 'cancelled by an operator');
    }
    const message = `copy of ${job.source.name} into ${job.target.name} failed: ${(err as Error).message}`;
    log('error', message);
    await rec.finish('failed', message);
  } finally {
    await source?.close().catch(() => undefined);
    await target?.close().catch(() => undefined);
  }
}

class CopyCancelled extends Error {
  constructor() {
    super('cancelled');
  }
}
