/**
 * The cleanup journal: a durable row is written BEFORE each snapshot, disk
 * attach or LUN mount, and resolved only after its undo succeeded. Whatever a
 * killed process leaves unresolved is replayed by the orphan sweep.
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
  pending(): Promise<CleanupRecord[]>;
}
