/**
 * A session's layers, each journaled before it exists and undone newest first
 * (shared by the Director's browse sessions and the helper's mount sessions).
 */
import type { FlrJournal, FlrLayer } from './journal.ts';
import { FlrError, type Owner } from './system.ts';

export interface Layer {
  /** The journal row, or null for a layer whose leftovers another process sweeps (the helper's side of a session). */
  row: string | null;
  layer: FlrLayer | 'helper';
  undo: () => Promise<void>;
}

/** Journals `layer`, then acts; the undo is registered before acting, so a failed act is undone too. */
export async function journaled<T>(
  journal: FlrJournal,
  layers: Layer[],
  sessionId: string,
  owner: Owner,
  layer: FlrLayer,
  target: Record<string, unknown>,
  act: (row: string) => Promise<T>,
  undo: (result: T | undefined) => Promise<void>,
): Promise<T> {
  const row = await journal.add(sessionId, layer, target, owner);
  const done: { result?: T } = {};
  layers.push({ row, layer, undo: () => undo(done.result) });
  done.result = await act(row);
  return done.result;
}

/** Undoes every layer, newest first; a layer whose undo fails stays journaled for the sweep. */
export async function teardown(journal: FlrJournal, layers: Layer[], sessionId: string): Promise<void> {
  const failures: string[] = [];
  for (const layer of [...layers].reverse()) {
    try {
      await layer.undo();
      if (layer.row) await journal.resolve(layer.row);
    } catch (err) {
      failures.push(`${layer.layer}: ${(err as Error).message}`);
      if (layer.row) await journal.failed(layer.row, (err as Error).message).catch(() => undefined);
    }
  }
  layers.length = 0;
  if (failures.length) throw new FlrError(`closing browse session ${sessionId} left: ${failures.join('; ')}`);
}

/** What `closeOnce` needs of a session, in the Director's session table and in the helper's mount table alike. */
export interface Closable {
  id: string;
  layers: Layer[];
  streams: Set<{ destroy(err?: Error): void }>;
  closing: Promise<void> | null;
}

/**
 * Closes `s` once, however many callers ask: cuts its open streams (a mount with an open file cannot
 * be unmounted), tears its layers down, and calls `forget` whether that succeeded or not (what a failed
 * teardown left stays journaled for the sweep); `closed` runs after a clean teardown.
 */
export function closeOnce(journal: FlrJournal, s: Closable, forget: () => void, closed: () => void): Promise<void> {
  s.closing ??= (async () => {
    for (const st of s.streams) st.destroy(new Error('the browse session was closed'));
    try {
      await teardown(journal, s.layers, s.id);
    } finally {
      forget();
    }
    closed();
  })();
  return s.closing;
}
