/**
 * The RunRecorder (packages/core/src/run/recorder.ts) over PostgreSQL, the truth about runs, and the
 * event bus that carries what happens to the Director and the browsers. Disk rows and their progress
 * events come from runDiskRows.
 */
import { settledRunStatus, type RunEvent, type RunStatus } from '@vaultline/contracts';
import type { RunLogLevel, RunRecorder } from '@vaultline/core';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { operatorText } from '@vaultline/vsphere';
import { runDiskRows } from './run-disk-rows.ts';

export interface RecorderDeps {
  db: Db;
  publish(event: RunEvent): void;
  /** Where the lines also go (the Transporter's own log), with the run and item ids bound. */
  log: Logger;
  transporterId: string;
}

/**
 * `item.kind` is the run's kind: a restore or maintenance run is its one item, so the run shows the
 * item's error; a backup's errors stay on its VMs.
 */
export function pgRunRecorder(deps: RecorderDeps, item: { id: string; runId: string; kind: 'backup' | 'restore' | 'maintenance' }): RunRecorder {
  const { db, publish } = deps;
  const runId = item.runId;
  const rows = runDiskRows(db, item.id, publish);
  let writes: Promise<unknown> = Promise.resolve();

  const setPhase = async (phase: string, detail: string | null = null) => {
    await db.runVm.update({ where: { id: item.id }, data: { phase, phaseDetail: detail } });
    publish({ type: 'vm.phase', runId, runVmId: item.id, phase, detail });
  };

  return {
    runId,
    itemId: item.id,
    async start(phase) {
      const now = new Date();
      await db.jobRun.updateMany({ where: { id: runId, startedAt: null }, data: { startedAt: now } });
      await db.jobRun.update({ where: { id: runId }, data: { status: 'running' } });
      await db.runVm.update({ where: { id: item.id }, data: { status: 'running', phase, phaseDetail: null, transporterId: deps.transporterId, transporterLostAt: null, startedAt: now, error: null } });
      publish({ type: 'vm.phase', runId, runVmId: item.id, phase, detail: null });
    },
    phase: setPhase,
    log(level: RunLogLevel, line: string) {
      // The Transporter's own log keeps the call and moref (for support); the run's log says what was being done.
      deps.log[level](line);
      const message = operatorText(line);
      const entry = JSON.stringify([{ at: new Date().toISOString(), level, message }]);
      // A line that cannot be written is not worth failing the work for; the next one still follows it.
      writes = writes.then(() => db.$executeRaw`UPDATE run_vms SET log = log || ${entry}::jsonb WHERE id = ${item.id}::uuid`).catch(() => undefined);
      publish({ type: 'run.log', runId, runVmId: item.id, level, message });
    },
    flush: () => writes.then(() => undefined),
    diskPhase: rows.diskPhase,
    progress: rows.progress,
    async finish(status: RunStatus, raw: string | null, extra: { vmMoref?: string } = {}) {
      await writes;
      const error = raw === null ? null : operatorText(raw);
      const now = new Date();
      await db.runVm.update({ where: { id: item.id }, data: { status, error, phase: status, phaseDetail: null, finishedAt: now, ...(extra.vmMoref ? { vmMoref: extra.vmMoref } : {}) } });
      publish({ type: 'vm.finished', runId, runVmId: item.id, status, error });
      const items = await db.runVm.findMany({ where: { runId }, select: { status: true, error: true } });
      const settled = settledRunStatus(items.map((i) => i.status as RunStatus));
      if (!settled) return;
      await db.jobRun.update({ where: { id: runId }, data: { status: settled, finishedAt: now, ...(item.kind !== 'backup' && items.length === 1 ? { error: items[0]!.error } : {}) } });
      publish({ type: 'run.finished', runId, status: settled });
    },
    async retrying(raw: string) {
      await writes;
      const error = operatorText(raw);
      await db.runVm.update({ where: { id: item.id }, data: { phase: 'retrying', phaseDetail: null, error } });
    },
  };
}
