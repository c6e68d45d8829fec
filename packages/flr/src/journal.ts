/**
 * The file-restore journal: a durable row is written BEFORE each layer of a
 * browse session exists (the session's directory, its NBD server, each nbdfuse
 * mount, loop device and filesystem mount) and resolved only after its undo
 * succeeded. What a killed Director leaves unresolved is undone by the sweep
 * at the next start (sweep.ts). Rows carry their owner (host, pid, process
 * start time), so a sweep never touches a live Director's sessions.
 *
 * The Postgres journal signs each row with the Director's local journal.key
 * and hands out only rows whose MAC verifies; the others are refused (marked,
 * logged, reported once). refuse() is for a signed row the sweep still will
 * not act on (a path outside the FLR root, a process that is not ours).
 */
import type { Owner } from './system.ts';

export type FlrLayer = 'session' | 'nbd_server' | 'fuse' | 'loop' | 'mount';

export interface FlrJournalRow {
  id: string;
  sessionId: string;
  layer: FlrLayer;
  target: Record<string, unknown>;
  owner: Owner;
  attempts: number;
  createdAt: Date;
}

export interface FlrJournal {
  add(sessionId: string, layer: FlrLayer, target: Record<string, unknown>, owner: Owner): Promise<string>;
  update(id: string, target: Record<string, unknown>): Promise<void>;
  resolve(id: string): Promise<void>;
  failed(id: string, error: string): Promise<void>;
  /** Never act on this row again; the reason is stored and reported to the operator. */
  refuse(id: string, reason: string): Promise<void>;
  /** Unresolved rows recorded on `host`, oldest first. */
  pending(host: string): Promise<FlrJournalRow[]>;
}
