/** Restore points as the API lists them: one shape for a repository's list and the per-VM list. */
import type { RepositoryRestorePoint } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';

type PointRow = NonNullable<Awaited<ReturnType<Db['restorePoint']['findUnique']>>>;

/** Points with their repository's name and the run that wrote each (when known). */
export async function restorePointDtos(db: Db, points: PointRow[]): Promise<RepositoryRestorePoint[]> {
  const runVmIds = [...new Set(points.map((p) => p.runVmId).filter((x): x is string => x !== null))];
  const repoIds = [...new Set(points.map((p) => p.repositoryId))];
  const [items, repos] = await Promise.all([
    runVmIds.length ? db.runVm.findMany({ where: { id: { in: runVmIds } }, select: { id: true, runId: true } }) : [],
    repoIds.length ? db.repository.findMany({ where: { id: { in: repoIds } }, select: { id: true, name: true } }) : [],
  ]);
  const runOf = new Map(items.map((v) => [v.id, v.runId]));
  const nameOf = new Map(repos.map((r) => [r.id, r.name]));
  return points.map((p) => ({
    id: p.id,
    vmName: p.vmName,
    vmInstanceUuid: p.vmInstanceUuid,
    repositoryId: p.repositoryId,
    repository: nameOf.get(p.repositoryId) ?? '',
    createdAt: p.createdAt.toISOString(),
    logicalBytes: Number(p.logicalBytes),
    newBytes: Number(p.newBytes),
    suspect: p.suspect,
    immutableUntil: p.immutableUntil?.toISOString() ?? null,
    damaged: p.damaged,
    damage: p.damage,
    verifiedAt: p.verifiedAt?.toISOString() ?? null,
    runId: (p.runVmId && runOf.get(p.runVmId)) ?? null,
    ransomwareSuspect: p.ransomwareSuspect,
    anomaly: p.anomaly,
    holdReleasedAt: p.holdReleasedAt?.toISOString() ?? null,
    holdReleasedBy: p.holdReleasedBy,
    copy: p.copyOfId !== null,
  }));
}
