import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';

export interface AuditEntry {
  actor: string;
  action: string;
  subject?: string;
  detail?: Record<string, unknown>;
  ip?: string;
}

export interface AuditLog {
  record(entry: AuditEntry): Promise<void>;
}

/** Audit events go to Postgres; if it is down the event goes to the log instead of failing the request. */
export function createAuditLog(db: Db, log: Logger): AuditLog {
  return {
    async record(entry) {
      try {
        await db.auditEvent.create({
          data: { actor: entry.actor, action: entry.action, subject: entry.subject ?? null, detail: (entry.detail ?? {}) as object, ip: entry.ip ?? null },
        });
      } catch (err) {
        log.warn({ err, audit: entry }, 'audit event not stored');
      }
    },
  };
}
