/**
 * The `repository.maintain` job: verify or garbage-collect one repository, as a
 * run like any other (its one item stands for the repository). Verify records
 * its findings on the restore point rows — damaged points are named, with the
 * reason, and a full verify that finds a point intact stamps `verifiedAt` — and
 * a verify that finds damage fails the run, so it cannot go unnoticed. GC never
 * runs while a backup writes (the repository's exclusive lock); it then fails
 * clearly and runs again at its next occurrence.
 */
import { openRepository, type Unsealer } from '@vaultline/appliance';
import { isTerminalStatus, MaintenanceRequestSchema, type BackupVmJob, type RunEvent } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { PermanentError } from '@vaultline/queue';
import { gc, LockedError, verify, type Repository, type VerifyReport } from '@vaultline/repository';
import { pgRunRecorder } from '../adapters/pg-run-recorder.ts';
import { recordRepositorySample } from '../adapters/repository-samples.ts';
import { runCopy } from './copy.ts';

const MiB = 1024 * 1024;

export function createMaintenanceHandler(deps: { db: Db; unseal: Unsealer; transporterId: string; log: Logger; publish(e: RunEvent): void }) {
  const { db } = deps;
  return async function handleMaintenance(payload: BackupVmJob): Promise<void> {
    const item = await db.runVm.findUnique({ where: { id: payload.runVmId }, include: { run: true } });
    if (!item) throw new PermanentError(`run item ${payload.runVmId} does not exist`);
    if (isTerminalStatus(item.status)) return;
    const rec = pgRunRecorder({ db, publish: deps.publish, log: deps.log.child({ runId: item.runId, runVmId: item.id }), transporterId: deps.transporterId }, { id: item.id, runId: item.runId, kind: 'maintenance' });
    const log = rec.log.bind(rec);
    const finish = rec.finish.bind(rec);
    const request = MaintenanceRequestSchema.parse(item.run.request);
    if (request.task === 'copy') return runCopy(deps, rec, item, request);
    const row = await db.repository.findUnique({ where: { id: request.repositoryId } });
    if (!row) return finish('failed', 'the repository was removed from Vaultline');
    await rec.start(request.task === 'gc' ? 'collecting' : 'verifying');

    let repo: Repository | null = null;
    try {
      repo = await openRepository(row, deps.unseal);
      if (request.task === 'gc') {
        log('info', `garbage collection of ${row.name} started`);
        const r = await gc(repo);
        log('info', `removed ${r.deletedPacks} pack(s) and ${r.removedLeftovers} leftover(s) of interrupted writes (${(r.deletedBytes / MiB).toFixed(1)} MiB freed), repacked ${r.repackedPacks}; ${r.liveChunks} chunk(s) in use${r.lockedKept ? `; ${r.lockedKept} pack(s) or file(s) kept because the storage locks them (Object Lock)` : ''}`);
        await recordRepositorySample(db, repo, row.id).catch((err: unknown) => log('warn', `repository size not sampled: ${(err as Error).message}`));
        return await finish('succeeded', null);
      }
      const what = request.sample >= 1 ? 'full verify (every chunk re-read and re-hashed)' : `sampled verify (${Math.round(request.sample * 100)}% of chunks)`;
      log('info', `${what} of ${row.name} started`);
      const report = await verify(repo, { sample: request.sample });
      const problems = await recordVerify(db, repo, row.id, report, request.sample >= 1);
      log(
        problems.length ? 'error' : 'info',
        `${report.restorePoints} restore point(s), ${report.chunksChecked} of ${report.chunksReferenced} chunk(s) checked (${(report.bytesChecked / MiB).toFixed(1)} MiB): ${problems.length ? `${problems.length} restore point(s) damaged` : 'all intact'}`,
      );
      for (const p of problems) log('error', `damaged: ${p.vmName} restore point of ${p.createdAt.toISOString()} (${p.repoPointId}): ${p.reason}`);
      if (report.unreferencedPacks || report.incompleteRestorePoints) {
        log('info', `${report.unreferencedPacks} unreferenced pack(s) and ${report.incompleteRestorePoints} incomplete restore point(s) left by interrupted backups; garbage collection removes them`);
      }
      return await finish(problems.length ? 'failed' : 'succeeded', problems.length ? `${problems.length} restore point(s) damaged: ${problems.map((p) => `${p.vmName} ${p.createdAt.toISOString()}`).join(', ')}` : null);
    } catch (err) {
      const message =
        err instanceof LockedError
          ? `a backup or another maintenance task is using ${row.name} (${err.message}); this runs again at its next occurrence`
          : `${request.task === 'gc' ? 'garbage collection' : 'verify'} of ${row.name} failed: ${(err as Error).message}`;
      log('error', message);
      await finish('failed', message);
    } finally {
      await repo?.close().catch(() => undefined);
    }
  };
}

interface Damage {
  repoPointId: string;
  vmName: string;
  createdAt: Date;
  reason: string;
}

/**
 * Puts a verify's findings on the rows: every point it names is marked damaged
 * with the first reason; a row whose point is gone from the repository is
 * damaged too. A full verify clears earlier marks of points it found intact and
 * stamps them verified; a sample only adds marks (it may have missed damage).
 */
async function recordVerify(db: Db, repo: Repository, repositoryId: string, report: VerifyReport, full: boolean): Promise<Damage[]> {
  const reasons = new Map<string, string>();
  const key = (vmId: string, id: string) => `${vmId}/${id}`;
  for (const b of report.brokenRestorePoints) if (!reasons.has(key(b.vmId, b.id))) reasons.set(key(b.vmId, b.id), `unreadable: ${b.reason}`);
  for (const c of report.damagedChunks) {
    for (const a of c.restorePoints) {
      if (!reasons.has(key(a.vmId, a.id))) reasons.set(key(a.vmId, a.id), `chunk ${c.chunk.slice(0, 16)}… of disk ${a.disk} at offset ${a.offsets[0] ?? 0} is ${c.reason}`);
    }
  }
  const present = new Set((await repo.listRestorePoints()).map((r) => key(r.vmId, r.id)));
  const rows = await db.restorePoint.findMany({ where: { repositoryId, pruningAt: null } });
  const now = new Date();
  const out: Damage[] = [];
  for (const r of rows) {
    const k = key(r.vmInstanceUuid, r.repoPointId);
    const reason = reasons.get(k) ?? (present.has(k) ? undefined : 'missing from the repository (its manifest is gone)');
    if (reason) {
      await db.restorePoint.update({ where: { id: r.id }, data: { damaged: true, damage: reason } });
      out.push({ repoPointId: r.repoPointId, vmName: r.vmName, createdAt: r.createdAt, reason });
    } else if (full) {
      await db.restorePoint.update({ where: { id: r.id }, data: { damaged: false, damage: null, verifiedAt: now } });
    }
  }
  return out;
}
