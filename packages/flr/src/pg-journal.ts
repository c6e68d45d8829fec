/** The file-restore journal in Postgres (table flr_journal); each write is its own committed statement. */
import type { Db } from '@vaultline/db';
import type { FlrJournal, FlrJournalRow, FlrLayer } from './journal.ts';

export function pgFlrJournal(db: Db): FlrJournal {
  return {
    async add(sessionId, layer, target, owner) {
      const row = await db.flrJournalEntry.create({
        data: { sessionId, layer, target: target as object, host: owner.host, ownerPid: owner.pid, ownerStart: owner.start },
      });
      return row.id;
    },
    async update(id, target) {
      await db.flrJournalEntry.update({ where: { id }, data: { target: target as object } });
    },
    async resolve(id) {
      await db.flrJournalEntry.update({ where: { id }, data: { resolvedAt: new Date() } });
    },
    async failed(id, error) {
      await db.flrJournalEntry.update({ where: { id }, data: { attempts: { increment: 1 }, lastError: error.slice(0, 2000) } });
    },
    async pending(host): Promise<FlrJournalRow[]> {
      const rows = await db.flrJournalEntry.findMany({ where: { resolvedAt: null, host }, orderBy: { createdAt: 'asc' } });
      return rows.map((r) => ({
        id: r.id,
        sessionId: r.sessionId,
        layer: r.layer as FlrLayer,
        target: r.target as Record<string, unknown>,
        owner: { host: r.host, pid: r.ownerPid, start: r.ownerStart },
        attempts: r.attempts,
        createdAt: r.createdAt,
      }));
    },
  };
}
