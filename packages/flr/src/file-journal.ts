/**
 * The file-restore journal in a directory of the helper's own (it has no
 * database): one JSON file per row, written to a temporary name, flushed and
 * renamed, so a row is either complete or absent after a crash. A resolved
 * row's file is removed; a refused one stays, marked, for an operator to see.
 * No MAC: the directory is the helper's own (0700), not a shared database.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { FlrJournal, FlrJournalRow } from './journal.ts';

interface Stored extends Omit<FlrJournalRow, 'createdAt'> {
  createdAt: string;
  lastError?: string;
  /** Set when the sweep would not act on the row (a path outside the helper's root, a process not ours). */
  refusal?: string;
}

export function fileFlrJournal(dir: string): FlrJournal {
  const file = (id: string) => path.join(dir, `${id}.json`);
  const write = async (row: Stored) => {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `.${row.id}.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(row));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file(row.id));
  };
  const read = async (id: string) => JSON.parse(await readFile(file(id), 'utf8')) as Stored;
  return {
    async add(sessionId, layer, target, owner) {
      // Time-ordered names: pending() lists rows oldest first, as the sweep expects.
      const id = `${Date.now().toString().padStart(15, '0')}-${randomUUID()}`;
      await write({ id, sessionId, layer, target, owner, attempts: 0, createdAt: new Date().toISOString() });
      return id;
    },
    async update(id, target) {
      await write({ ...(await read(id)), target });
    },
    async resolve(id) {
      await unlink(file(id)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    },
    async failed(id, error) {
      const row = await read(id);
      await write({ ...row, attempts: row.attempts + 1, lastError: error.slice(0, 2000) });
    },
    async refuse(id, reason) {
      await write({ ...(await read(id)), refusal: reason.slice(0, 2000) });
    },
    async pending(host) {
      const names = (await readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)))).filter((n) => n.endsWith('.json')).sort();
      const rows: FlrJournalRow[] = [];
      for (const n of names) {
        const r = await read(n.slice(0, -'.json'.length)).catch(() => null);
        if (r && r.owner.host === host && r.refusal === undefined) rows.push({ id: r.id, sessionId: r.sessionId, layer: r.layer, target: r.target, owner: r.owner, attempts: r.attempts, createdAt: new Date(r.createdAt) });
      }
      return rows;
    },
  };
}
