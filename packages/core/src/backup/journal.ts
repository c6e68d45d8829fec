/**
 * The cleanup journal: a durable row is written BEFORE each snapshot, disk
 * attach or LUN mount, and resolved only after its undo succeeded. Whatever a
 * killed process leaves unresolved is replayed by the orphan sweep.
 *
 * Rows are signed (HMAC with the Transporter's local journal.key) and pending()
 * returns only rows whose MAC holds; the others are refused (marked, logged and
 * reported once) and never acted on. refuse() is for a signed row the sweep will
 * not act on either (a path outside the mount dir, an unexpected device).
 */
export type CleanupKind = 'snapshot' | 'disk_attach' | 'device_open' | 'lun_mount' | 'restore_vm';

export interface CleanupRecord {
  id: string;
  kind: CleanupKind;
  target: Record<string, unknown>;
  attempts: number;
  runVmId: string | null;
  vcenterId: string | null;
}

export interface CleanupJournal {
  add(kind: CleanupKind, target: Record<string, unknown>, ctx: { runVmId?: string; vcenterId?: string }): Promise<string>;
  update(id: string, target: Record<string, unknown>): Promise<void>;
  resolve(id: string): Promise<void>;
  failed(id: string, error: string): Promise<void>;
  /** Never act on this row again; the reason is stored and reported to the operator. */
  refuse(id: string, reason: string): Promise<void>;
  pending(): Promise<CleanupRecord[]>;
}
