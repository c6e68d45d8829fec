/**
 * Puts PostgreSQL (the truth about runs) and the queue back in step, every
 * scheduler tick. A run's rows are written before its items are queued, so a
 * Director that stops between the two leaves items `queued` that no
 * Transporter will ever see, and the job refuses every later run while one is
 * active. A Transporter that dies mid-run leaves its items `running` for good.
 *
 * - An item queued for longer than `queuedAfterMs` whose job the queue does not
 *   hold is queued again (the item id is the job id, so this is idempotent).
 *   One the queue finished or gave up on while PostgreSQL still says queued is
 *   failed, saying so.
 * - An item running on a Transporter not heard from for `silentAfterMs` says so
 *   in its log at once (and on its page, live), once per silence: the work is
 *   taken over when a Transporter picks the item up again (the queue hands a
 *   job whose worker stopped renewing its lock to the next worker).
 * - An item running on a Transporter not heard from for `goneAfterMs` is
 *   failed with the reason; what it left in vSphere (snapshot, attached
 *   disks) is removed by that Transporter's orphan sweep when it starts, or
 *   adopted by another's once it has been silent long enough.
 *
 * Each run whose items are then all finished gets its final status.
 */
import { settledRunStatus, type RunEvent } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { TransporterRegistry, WorkQueue } from '@vaultline/queue';

export const RECONCILE_LIMITS = {
  /** How long a Transporter may be silent before its running items say so (three missed 10 s heartbeats). */
  silentAfterMs: 30_000,
  /** How long an item may wait in PostgreSQL before the queue is checked for it. */
  queuedAfterMs: 2 * 60_000,
  /** How long a Transporter may be silent before its running items are failed (its heartbeat is every 10 s). */
  goneAfterMs: 5 * 60_000,
};

export interface ReconcileReport {
  requeued: string[];
  /** Items whose Transporter fell silent, noted in their log. */
  silent: string[];
  failed: Array<{ runVmId: string; reason: string }>;
  settled: string[];
}

export interface ReconcileDeps {
  db: Db;
  queue: WorkQueue;
  /** The live heartbeats in Redis (PostgreSQL's copy lags while the Director is down). */
  registry: Pick<TransporterRegistry, 'list'>;
  log: Logger;
  /** Live events to the consoles (a silent Transporter's note appears on the run's page at once). */
  publish?: (event: RunEvent) => void;
  now?: Date;
  limits?: Partial<typeof RECONCILE_LIMITS>;
}

export async function reconcileTick(deps: ReconcileDeps): Promise<ReconcileReport> {
  const { db, queue, log } = deps;
  const now = deps.now ?? new Date();
  const limits = { ...RECONCILE_LIMITS, ...deps.limits };
  const report: ReconcileReport = { requeued: [], silent: [], failed: [], settled: [] };
  /** Runs an item of which was failed here, with the (first) reason. */
  const runs = new Map<string, string>();
  const fail = async (item: { id: string; runId: string; status: 'queued' | 'running' }, reason: string) => {
    // Only if nothing moved it on meanwhile.
    const { count } = await db.runVm.updateMany({ where: { id: item.id, status: item.status }, data: { status: 'failed', phase: 'failed', error: reason, finishedAt: now } });
    if (count !== 1) return;
    report.failed.push({ runVmId: item.id, reason });
    if (!runs.has(item.runId)) runs.set(item.runId, reason);
    log.warn({ runVmId: item.id, runId: item.runId }, reason);
  };

  const waiting = await db.runVm.findMany({
    where: { status: 'queued', run: { createdAt: { lt: new Date(now.getTime() - limits.queuedAfterMs) }, status: { in: ['queued', 'running'] } } },
    select: { id: true, runId: true, vmName: true, run: { select: { kind: true } } },
  });
  for (const item of waiting) {
    const state = await queue.state(item.id);
    if (state === null) {
      if (item.run.kind === 'backup') await queue.enqueueBackupVm({ runVmId: item.id });
      else if (item.run.kind === 'restore' || item.run.kind === 'drill') await queue.enqueueRestore({ runVmId: item.id });
      else await queue.enqueueMaintenance({ runVmId: item.id });
      report.requeued.push(item.id);
      log.warn({ runVmId: item.id, runId: item.runId, vm: item.vmName }, 'run item was recorded but never queued (the Director stopped in between?): queued it now');
    } else if (state === 'completed' || state === 'failed') {
      await fail({ ...item, status: 'queued' }, `the work queue ${state === 'failed' ? 'gave up on' : 'finished'} this item without a Transporter recording a result`);
    }
  }

  const cutoff = new Date(now.getTime() - limits.goneAfterMs);
  const silentCutoff = new Date(now.getTime() - limits.silentAfterMs);
  const running = await db.runVm.findMany({ where: { status: 'running' }, select: { id: true, runId: true, transporterId: true, transporterLostAt: true, phase: true } });
  if (running.length > 0) {
    const transporters = new Map((await deps.registry.list()).map((t) => [t.id, t]));
    for (const item of running) {
      const t = item.transporterId ? transporters.get(item.transporterId) : undefined;
      const heard = t?.lastHeartbeat ? new Date(t.lastHeartbeat) : null;
      if (heard && heard >= silentCutoff) continue;
      if (heard && heard >= cutoff) {
        if (item.transporterLostAt || !item.transporterId) continue;
        const message = `Transporter ${t!.name} stopped responding at ${heard.toISOString()} (its last heartbeat) while this item was at ${item.phase}; the work will be taken over when a Transporter picks it up again (the item fails if none has within ${Math.round(limits.goneAfterMs / 60_000)} minutes)`;
        const entry = JSON.stringify([{ at: now.toISOString(), level: 'warn', message }]);
        // Once per silence: only while the same Transporter still holds the item and nothing noted it yet.
        const noted = await db.$executeRaw`UPDATE run_vms SET transporter_lost_at = ${heard}, log = log || ${entry}::jsonb WHERE id = ${item.id}::uuid AND status = 'running' AND transporter_id = ${item.transporterId} AND transporter_lost_at IS NULL`;
        if (noted === 1) {
          report.silent.push(item.id);
          log.warn({ runVmId: item.id, runId: item.runId, transporterId: item.transporterId }, message);
          deps.publish?.({ type: 'run.log', runId: item.runId, runVmId: item.id, level: 'warn', message });
        }
        continue;
      }
      const who = t ? `Transporter ${t.name}` : `the Transporter that took it (${item.transporterId ?? 'unknown'})`;
      const since = heard ? `since ${heard.toISOString()}` : 'at all';
      await fail({ ...item, status: 'running' }, `${who} has not been heard from ${since} while this item was at ${item.phase}; what it left in vSphere is cleaned up by its orphan sweep when it starts, or by another Transporter's once it has been silent 10 minutes`);
    }
  }

  for (const [runId, reason] of runs) {
    const status = settledRunStatus((await db.runVm.findMany({ where: { runId }, select: { status: true } })).map((i) => i.status));
    if (!status) continue;
    const { count } = await db.jobRun.updateMany({ where: { id: runId, finishedAt: null }, data: { status, finishedAt: now, ...(status === 'failed' ? { error: reason } : {}) } });
    if (count === 1) report.settled.push(runId);
  }
  return report;
}
