/**
 * The notifier. Postgres drives it, so nothing is lost across restarts and
 * several Directors never send twice:
 *   1. finished runs not yet claimed (finished within the last day) are claimed
 *      with a conditional update, and a delivery row is written for every
 *      enabled target whose filter matches (only targets that existed when the
 *      run finished: a new target is not flooded with history);
 *   2. cleanup journal rows that kept failing (3+ attempts) are claimed the
 *      same way: a leftover snapshot or attached disk is always worth a message;
 *   3. file-level restore journal rows the Director's sweep kept failing to undo
 *      (3+ attempts): a mount or loop device left on the Director's host;
 *      rows of either journal a sweep refused (MAC missing or wrong, a path or
 *      device that is not Vaultline's; journal-trust.ts) are claimed the same way;
 *   3b. restore points the ransomware signal marked (to every enabled target, like leftovers);
 *   4. due deliveries of enabled targets are leased, sent, and marked sent — or retried with
 *      backoff (1, 5, 15, 60 min) and given up after 5 attempts, logged.
 */
import { openSecret } from '@vaultline/config';
import { SECRET_LABELS } from '@vaultline/appliance';
import { EmailSettingsSchema } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { anomalyMessage, cleanupMessage, flrLeftoverMessage, runMessage, type Message } from './messages.ts';
import { deliver, type Target } from './senders.ts';

const BACKOFF_MIN = [1, 5, 15, 60];
const MAX_ATTEMPTS = 5;
const STUCK_ATTEMPTS = 3;

export interface NotifierDeps {
  db: Db;
  secretKey: Buffer;
  log: Logger;
  /** Base URL of the console for links in messages (VAULTLINE_PUBLIC_URL), if known. */
  consoleUrl?: string | null;
  now?: () => Date;
}

type TargetRow = NonNullable<Awaited<ReturnType<Db['notificationTarget']['findUnique']>>>;

export function matches(events: string, status: string): boolean {
  if (events === 'all') return ['succeeded', 'warning', 'failed', 'cancelled'].includes(status);
  if (events === 'failures') return status === 'failed';
  return status === 'failed' || status === 'warning';
}

export function targetOf(row: TargetRow, secretKey: Buffer): Target {
  return {
    name: row.name,
    kind: row.kind,
    url: row.url,
    email: row.email ? EmailSettingsSchema.parse(row.email) : null,
    secret: row.secretSealed ? openSecret(secretKey, SECRET_LABELS.notificationSecret, row.secretSealed) : null,
  };
}

async function messageFor(db: Db, kind: string, subjectId: string, consoleUrl: string | null): Promise<Message | null> {
  if (kind === 'cleanup') {
    const c = await db.cleanupEntry.findUnique({ where: { id: subjectId } });
    return c ? cleanupMessage({ ...c, target: c.target as Record<string, unknown> }) : null;
  }
  if (kind === 'flr') {
    const f = await db.flrJournalEntry.findUnique({ where: { id: subjectId } });
    return f ? flrLeftoverMessage({ ...f, target: f.target as Record<string, unknown> }) : null;
  }
  if (kind === 'anomaly') {
    const p = await db.restorePoint.findUnique({ where: { id: subjectId }, include: { repository: { select: { name: true } } } });
    return p ? anomalyMessage({ ...p, repository: p.repository.name }, consoleUrl) : null;
  }
  const r = await db.jobRun.findUnique({ where: { id: subjectId }, include: { vms: { orderBy: { vmName: 'asc' } }, job: { select: { name: true } }, drillJob: { select: { name: true } } } });
  return r ? runMessage({ ...r, jobName: r.job?.name ?? null, drillName: r.drillJob?.name ?? null }, consoleUrl) : null;
}

/** One pass: claim what is new, then send what is due. Returns the deliveries attempted. */
export async function notifyTick(deps: NotifierDeps): Promise<{ sent: number; failed: number }> {
  const { db } = deps;
  const now = deps.now?.() ?? new Date();
  const targets = await db.notificationTarget.findMany({ where: { enabled: true } });

  const runs = await db.$queryRaw<{ id: string; status: string; finished_at: Date }[]>`
    UPDATE job_runs SET notified_at = ${now}
    WHERE id IN (
      SELECT id FROM job_runs
      WHERE notified_at IS NULL AND finished_at IS NOT NULL AND finished_at > ${new Date(now.getTime() - 86_400_000)}
      ORDER BY finished_at LIMIT 200 FOR UPDATE SKIP LOCKED)
    RETURNING id, status::text AS status, finished_at`;
  // Due at this tick's clock (not the database's), so one clock decides everything here.
  const rows: { targetId: string; kind: string; subjectId: string; nextAttemptAt: Date }[] = [];
  for (const r of runs) {
    for (const t of targets) if (t.createdAt <= r.finished_at && matches(t.events, r.status)) rows.push({ targetId: t.id, kind: 'run', subjectId: r.id, nextAttemptAt: now });
  }
  const stuck = await db.$queryRaw<{ id: string }[]>`
    UPDATE cleanup_journal SET notified_at = ${now}
    WHERE resolved_at IS NULL AND notified_at IS NULL AND (attempts >= ${STUCK_ATTEMPTS} OR refused_at IS NOT NULL)
    RETURNING id`;
  for (const c of stuck) for (const t of targets) rows.push({ targetId: t.id, kind: 'cleanup', subjectId: c.id, nextAttemptAt: now });
  const flrStuck = await db.$queryRaw<{ id: string }[]>`
    UPDATE flr_journal SET notified_at = ${now}
    WHERE resolved_at IS NULL AND notified_at IS NULL AND (attempts >= ${STUCK_ATTEMPTS} OR refused_at IS NOT NULL)
    RETURNING id`;
  for (const f of flrStuck) for (const t of targets) rows.push({ targetId: t.id, kind: 'flr', subjectId: f.id, nextAttemptAt: now });
  // A ransomware-suspect restore point is always worth a message, whatever a target's run filter says.
  const anomalies = await db.$queryRaw<{ id: string }[]>`
    UPDATE restore_points SET anomaly_notified_at = ${now}
    WHERE ransomware_suspect AND anomaly_notified_at IS NULL
    RETURNING id`;
  for (const a of anomalies) for (const t of targets) rows.push({ targetId: t.id, kind: 'anomaly', subjectId: a.id, nextAttemptAt: now });
  if (rows.length) await db.notificationDelivery.createMany({ data: rows, skipDuplicates: true });

  let sent = 0;
  let failed = 0;
  const due = await db.notificationDelivery.findMany({ where: { status: 'pending', nextAttemptAt: { lte: now }, target: { enabled: true } }, include: { target: true }, orderBy: { createdAt: 'asc' }, take: 50 });
  for (const d of due) {
    // Lease it for a minute so another Director's tick does not send it too.
    const leased = await db.notificationDelivery.updateMany({ where: { id: d.id, status: 'pending', nextAttemptAt: d.nextAttemptAt }, data: { nextAttemptAt: new Date(now.getTime() + 60_000) } });
    if (leased.count !== 1) continue;
    try {
      const message = await messageFor(db, d.kind, d.subjectId, deps.consoleUrl ?? null);
      if (!message) {
        await db.notificationDelivery.update({ where: { id: d.id }, data: { status: 'failed', lastError: `the ${d.kind} it was about no longer exists` } });
        continue;
      }
      await deliver(targetOf(d.target, deps.secretKey), message, d.id);
      await db.notificationDelivery.update({ where: { id: d.id }, data: { status: 'sent', attempts: { increment: 1 }, sentAt: new Date(), lastError: null } });
      sent += 1;
    } catch (err) {
      const attempts = d.attempts + 1;
      const giveUp = attempts >= MAX_ATTEMPTS;
      const message = (err as Error).message;
      await db.notificationDelivery.update({
        where: { id: d.id },
        data: { attempts, lastError: message.slice(0, 2000), status: giveUp ? 'failed' : 'pending', nextAttemptAt: new Date(now.getTime() + (BACKOFF_MIN[attempts - 1] ?? 60) * 60_000) },
      });
      failed += 1;
      deps.log[giveUp ? 'error' : 'warn']({ delivery: d.id, target: d.target.name, attempts }, giveUp ? `notification given up: ${message}` : `notification failed, will retry: ${message}`);
    }
  }
  return { sent, failed };
}

export function startNotifier(deps: NotifierDeps & { intervalMs?: number }): { stop(): void } {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    void notifyTick(deps)
      .catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'notifier tick failed'))
      .finally(() => {
        running = false;
      });
  }, deps.intervalMs ?? 10_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
