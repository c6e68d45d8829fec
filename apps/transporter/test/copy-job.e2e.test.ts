/**
 * Backup copy jobs end to end (issue #17): a lab VM backed up by the real backup handler into one
 * repository, its restore points copied by the copy run (the maintenance queue's handler, as the
 * Transporter runs it) into a second, encrypted repository with other keys. The copies read back
 * bit-exact, the second copy reads only what changed, a run with nothing new copies nothing, the job's
 * retention prunes its own copies, and a full VM restore from a copy is bit-exact.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { applianceKeyUnsealer, identityColumns, openRepository, SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { RetentionSchema } from '@vaultline/contracts';
import { restoreVm } from '@vaultline/core';
import { memoryLogger } from '@vaultline/logger';
import { DiskReader, Repository, verify } from '@vaultline/repository';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import { createMaintenanceHandler } from '../src/handlers/maintenance.handler.ts';
import { isRoot, startBench, type Bench, type BenchPoint } from './fixture.ts';

const MiB = 1024 * 1024;

describe.runIf(isRoot)('backup copy jobs: restore points copied into a second repository (lab vCenter)', () => {
  let b: Bench;
  let copyDir: string;
  let targetId: string;
  let copyJobId: string;
  const points: BenchPoint[] = [];
  let maintain: ReturnType<typeof createMaintenanceHandler>;

  /** Starts a copy run of the job as the Director does (one item) and runs it through the maintenance handler. */
  const copyRun = async () => {
    const run = await b.db.jobRun.create({
      data: { kind: 'copy', request: { task: 'copy', repositoryId: targetId, copyJobId }, vms: { create: [{ vmMoref: '', vmName: 'offsite copy' }] } },
      include: { vms: true },
    });
    await maintain({ runVmId: run.vms[0]!.id });
    return b.db.jobRun.findUniqueOrThrow({ where: { id: run.id }, include: { vms: true } });
  };
  const copiesOf = () => b.db.restorePoint.findMany({ where: { repositoryId: targetId, copyJobId }, orderBy: { createdAt: 'asc' } });
  const sha256Of = async (repo: Repository, vmId: string, id: string, key: string) => {
    const r = await DiskReader.open(repo, { vmId, id }, key);
    try {
      return createHash('sha256').update(await r.read(0, r.capacity)).digest('hex');
    } finally {
      r.close();
    }
  };

  beforeAll(async () => {
    b = await startBench();
    copyDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-copy-target-'));
    const identity = await Repository.init(copyDir, { passphrase: 'the copies passphrase' });
    const target = await b.db.repository.create({
      data: { name: 'offsite', kind: 'local', location: copyDir, encrypted: true, passphraseSealed: sealSecret(b.secretKey, SECRET_LABELS.repositoryPassphrase, 'the copies passphrase'), ...identityColumns(identity) },
    });
    targetId = target.id;
    const job = await b.db.copyJob.create({
      data: { name: 'offsite copy', sourceRepositoryId: b.repositoryId, targetRepositoryId: targetId, retention: RetentionSchema.parse({ keepLast: 2 }) },
    });
    copyJobId = job.id;
    const { log } = memoryLogger('copy-test');
    maintain = createMaintenanceHandler({ db: b.db, unseal: applianceKeyUnsealer(b.secretKey), transporterId: b.transporterId, log, publish: () => undefined });
    await b.lab.createVm({ name: 'files01', cbt: true, disks: [{ capacityBytes: 32 * MiB }, { capacityBytes: 8 * MiB, controller: 'lsilogic' }] });
    await b.lab.guestWrite('files01', 0, [{ offset: 0, length: 12 * MiB, pattern: 'random', seed: 81 }]);
    await b.lab.guestWrite('files01', 1, [{ offset: 1 * MiB, length: 4 * MiB, pattern: 'text', seed: 82 }]);
    points.push(await b.backupPoint('files01', 2));
    await b.lab.guestWrite('files01', 0, [{ offset: 20 * MiB, length: 1 * MiB, pattern: 'random', seed: 83 }]);
    points.push(await b.backupPoint('files01', 2));
  }, 240_000);
  afterAll(async () => {
    await b?.close();
    if (copyDir) await rm(copyDir, { recursive: true, force: true });
  });

  it('copies every restore point, the second incrementally, and the copies read back bit-exact from the target', async () => {
    const run = await copyRun();
    expect(run.status, run.vms[0]!.error ?? '').toBe('succeeded');
    const lines = (run.vms[0]!.log as { message: string }[]).map((l) => l.message);
    const copies = await copiesOf();
    expect(copies).toHaveLength(2);
    const sources = await b.db.restorePoint.findMany({ where: { repositoryId: b.repositoryId }, orderBy: { createdAt: 'asc' } });
    expect(copies.map((c) => c.copyOfId)).toEqual(sources.map((s) => s.id));
    expect(copies.map((c) => c.createdAt.toISOString())).toEqual(sources.map((s) => s.createdAt.toISOString()));
    expect(lines.some((l) => /copied \(full\)/.test(l))).toBe(true);
    // The second point differs by the 1 MiB written: only the chunks holding it are read (256 KiB each).
    const incr = lines.find((l) => /copied \(incremental\): read 1\.0 MiB/.test(l));
    expect(incr, lines.join('\n')).toBeDefined();

    const vm = await b.lab.getVm('files01');
    const repo = await openRepository(await b.db.repository.findUniqueOrThrow({ where: { id: targetId } }), b.secretKey);
    try {
      for (const [i, c] of copies.entries()) {
        const got = [];
        for (const d of vm.disks) got.push(await sha256Of(repo, c.vmInstanceUuid, c.repoPointId, String(d.key)));
        expect(got, `copy ${i}`).toEqual(points[i]!.truth);
      }
      expect((await verify(repo)).ok).toBe(true);
    } finally {
      await repo.close();
    }
  }, 300_000);

  it('a run with nothing new copies nothing; a new backup is copied and the job keeps its last 2 copies', async () => {
    const idle = await copyRun();
    expect(idle.status).toBe('succeeded');
    expect((idle.vms[0]!.log as { message: string }[]).map((l) => l.message)).toContain('0 restore point(s) copied: 0.0 MiB read from bench, 0.0 MiB stored anew in offsite');
    expect(await copiesOf()).toHaveLength(2);

    await b.lab.guestWrite('files01', 1, [{ offset: 6 * MiB, length: 512 * 1024, pattern: 'random', seed: 84 }]);
    points.push(await b.backupPoint('files01', 2));
    const run = await copyRun();
    expect(run.status).toBe('succeeded');
    const copies = await copiesOf();
    expect(copies).toHaveLength(2);
    const newest = await b.db.restorePoint.findFirstOrThrow({ where: { repositoryId: b.repositoryId }, orderBy: { createdAt: 'desc' } });
    expect(copies[1]!.copyOfId).toBe(newest.id);
    expect((run.vms[0]!.log as { message: string }[]).map((l) => l.message).join('\n')).toMatch(/retention removed 1 older copy/);
    const repo = await openRepository(await b.db.repository.findUniqueOrThrow({ where: { id: targetId } }), b.secretKey);
    try {
      expect((await repo.listRestorePoints()).map((r) => r.id).sort()).toEqual(copies.map((c) => c.repoPointId).sort());
    } finally {
      await repo.close();
    }
  }, 300_000);

  it('a full VM restore from the newest copy is bit-exact', async () => {
    const copy = (await copiesOf())[1]!;
    const session = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
    const repo = await openRepository(await b.db.repository.findUniqueOrThrow({ where: { id: targetId } }), b.secretKey);
    try {
      const result = await restoreVm(
        { repo, ref: { vmId: copy.vmInstanceUuid, id: copy.repoPointId }, name: 'files01-from-copy', restoreId: randomUUID(), transport: 'nbdssl', vcenterId: b.vcenterId },
        { vsphere: session.port, journal: pgJournal(b.db, b.transporterId, b.journalKey), log: memoryLogger('copy-restore').log, devices: b.devices, proxy: session.facts, runLog: () => undefined },
      );
      expect(result.disks.map((d) => d.sha256)).toEqual(points[2]!.truth);
      expect(await b.lab.diskSha256('files01-from-copy', 0)).toBe(points[2]!.truth[0]);
      expect(await b.lab.diskSha256('files01-from-copy', 1)).toBe(points[2]!.truth[1]);
    } finally {
      await repo.close();
      await session.close();
    }
  }, 300_000);
});
