/**
 * The repository's size over time (repository_samples) on real backups of a lab VM: a backup, the prune its
 * retention makes at the next backup, and garbage collection each add a sample whose figures agree with what
 * the repository itself reports; older samples are thinned.
 */
import { applianceKeyUnsealer } from '@vaultline/appliance';
import { memoryLogger } from '@vaultline/logger';
import { Repository, stats } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordRepositorySample } from '../src/adapters/repository-samples.ts';
import { createMaintenanceHandler } from '../src/handlers/maintenance.handler.ts';
import { startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;
const retention = { keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 };

describe('repository size samples (lab vCenter, real Postgres)', () => {
  let b: Bench;

  beforeAll(async () => {
    b = await startBench();
    await b.lab.createVm({ name: 'grow01', cbt: true, disks: [{ capacityBytes: 16 * MiB }, { capacityBytes: 8 * MiB }] });
  });
  afterAll(async () => {
    await b?.close();
  });

  const samples = () => b.db.repositorySample.findMany({ where: { repositoryId: b.repositoryId }, orderBy: [{ at: 'asc' }, { id: 'asc' }] });
  const repoStats = async () => {
    const repo = await Repository.open(b.repoDir);
    try {
      return await stats(repo);
    } finally {
      await repo.close();
    }
  };
  const backup = async (seed: number) => {
    await b.lab.guestWrite('grow01', 0, [{ offset: (seed % 3) * 4 * MiB, length: 4 * MiB, pattern: 'random', seed }]);
    const { runId } = await b.newRun(['grow01'], 'nbdssl', { retention, cbtSanityRate: 0 });
    await b.runAll(runId);
    const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: true } });
    expect(run.status, run.vms[0]!.error ?? '').toBe('succeeded');
    return run;
  };

  it('a backup adds a sample: its restore points, their size as images, and the stored and unique bytes the repository reports', async () => {
    await backup(1);
    const [s] = await samples();
    const truth = await repoStats();
    expect(await samples()).toHaveLength(1);
    expect(s).toMatchObject({ restorePoints: 1, logicalBytes: BigInt(24 * MiB), storedBytes: BigInt(truth.storedBytes), uniqueBytes: BigInt(truth.uniqueRawBytes) });
    expect(s!.chunks).toBeGreaterThan(0);
    expect(Number(s!.storedBytes)).toBeGreaterThan(0);
    expect(Number(s!.storedBytes)).toBeLessThan(24 * MiB);
  });

  it("the next backup's prune adds one: the pruned point no longer counts, its chunks stay stored until GC, which adds another", async () => {
    // The same region as the first backup's (seed % 3): its old data is referenced only by the pruned point.
    await backup(4);
    const list = await samples();
    expect(list).toHaveLength(2);
    const [first, second] = list;
    expect(await b.db.restorePoint.count({ where: { repositoryId: b.repositoryId } })).toBe(1);
    expect(second).toMatchObject({ restorePoints: 1, logicalBytes: BigInt(24 * MiB) });
    // New random data was added and nothing collected yet.
    expect(second!.storedBytes).toBeGreaterThan(first!.storedBytes);

    const handle = createMaintenanceHandler({ db: b.db, unseal: applianceKeyUnsealer(b.secretKey), transporterId: b.transporterId, log: memoryLogger('m').log, publish: (e) => b.events.push(e) });
    const run = await b.db.jobRun.create({ data: { kind: 'gc', request: { task: 'gc', repositoryId: b.repositoryId }, vms: { create: [{ vmMoref: '', vmName: 'bench' }] } }, include: { vms: true } });
    await handle({ runVmId: run.vms[0]!.id });
    expect((await b.db.jobRun.findUniqueOrThrow({ where: { id: run.id } })).status).toBe('succeeded');
    const after = await samples();
    expect(after).toHaveLength(3);
    const gcd = after[2]!;
    const truth = await repoStats();
    expect(gcd).toMatchObject({ restorePoints: 1, logicalBytes: BigInt(24 * MiB), storedBytes: BigInt(truth.storedBytes), uniqueBytes: BigInt(truth.uniqueRawBytes) });
    expect(gcd.storedBytes).toBeLessThan(second!.storedBytes);
  });

  it('keeps the newest samples as they are and thins older ones to one per interval, and to one a day past a month', async () => {
    await b.db.repositorySample.deleteMany({ where: { repositoryId: b.repositoryId } });
    const now = Date.parse('2026-12-06T12:00:00Z');
    const minute = 60_000;
    const day = 86_400_000;
    const at = [
      // Two months ago: three the same day (one stays).
      now - 60 * day, now - 60 * day + 10 * minute, now - 60 * day + 20 * minute,
      // A week ago: three within ten minutes (one stays), one later (stays).
      now - 7 * day, now - 7 * day + minute, now - 7 * day + 2 * minute, now - 7 * day + 30 * minute,
      // The newest, a minute apart: kept as they are.
      now - 3 * minute, now - 2 * minute,
    ];
    await b.db.repositorySample.createMany({ data: at.map((t) => ({ repositoryId: b.repositoryId, at: new Date(t), storedBytes: 1n, logicalBytes: 1n, restorePoints: 1 })) });
    const repo = await Repository.open(b.repoDir);
    try {
      await recordRepositorySample(b.db, repo, b.repositoryId, new Date(now - minute), { keep: 3, everyMs: 10 * minute, dailyAfterMs: 30 * day });
    } finally {
      await repo.close();
    }
    const left = (await samples()).map((s) => s.at.getTime());
    expect(left).toEqual([now - 60 * day + 20 * minute, now - 7 * day + 2 * minute, now - 7 * day + 30 * minute, now - 3 * minute, now - 2 * minute, now - minute]);
  });
});
