/**
 * A repository's size over time (repository_samples), for the console's capacity chart: one row each time
 * the size changes (a restore point recorded, retention, GC). Figures are what is already at hand, not a
 * scan: stored and unique bytes and the chunk count sum the in-memory chunk index (brought up to date
 * incrementally, so only index files written since are read); logical bytes and the count of restore points
 * come from their rows. Stored bytes fall only when GC removes what a prune left unreferenced.
 *
 * Bounded per repository: the newest `keep` samples stay as they are; older ones are thinned to one per
 * `everyMs`, and those older than `dailyAfterMs` to one a day.
 */
import type { Db } from '@vaultline/db';
import type { Repository } from '@vaultline/repository';

export interface RepositorySampleLimits {
  keep: number;
  everyMs: number;
  dailyAfterMs: number;
}

export const REPOSITORY_SAMPLE_LIMITS: RepositorySampleLimits = { keep: 500, everyMs: 10 * 60_000, dailyAfterMs: 30 * 86_400_000 };

export interface RepositoryFigures {
  storedBytes: number;
  uniqueBytes: number;
  chunks: number;
  logicalBytes: number;
  restorePoints: number;
}

export async function repositoryFigures(db: Db, repo: Repository, repositoryId: string): Promise<RepositoryFigures> {
  await repo.reloadIndex();
  let stored = 0;
  let unique = 0;
  for (const loc of repo.index.values()) {
    stored += loc.storedLen;
    unique += loc.rawLen;
  }
  const points = await db.restorePoint.aggregate({ where: { repositoryId, pruningAt: null }, _sum: { logicalBytes: true }, _count: { _all: true } });
  return { storedBytes: stored, uniqueBytes: unique, chunks: repo.index.size, logicalBytes: Number(points._sum.logicalBytes ?? 0n), restorePoints: points._count._all };
}

/** Stores the repository's figures now and thins its older samples; returns what it stored. */
export async function recordRepositorySample(db: Db, repo: Repository, repositoryId: string, at = new Date(), limits: RepositorySampleLimits = REPOSITORY_SAMPLE_LIMITS): Promise<RepositoryFigures> {
  const f = await repositoryFigures(db, repo, repositoryId);
  await db.repositorySample.create({
    data: {
      repositoryId,
      at,
      storedBytes: BigInt(f.storedBytes),
      logicalBytes: BigInt(f.logicalBytes),
      uniqueBytes: BigInt(f.uniqueBytes),
      restorePoints: f.restorePoints,
      chunks: f.chunks,
    },
  });
  const dailyBefore = new Date(at.getTime() - limits.dailyAfterMs);
  // Within a bucket the newest sample is kept; buckets are `everyMs` wide, a day wide past `dailyAfterMs`.
  await db.$executeRaw`
    DELETE FROM repository_samples WHERE id IN (
      SELECT id FROM (
        SELECT id,
          row_number() OVER (ORDER BY at DESC, id DESC) AS recent,
          row_number() OVER (
            PARTITION BY CASE WHEN at < ${dailyBefore} THEN 'd' || floor(extract(epoch FROM at) / 86400)::text
                              ELSE 'm' || floor(extract(epoch FROM at) * 1000 / ${limits.everyMs})::text END
            ORDER BY at DESC, id DESC) AS in_bucket
        FROM repository_samples WHERE repository_id = ${repositoryId}::uuid
      ) s WHERE s.recent > ${limits.keep} AND s.in_bucket > 1)`;
  return f;
}
