import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { Repository, RestorePointWriter, verify } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyRetention } from '../src/retention.ts';

const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const VM = 'vm-uuid-1';
const DAY = 86_400_000;

describe('retention after a backup (real Postgres, real repository)', () => {
  let database: TestDatabase;
  let db: Db;
  let dir: string;
  let repo: Repository;
  let repositoryId: string;
  let vcenterId: string;

  beforeAll(async () => {
    database = await createTestDatabase(PG_SERVER, 'vaultline_retention');
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-retention-'));
    await Repository.init(dir);
    repo = await Repository.open(dir);
    repositoryId = (await db.repository.create({ data: { name: 'r', location: dir } })).id;
    vcenterId = (await db.vCenter.create({ data: { name: 'vc', url: 'https://vc/sdk', username: 'u', passwordSealed: 'x' } })).id;
  });
  afterAll(async () => {
    await repo?.close();
    await db?.$disconnect();
    await database?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const newJob = (name: string) => db.backupJob.create({ data: { name, vcenterId, repositoryId, sources: [] } });

  /** A real restore point in the repository and its row, as a backup of `jobId` leaves them. */
  async function backup(jobId: string, daysAgo: number, opts: { lockedUntil?: Date; vm?: string } = {}) {
    const vmId = opts.vm ?? VM;
    const w = await RestorePointWriter.open(repo, { vmId, ...(opts.lockedUntil ? { lockedUntil: opts.lockedUntil } : {}) });
    const disk = await w.openDisk({ key: '2000', capacity: 1 << 20, mode: 'full' });
    await disk.write(0, Buffer.alloc(64 * 1024, daysAgo + 1));
    const m = await w.commit();
    const run = await db.jobRun.create({ data: { jobId, status: 'succeeded', vms: { create: [{ vmMoref: 'vm-1', vmName: 'app', vmInstanceUuid: vmId, status: 'succeeded' }] } }, include: { vms: true } });
    return db.restorePoint.create({
      data: {
        repositoryId,
        repoPointId: m.id,
        runVmId: run.vms[0]!.id,
        vmInstanceUuid: vmId,
        vmName: 'app',
        createdAt: new Date(Date.now() - daysAgo * DAY),
        logicalBytes: 1n << 20n,
        immutableUntil: opts.lockedUntil ?? null,
      },
    });
  }
  const visible = async (vmId = VM) => new Set((await repo.listRestorePoints(vmId)).map((r) => r.id));

  it("keeps what the job's policy keeps, deletes the rest from the repository and the database, and leaves another job's points alone", async () => {
    const a = await newJob('a');
    const b = await newJob('b');
    const pointsA = [];
    for (const d of [4, 3, 2, 1, 0]) pointsA.push(await backup(a.id, d));
    const pointB = await backup(b.id, 10);
    const out = await applyRetention(db, repo, { repositoryId, jobId: a.id, vmInstanceUuid: VM }, { keepLast: 2 });
    expect(out.kept).toBe(2);
    expect(out.failed).toEqual([]);
    expect(out.pruned.map((p) => p.repoPointId).sort()).toEqual(pointsA.slice(0, 3).map((p) => p.repoPointId).sort());
    const left = await visible();
    expect(left).toEqual(new Set([pointsA[3]!.repoPointId, pointsA[4]!.repoPointId, pointB.repoPointId]));
    expect((await db.restorePoint.findMany({ where: { vmInstanceUuid: VM } })).map((r) => r.repoPointId).sort()).toEqual([...left].sort());
    // The repository stays consistent: what is left verifies clean.
    expect((await verify(repo)).ok).toBe(true);
  });

  it('never deletes an immutable point, whatever the policy says', async () => {
    const job = await newJob('locked');
    const vm = 'vm-locked';
    const locked = await backup(job.id, 5, { vm, lockedUntil: new Date(Date.now() + 30 * DAY) });
    const old = await backup(job.id, 4, { vm });
    const newest = await backup(job.id, 0, { vm });
    const out = await applyRetention(db, repo, { repositoryId, jobId: job.id, vmInstanceUuid: vm }, { keepLast: 1 });
    expect(out.pruned.map((p) => p.repoPointId)).toEqual([old.repoPointId]);
    expect(await visible(vm)).toEqual(new Set([locked.repoPointId, newest.repoPointId]));
    expect(await db.restorePoint.findUnique({ where: { id: locked.id } })).not.toBeNull();
  });

  it('keeps a point an unfinished instant recovery runs from (also a decision taken before the recovery), and lets it go once the recovery is over', async () => {
    const job = await newJob('served');
    const vm = 'vm-served';
    const served = await backup(job.id, 5, { vm });
    const marked = await backup(job.id, 4, { vm });
    await backup(job.id, 0, { vm });
    // Retention had decided on `marked` (a crash before the delete) when a VM was recovered from it.
    await db.restorePoint.update({ where: { id: marked.id }, data: { pruningAt: new Date() } });
    const recover = (point: { id: string; repoPointId: string; createdAt: Date }, state: string) =>
      db.instantRecovery.create({
        data: { name: `ir-${point.repoPointId.slice(0, 8)}`, restorePointId: point.id, restorePointRef: point.id, sourceVm: 'app', restorePointTime: point.createdAt, vcenterId, hostMoref: 'host-1', hostName: 'esx-1', state, createdBy: 'admin' },
      });
    const runningIr = await recover(served, 'running');
    const migratingIr = await recover(marked, 'migrating');
    const first = await applyRetention(db, repo, { repositoryId, jobId: job.id, vmInstanceUuid: vm }, { keepLast: 1 });
    expect(first.pruned).toEqual([]);
    expect(await visible(vm)).toEqual(new Set([served.repoPointId, marked.repoPointId, (await db.restorePoint.findFirstOrThrow({ where: { vmInstanceUuid: vm }, orderBy: { createdAt: 'desc' } })).repoPointId]));
    // Over (migrated, discarded): retention takes them as the policy says.
    await db.instantRecovery.update({ where: { id: runningIr.id }, data: { state: 'discarded' } });
    await db.instantRecovery.update({ where: { id: migratingIr.id }, data: { state: 'migrated' } });
    const second = await applyRetention(db, repo, { repositoryId, jobId: job.id, vmInstanceUuid: vm }, { keepLast: 1 });
    expect(second.pruned.map((p) => p.repoPointId).sort()).toEqual([served.repoPointId, marked.repoPointId].sort());
    // The recoveries' rows stay as history; their link to the gone point is cleared.
    expect((await db.instantRecovery.findUniqueOrThrow({ where: { id: runningIr.id } })).restorePointId).toBeNull();
  });

  it('the repository lock date wins over a row that lost it: the point is kept and its mark cleared', async () => {
    const job = await newJob('row-forgot');
    const vm = 'vm-row-forgot';
    const p = await backup(job.id, 3, { vm, lockedUntil: new Date(Date.now() + 30 * DAY) });
    await db.restorePoint.update({ where: { id: p.id }, data: { immutableUntil: null } });
    await backup(job.id, 0, { vm });
    const out = await applyRetention(db, repo, { repositoryId, jobId: job.id, vmInstanceUuid: vm }, { keepLast: 1 });
    expect(out.pruned).toEqual([]);
    expect(await visible(vm)).toContain(p.repoPointId);
    expect((await db.restorePoint.findUniqueOrThrow({ where: { id: p.id } })).pruningAt).toBeNull();
  });

  it('finishes decisions a crash interrupted: a marked row whose point is already gone, and one whose point is still there', async () => {
    const job = await newJob('crashed');
    const vm = 'vm-crashed';
    const gone = await backup(job.id, 3, { vm });
    const still = await backup(job.id, 2, { vm });
    await backup(job.id, 0, { vm });
    await db.restorePoint.updateMany({ where: { id: { in: [gone.id, still.id] } }, data: { pruningAt: new Date() } });
    // A crash after the repository delete of `gone`, before its row went.
    const { deleteRestorePoint } = await import('@vaultline/repository');
    await deleteRestorePoint(repo, { vmId: vm, id: gone.repoPointId });
    // keepLast 10 would keep both; the earlier decision stands.
    const out = await applyRetention(db, repo, { repositoryId, jobId: job.id, vmInstanceUuid: vm }, { keepLast: 10 });
    expect(out.pruned.map((p) => p.repoPointId).sort()).toEqual([gone.repoPointId, still.repoPointId].sort());
    expect(await visible(vm)).not.toContain(still.repoPointId);
    expect(await db.restorePoint.count({ where: { id: { in: [gone.id, still.id] } } })).toBe(0);
  });

  it('a point the repository cannot delete stays marked and is reported, and is retried next time', async () => {
    const job = await newJob('stuck');
    const vm = 'vm-stuck';
    const stuck = await backup(job.id, 3, { vm });
    await backup(job.id, 0, { vm });
    // Make its manifest unreadable (damaged), so the delete fails.
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(dir, repo.rpDir({ vmId: vm, id: stuck.repoPointId }), 'manifest'), 'garbage');
    const out = await applyRetention(db, repo, { repositoryId, jobId: job.id, vmInstanceUuid: vm }, { keepLast: 1 });
    expect(out.pruned).toEqual([]);
    expect(out.failed.map((f) => f.repoPointId)).toEqual([stuck.repoPointId]);
    expect((await db.restorePoint.findUniqueOrThrow({ where: { id: stuck.id } })).pruningAt).not.toBeNull();
  });
});
