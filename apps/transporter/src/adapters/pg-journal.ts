import type { Db } from '@vaultline/db';
import type { CleanupJournal, CleanupKind, CleanupRecord } from '../backup/journal.ts';

/** A Transporter silent this long is presumed gone; its vSphere leftovers are adopted. */
const ADOPT_AFTER_MS = 10 * 60_000;

/**
 * The cleanup journal in Postgres (table cleanup_journal); each write is its
 * own committed statement. pending() returns this Transporter's rows, plus the
 * vSphere-side rows (snapshots, attached disks) of Transporters that stopped
 * heartbeating long ago, so a Transporter that never comes back still gets its
 * mess cleaned. Local rows (mounts, open devices) of another machine are left.
 */
export function pgJournal(db: Db, transporterId: string, now: () => number = Date.now): CleanupJournal {
  return {
    async add(kind: CleanupKind, target, ctx) {
      const row = await db.cleanupEntry.create({
        data: { kind, transporterId, target: target as object, runVmId: ctx.runVmId ?? null, vcenterId: ctx.vcenterId ?? null },
      });
      return row.id;
    },
    async update(id, target) {
      await db.cleanupEntry.update({ where: { id }, data: { target: target as object } });
    },
    async resolve(id) {
      await db.cleanupEntry.update({ where: { id }, data: { resolvedAt: new Date() } });
    },
    async failed(id, error) {
      await db.cleanupEntry.update({ where: { id }, data: { attempts: { increment: 1 }, lastError: error.slice(0, 2000) } });
    },
    async pending(): Promise<CleanupRecord[]> {
      const gone = await db.transporter.findMany({
        where: { id: { not: transporterId }, OR: [{ lastHeartbeat: null }, { lastHeartbeat: { lt: new Date(now() - ADOPT_AFTER_MS) } }] },
        select: { id: true },
      });
      const rows = await db.cleanupEntry.findMany({
        where: {
          resolvedAt: null,
          OR: [{ transporterId }, { transporterId: { in: gone.map((g) => g.id) }, kind: { in: ['snapshot', 'disk_attach', 'restore_vm'] } }],
        },
        orderBy: { createdAt: 'asc' },
      });
      return rows.map((r) => ({ id: r.id, kind: r.kind, target: r.target as Record<string, unknown>, attempts: r.attempts, runVmId: r.runVmId, vcenterId: r.vcenterId }));
    },
  };
}
