import type { Db } from '@vaultline/db';
import type { CleanupJournal, CleanupKind, CleanupRecord } from '../backup/journal.ts';

/** The cleanup journal in Postgres (table cleanup_journal); each write is its own committed statement. */
export function pgJournal(db: Db, transporterId: string): CleanupJournal {
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
      const rows = await db.cleanupEntry.findMany({ where: { transporterId, resolvedAt: null }, orderBy: { createdAt: 'asc' } });
      return rows.map((r) => ({ id: r.id, kind: r.kind, target: r.target as Record<string, unknown>, attempts: r.attempts, runVmId: r.runVmId, vcenterId: r.vcenterId }));
    },
  };
}
