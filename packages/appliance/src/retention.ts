/**
 * Retention of one backup job's restore points of one VM, applied after each
 * successful backup (or of one copy job's copies, after each copy): the job's GFS policy decides, immutable points are always
 * kept, and only points this job made are candidates (another job's points of
 * the same VM follow that job's policy; points of a deleted job stay until an
 * operator deletes them).
 *
 * Order of durable steps, so a crash anywhere loses nothing that should stay:
 *   1. the row is marked `pruningAt` (the decision);
 *   2. the repository deletes the restore point (its manifest first, so it is
 *      never half visible), under a shared lock that GC respects;
 *   3. the row is deleted.
 * A crash after 1 or 2 leaves a marked row; the next run finishes it. A point
 * that turned out to be immutable has its mark cleared and is kept.
 *
 * A restore point of the VM in this repository that the ransomware signal marked, and whose hold no
 * operator has released yet, holds retention: nothing of the VM there is pruned (not even a decision a crash
 * interrupted), so the points from before the encryption stay restorable however many backups follow.
 *
 * A restore point an unfinished instant recovery runs from is kept like an immutable one: the recovered VM reads
 * its disks from it until it is migrated or discarded. The check is made again after the decision is recorded,
 * so a recovery requested between the two keeps its point (the Director refuses points being pruned).
 */
import { INSTANT_RECOVERY_FINAL_STATES } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { deleteRestorePoint, planRetention, RepositoryError, type Repository, type RetentionPolicy } from '@vaultline/repository';

/** Whose points: a backup job's (`jobId`: the points its runs made) or a copy job's (`copyJobId`: the copies it made). */
export type RetentionScope = { repositoryId: string; vmInstanceUuid: string } & ({ jobId: string; copyJobId?: undefined } | { copyJobId: string; jobId?: undefined });

export interface RetentionOutcome {
  kept: number;
  pruned: { repoPointId: string; createdAt: Date }[];
  /** Points retention chose but could not delete yet (retried at the next backup). */
  failed: { repoPointId: string; error: string }[];
  /** The unreleased ransomware-suspect points holding retention of this VM (nothing was pruned), oldest first. */
  heldBy: { repoPointId: string; createdAt: Date }[];
}

/** Kept by an instant recovery: no end the planner could reach. */
const FOREVER = new Date(8.64e15);

/** Which of these restore points an unfinished instant recovery runs from. */
export async function servedPoints(db: Db, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const live = await db.instantRecovery.findMany({ where: { restorePointId: { in: ids }, state: { notIn: [...INSTANT_RECOVERY_FINAL_STATES] } }, select: { restorePointId: true } });
  return new Set(live.flatMap((r) => (r.restorePointId ? [r.restorePointId] : [])));
}

export async function applyRetention(db: Db, repo: Repository, scope: RetentionScope, policy: RetentionPolicy, now = new Date()): Promise<RetentionOutcome> {
  const rows = await db.restorePoint.findMany({ where: { repositoryId: scope.repositoryId, vmInstanceUuid: scope.vmInstanceUuid }, orderBy: { createdAt: 'asc' } });
  const holds = rows.filter((r) => r.ransomwareSuspect && !r.holdReleasedAt);
  if (holds.length > 0) return { kept: rows.length, pruned: [], failed: [], heldBy: holds.map((r) => ({ repoPointId: r.repoPointId, createdAt: r.createdAt })) };
  let candidates: typeof rows;
  if (scope.copyJobId) candidates = rows.filter((r) => r.copyJobId === scope.copyJobId);
  else {
    const runVmIds = rows.flatMap((r) => (r.runVmId ? [r.runVmId] : []));
    const ours = new Set(
      (await db.runVm.findMany({ where: { id: { in: runVmIds }, run: { jobId: scope.jobId } }, select: { id: true } })).map((v) => v.id),
    );
    candidates = rows.filter((r) => r.runVmId && ours.has(r.runVmId));
  }
  const served = await servedPoints(db, candidates.map((r) => r.id));
  const plan = planRetention(
    candidates.filter((r) => !r.pruningAt).map((r) => ({ id: r.id, time: r.createdAt, lockedUntil: served.has(r.id) ? FOREVER : r.immutableUntil, row: r })),
    policy,
    now,
  );
  // Earlier decisions that a crash interrupted are carried out too.
  const doomed = [...candidates.filter((r) => r.pruningAt && !served.has(r.id)), ...plan.prune.map((p) => p.row)];
  const outcome: RetentionOutcome = { kept: plan.keep.length, pruned: [], failed: [], heldBy: [] };
  if (doomed.length === 0) return outcome;

  const lock = await repo.locks.acquire('shared', 'retention');
  try {
    for (const row of doomed) {
      if (!row.pruningAt) await db.restorePoint.update({ where: { id: row.id }, data: { pruningAt: now } });
      if ((await servedPoints(db, [row.id])).size > 0) {
        await db.restorePoint.update({ where: { id: row.id }, data: { pruningAt: null } });
        outcome.kept += 1;
        continue;
      }
      try {
        await deleteRestorePoint(repo, { vmId: row.vmInstanceUuid, id: row.repoPointId });
      } catch (err) {
        if (err instanceof RepositoryError && err.code === 'IMMUTABLE') {
          // The repository's own lock date wins over the row's.
          await db.restorePoint.update({ where: { id: row.id }, data: { pruningAt: null } });
          outcome.kept += 1;
          continue;
        }
        if (!(err instanceof RepositoryError && err.code === 'NOT_FOUND')) {
          outcome.failed.push({ repoPointId: row.repoPointId, error: (err as Error).message });
          continue;
        }
        // Already gone from the repository (a crash after step 2): finish step 3.
      }
      await db.restorePoint.delete({ where: { id: row.id } });
      outcome.pruned.push({ repoPointId: row.repoPointId, createdAt: row.createdAt });
    }
  } finally {
    await lock.release();
  }
  return outcome;
}
