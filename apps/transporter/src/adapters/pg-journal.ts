import { randomUUID } from 'node:crypto';
import { journalMac, journalMacValid } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { CleanupJournal, CleanupKind, CleanupRecord } from '@vaultline/core';

/** A Transporter silent this long is presumed gone; its vSphere leftovers are adopted. */
const ADOPT_AFTER_MS = 10 * 60_000;
const VSPHERE_KINDS: CleanupKind[] = ['snapshot', 'disk_attach', 'restore_vm'];

interface SignedFields {
  id: string;
  kind: string;
  transporterId: string;
  runVmId: string | null;
  vcenterId: string | null;
  createdAt: Date;
  target: unknown;
}

const fields = (r: SignedFields) => [r.id, r.kind, r.transporterId, r.runVmId, r.vcenterId, r.createdAt, r.target];

/**
 * The cleanup journal in Postgres (table cleanup_journal); each write is its
 * own committed statement. pending() returns this Transporter's rows, plus the
 * vSphere-side rows (snapshots, attached disks) of Transporters that stopped
 * heartbeating long ago, so a Transporter that never comes back still gets its
 * mess cleaned. Local rows (mounts, open devices) of another machine are left.
 *
 * Every row is signed with `key` (the local journal.key). A row of this
 * Transporter whose MAC is missing or wrong is refused: marked, logged and
 * left for the notifier to report, once. A silent Transporter's row is adopted
 * only when it verifies with our key (a Transporter sharing this data dir);
 * otherwise it is not ours to judge (a remote Transporter has its own key) and
 * is left alone — the tag scan of the sweep still finds its snapshots in vCenter.
 */
export function pgJournal(db: Db, transporterId: string, key: Buffer, opts: { log?: Logger; now?: () => number } = {}): CleanupJournal {
  const now = opts.now ?? Date.now;
  const refuse = async (id: string, reason: string) => {
    const r = await db.cleanupEntry.updateMany({ where: { id, refusedAt: null, resolvedAt: null }, data: { refusedAt: new Date(), refusal: reason.slice(0, 2000) } });
    if (r.count) opts.log?.error({ journalRow: id, reason }, 'cleanup journal: refused a row; nothing was undone for it (reported to the operator)');
  };
  return {
    async add(kind: CleanupKind, target, ctx) {
      const row: SignedFields = { id: randomUUID(), kind, transporterId, runVmId: ctx.runVmId ?? null, vcenterId: ctx.vcenterId ?? null, createdAt: new Date(now()), target };
      await db.cleanupEntry.create({ data: { ...row, kind, target: target as object, mac: journalMac(key, 'cleanup_journal', fields(row)) } });
      return row.id;
    },
    async update(id, target) {
      // Re-signed only over what verifies now: a row changed behind our back stays unverifiable.
      const r = await db.cleanupEntry.findUniqueOrThrow({ where: { id } });
      if (r.transporterId !== transporterId || !journalMacValid(key, 'cleanup_journal', fields(r), r.mac)) {
        await refuse(id, 'the row was changed by someone else (its MAC does not verify)');
        throw new Error(`cleanup journal row ${id} was changed by someone else; refused`);
      }
      const mac = journalMac(key, 'cleanup_journal', fields({ ...r, target }));
      const done = await db.cleanupEntry.updateMany({ where: { id, mac: r.mac }, data: { target: target as object, mac } });
      if (done.count !== 1) throw new Error(`cleanup journal row ${id} changed while it was being updated`);
    },
    async resolve(id) {
      await db.cleanupEntry.update({ where: { id }, data: { resolvedAt: new Date() } });
    },
    async failed(id, error) {
      await db.cleanupEntry.update({ where: { id }, data: { attempts: { increment: 1 }, lastError: error.slice(0, 2000) } });
    },
    refuse,
    async pending(): Promise<CleanupRecord[]> {
      const gone = await db.transporter.findMany({
        where: { id: { not: transporterId }, OR: [{ lastHeartbeat: null }, { lastHeartbeat: { lt: new Date(now() - ADOPT_AFTER_MS) } }] },
        select: { id: true },
      });
      const rows = await db.cleanupEntry.findMany({
        where: {
          resolvedAt: null,
          refusedAt: null,
          OR: [{ transporterId }, { transporterId: { in: gone.map((g) => g.id) }, kind: { in: VSPHERE_KINDS } }],
        },
        orderBy: { createdAt: 'asc' },
      });
      const out: CleanupRecord[] = [];
      for (const r of rows) {
        if (!journalMacValid(key, 'cleanup_journal', fields(r), r.mac)) {
          if (r.transporterId === transporterId) await refuse(r.id, r.mac ? 'its MAC is wrong: the row was not written by this Transporter (or was changed since)' : 'it carries no MAC: written before journal signing, or not by Vaultline');
          continue;
        }
        out.push({ id: r.id, kind: r.kind, target: r.target as Record<string, unknown>, attempts: r.attempts, runVmId: r.runVmId, vcenterId: r.vcenterId });
      }
      return out;
    },
  };
}
