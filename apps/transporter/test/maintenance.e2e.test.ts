/**
 * Repository upkeep on real backups of a lab VM: the job's retention after each
 * backup, garbage collection that frees the pruned points' space without
 * touching what is kept, and verify runs that name damaged restore points.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { applianceKeyUnsealer } from '@vaultline/appliance';
import { Repository } from '@vaultline/repository';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMaintenanceHandler } from '../src/handlers/maintenance.handler.ts';
import { startBench, type Bench } from './fixture.ts';

const MiB = 1024 * 1024;
const retention = { keepLast: 2, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 };

async function repoBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += (await stat(path.join(e.parentPath, e.name))).size;
  return n;
}

describe('retention, garbage collection and verify on real backups (lab vCenter)', () => {
  let b: Bench;
  /** Ground truth of each backup, by repository point id. */
  const truth = new Map<string, string[]>();
  let handle: ReturnType<typeof createMaintenanceHandler>;

  beforeAll(async () => {
    b = await startBench();
    handle = createMaintenanceHandler({ db: b.db, unseal: applianceKeyUnsealer(b.secretKey), transporterId: b.transporterId, log: memoryLogger('m').log, publish: (e) => b.events.push(e) });
    await b.lab.createVm({ name: 'keep01', cbt: true, disks: [{ capacityBytes: 16 * MiB }, { capacityBytes: 8 * MiB }] });
  });
  afterAll(async () => {
    await b?.close();
  });

  /** A maintenance run as the Director writes it, carried out by the real handler. */
  const maintain = async (request: { task: 'verify'; sample: number } | { task: 'gc' }) => {
    const run = await b.db.jobRun.create({
      data: { kind: request.task, request: { ...request, repositoryId: b.repositoryId }, vms: { create: [{ vmMoref: '', vmName: 'bench' }] } },
      include: { vms: true },
    });
    await handle({ runVmId: run.vms[0]!.id });
    const done = await b.db.jobRun.findUniqueOrThrow({ where: { id: run.id }, include: { vms: true } });
    return { run: done, log: done.vms[0]!.log as { level: string; message: string }[] };
  };

  const backupDay = async (seed: number) => {
    await b.lab.guestWrite('keep01', 0, [{ offset: (seed % 3) * 4 * MiB, length: 4 * MiB, pattern: 'random', seed }]);
    await b.lab.guestWrite('keep01', 1, [{ offset: MiB, length: 2 * MiB, pattern: 'random', seed: seed + 100 }]);
    const t = [await b.lab.diskSha256('keep01', 0), await b.lab.diskSha256('keep01', 1)];
    const { runId } = await b.newRun(['keep01'], 'nbdssl', { retention, cbtSanityRate: 0 });
    await b.runAll(runId);
    const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: true } });
    expect(run.status, run.vms[0]!.error ?? '').toBe('succeeded');
    const point = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: run.vms[0]!.id } });
    truth.set(point.repoPointId, t);
    return { run, point };
  };

  it("keeps the job's last two restore points after each backup, in the repository and the database, and says what it removed", async () => {
    const first = await backupDay(1);
    await backupDay(2);
    const third = await backupDay(3);
    const rows = await b.db.restorePoint.findMany({ where: { vmName: 'keep01' }, orderBy: { createdAt: 'asc' } });
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.repoPointId)).not.toContain(first.point.repoPointId);
    const repo = await Repository.open(b.repoDir);
    try {
      expect((await repo.listRestorePoints(rows[0]!.vmInstanceUuid)).map((r) => r.id).sort()).toEqual(rows.map((r) => r.repoPointId).sort());
    } finally {
      await repo.close();
    }
    expect(JSON.stringify(third.run.vms[0]!.log)).toContain(`retention: removed 1 older restore point(s) (${first.point.repoPointId}); 2 kept`);
  });

  it('garbage collection frees the pruned points\' space, and every kept point still reads back bit-exact', async () => {
    // The grace period protects only files no index names (a running writer's); packs that
    // only the pruned points used are indexed and unreferenced, so they go at once.
    const before = await repoBytes(b.repoDir);
    const { run, log } = await maintain({ task: 'gc' });
    expect(run.status, run.error ?? '').toBe('succeeded');
    expect(log.map((l) => l.message).join('\n')).toMatch(/MiB freed/);
    expect(await repoBytes(b.repoDir)).toBeLessThan(before);
    for (const p of await b.db.restorePoint.findMany({ where: { vmName: 'keep01' } })) {
      const keys = (await b.lab.getVm('keep01')).disks.map((d) => String(d.key));
      expect([await b.restoredSha256(p.repoPointId, p.vmInstanceUuid, keys[0]!), await b.restoredSha256(p.repoPointId, p.vmInstanceUuid, keys[1]!)]).toEqual(truth.get(p.repoPointId));
    }
  });

  it('a full verify of an intact repository succeeds and stamps every restore point verified', async () => {
    const { run, log } = await maintain({ task: 'verify', sample: 1 });
    expect(run.status, run.error ?? '').toBe('succeeded');
    expect(log.at(-1)?.message ?? log.map((l) => l.message).join('|')).toMatch(/all intact/);
    // The console hears the item finish, then the run, as for backups and restores.
    expect(b.events.filter((e) => e.runId === run.id && (e.type === 'vm.finished' || e.type === 'run.finished')).map((e) => [e.type, e.status])).toEqual([
      ['vm.finished', 'succeeded'],
      ['run.finished', 'succeeded'],
    ]);
    const rows = await b.db.restorePoint.findMany({ where: { repositoryId: b.repositoryId } });
    expect(rows.every((r) => r.verifiedAt && !r.damaged)).toBe(true);
  });

  it('one flipped bit in a pack fails the verify run and marks exactly the restore points that use that chunk damaged, naming them', async () => {
    const packs: string[] = [];
    for (const e of await readdir(path.join(b.repoDir, 'packs'), { withFileTypes: true, recursive: true })) if (e.isFile() && e.name.endsWith('.pack')) packs.push(path.join(e.parentPath, e.name));
    // Flip a bit in the middle of the largest pack (a chunk's stored bytes, not the footer).
    const sizes = await Promise.all(packs.map(async (p) => (await stat(p)).size));
    const victim = packs[sizes.indexOf(Math.max(...sizes))]!;
    const data = await readFile(victim);
    data[Math.floor(data.length / 3)]! ^= 0x10;
    await writeFile(victim, data);

    const { run, log } = await maintain({ task: 'verify', sample: 1 });
    expect(run.status).toBe('failed');
    const damaged = await b.db.restorePoint.findMany({ where: { repositoryId: b.repositoryId, damaged: true } });
    expect(damaged.length).toBeGreaterThan(0);
    for (const d of damaged) {
      expect(d.damage).toMatch(/chunk [0-9a-f]{16}… of disk \d+ at offset \d+/);
      expect(run.error).toContain(`${d.vmName} ${d.createdAt.toISOString()}`);
      expect(log.some((l) => l.level === 'error' && l.message.includes(d.repoPointId))).toBe(true);
    }
    // Flip it back: the next full verify clears the marks.
    data[Math.floor(data.length / 3)]! ^= 0x10;
    await writeFile(victim, data);
    expect((await maintain({ task: 'verify', sample: 1 })).run.status).toBe('succeeded');
    expect(await b.db.restorePoint.count({ where: { repositoryId: b.repositoryId, damaged: true } })).toBe(0);
  });

  it('a restore point row whose point vanished from the repository is reported missing', async () => {
    const row = await b.db.restorePoint.findFirstOrThrow({ where: { vmName: 'keep01' }, orderBy: { createdAt: 'asc' } });
    await b.db.restorePoint.create({
      data: { repositoryId: row.repositoryId, repoPointId: '20260101T000000Z-gone00', vmInstanceUuid: row.vmInstanceUuid, vmName: row.vmName, createdAt: new Date('2026-01-01T00:00:00Z'), logicalBytes: row.logicalBytes },
    });
    const { run } = await maintain({ task: 'verify', sample: 0.5 });
    expect(run.status).toBe('failed');
    const ghost = await b.db.restorePoint.findFirstOrThrow({ where: { repoPointId: '20260101T000000Z-gone00' } });
    expect(ghost).toMatchObject({ damaged: true, damage: 'missing from the repository (its manifest is gone)' });
    await b.db.restorePoint.delete({ where: { id: ghost.id } });
  });

  it('GC waits for no backup: while one holds the repository it fails clearly and deletes nothing', async () => {
    const repo = await Repository.open(b.repoDir);
    const lock = await repo.locks.acquire('shared', 'backup in progress (test)');
    try {
      const before = await repoBytes(b.repoDir);
      const { run } = await maintain({ task: 'gc' });
      expect(run.status).toBe('failed');
      expect(run.error).toMatch(/a backup or another maintenance task is using bench .*runs again at its next occurrence/);
      expect(await repoBytes(b.repoDir)).toBe(before);
    } finally {
      await lock.release();
      await repo.close();
    }
  });
});
