/**
 * The file-restore journal in Postgres (table flr_journal); each write is its own committed statement.
 * Rows are signed with the Director's local journal.key (never in the database); pending() refuses —
 * marks, logs and leaves for the notifier to report, once — every row of this host whose MAC is missing
 * or wrong, and returns only the others. Only the host that wrote a row ever undoes it.
 */
import { randomUUID } from 'node:crypto';
import { journalMac, journalMacValid } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { FlrJournal, FlrJournalRow, FlrLayer } from './journal.ts';

interface SignedFields {
  id: string;
  sessionId: string;
  layer: string;
  host: string;
  ownerPid: number;
  ownerStart: string;
  createdAt: Date;
  target: unknown;
}

const fields = (r: SignedFields) => [r.id, r.sessionId, r.layer, r.host, r.ownerPid, r.ownerStart, r.createdAt, r.target];

export function pgFlrJournal(db: Db, key: Buffer, opts: { log?: Logger } = {}): FlrJournal {
  const refuse = async (id: string, reason: string) => {
    const r = await db.flrJournalEntry.updateMany({ where: { id, refusedAt: null, resolvedAt: null }, data: { refusedAt: new Date(), refusal: reason.slice(0, 2000) } });
    if (r.count) opts.log?.error({ journalRow: id, reason }, 'file restore journal: refused a row; nothing was undone for it (reported to the operator)');
  };
  return {
    async add(sessionId, layer, target, owner) {
      const row: SignedFields = { id: randomUUID(), sessionId, layer, host: owner.host, ownerPid: owner.pid, ownerStart: owner.start, createdAt: new Date(), target };
      await db.flrJournalEntry.create({ data: { ...row, target: target as object, mac: journalMac(key, 'flr_journal', fields(row)) } });
      return row.id;
    },
    async update(id, target) {
      // Re-signed only over what verifies now: a row changed behind our back stays unverifiable.
      const r = await db.flrJournalEntry.findUniqueOrThrow({ where: { id } });
      if (!journalMacValid(key, 'flr_journal', fields(r), r.mac)) {
        await refuse(id, 'the row was changed by someone else (its MAC does not verify)');
        throw new Error(`file restore journal row ${id} was changed by someone else; refused`);
      }
      const done = await db.flrJournalEntry.updateMany({ where: { id, mac: r.mac }, data: { target: target as object, mac: journalMac(key, 'flr_journal', fields({ ...r, target })) } });
      if (done.count !== 1) throw new Error(`file restore journal row ${id} changed while it was being updated`);
    },
    async resolve(id) {
      await db.flrJournalEntry.update({ where: { id }, data: { resolvedAt: new Date() } });
    },
    async failed(id, error) {
      await db.flrJournalEntry.update({ where: { id }, data: { attempts: { increment: 1 }, lastError: error.slice(0, 2000) } });
    },
    refuse,
    async pending(host): Promise<FlrJournalRow[]> {
      const rows = await db.flrJournalEntry.findMany({ where: { resolvedAt: null, refusedAt: null, host }, orderBy: { createdAt: 'asc' } });
      const out: FlrJournalRow[] = [];
      for (const r of rows) {
        if (!journalMacValid(key, 'flr_journal', fields(r), r.mac)) {
          await refuse(r.id, r.mac ? 'its MAC is wrong: the row was not written by this host\'s Director (or was changed since)' : 'it carries no MAC: written before journal signing, or not by Vaultline');
          continue;
        }
        out.push({
          id: r.id,
          sessionId: r.sessionId,
          layer: r.layer as FlrLayer,
          target: r.target as Record<string, unknown>,
          owner: { host: r.host, pid: r.ownerPid, start: r.ownerStart },
          attempts: r.attempts,
          createdAt: r.createdAt,
        });
      }
      return out;
    },
  };
}
