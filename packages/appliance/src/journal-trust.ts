/**
 * What the root cleanup sweeps trust before they unmount, detach, kill or
 * unlink anything a journal row names (docs/ARCHITECTURE.md, "Journal trust"):
 *
 * - every journal row carries an HMAC-SHA256 over its meaningful fields, made
 *   with a key that exists only in the writing process's data dir
 *   (<data dir>/journal.key, 32 random bytes, mode 0600, never in the database
 *   or the environment); a row whose MAC is missing or wrong is refused;
 * - every path a row names must resolve (realpath, symlinks followed) under the
 *   directory that kind of resource lives in;
 * - every device must match the pattern of its kind once resolved.
 *
 * Both the Transporter (cleanup_journal) and the Director's file-level restore
 * (flr_journal) use this one module.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { createFileOnce } from './key-file.js';

/** A journal row the sweep must not act on; `message` says why (it is stored and reported). */
export class JournalTrustError extends Error {
  override name = 'JournalTrustError';
}

export const JOURNAL_KEY_FILE = 'journal.key';

/** The local journal key: <dataDir>/journal.key, created (0600, in a 0700 dir) at first use. */
export async function loadJournalKey(dataDir: string): Promise<Buffer> {
  const file = path.join(dataDir, JOURNAL_KEY_FILE);
  for (;;) {
    try {
      const key = await readFile(file);
      if (key.length !== 32) throw new JournalTrustError(`${file} is damaged: expected 32 bytes, found ${key.length}`);
      const mode = (await stat(file)).mode & 0o777;
      if (mode & 0o077) await chmod(file, 0o600);
      return key;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    // Two processes starting at once: one creates the key, the other reads the winner's.
    if (await createFileOnce(file, key)) return key;
  }
}

/** JSON with object keys sorted at every level (Postgres jsonb reorders them), after a JSON round trip. */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    return v;
  };
  const plain = JSON.stringify(value);
  return plain === undefined ? 'null' : JSON.stringify(sort(JSON.parse(plain)));
}

/**
 * HMAC-SHA256 (hex) of a row: `table` names the journal (a row of one table
 * cannot be replayed into the other), `fields` are its meaningful fields in a
 * fixed order; Dates are signed as ISO strings, objects canonically.
 */
export function journalMac(key: Buffer, table: 'cleanup_journal' | 'flr_journal', fields: unknown[]): string {
  const norm = fields.map((f) => (f instanceof Date ? f.toISOString() : f === undefined ? null : f));
  return createHmac('sha256', key).update(canonicalJson(['vaultline-journal-v1', table, ...norm])).digest('hex');
}

export function journalMacValid(key: Buffer, table: 'cleanup_journal' | 'flr_journal', fields: unknown[], mac: string | null | undefined): boolean {
  if (typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return false;
  return timingSafeEqual(Buffer.from(journalMac(key, table, fields), 'hex'), Buffer.from(mac, 'hex'));
}

/**
 * The real path of `p` as far as it can be resolved: symlinks are followed;
 * components that do not exist (or cannot be stat'ed, as a dead FUSE mount
 * point: ENOTCONN) are kept as written — those cannot be symlinks. Anything
 * else (a symlink loop, no permission) is not ours to act on.
 */
async function resolvedPath(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const parent = path.dirname(p);
    if (parent === p || !['ENOENT', 'ENOTCONN', 'ENOTDIR', 'EIO'].includes(code)) throw new JournalTrustError(`${p} cannot be resolved (${code || (err as Error).message})`);
    return path.join(await resolvedPath(parent), path.basename(p));
  }
}

/**
 * `p` resolved (realpath) when it lies strictly under `dir` (itself resolved),
 * else JournalTrustError. Relative paths, `..` tricks and symlinks leading out
 * are refused. `what` names the thing for the message.
 */
export async function pathUnder(p: unknown, dir: string, what: string): Promise<string> {
  if (typeof p !== 'string' || !path.isAbsolute(p) || p.includes('\0')) throw new JournalTrustError(`${what} ${JSON.stringify(p)} is not an absolute path`);
  const base = await resolvedPath(path.resolve(dir));
  const inside = (q: string, d: string) => {
    const rel = path.relative(d, q);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  // As written ('..' resolved lexically), under the directory as configured or as resolved.
  if (!inside(path.resolve(p), path.resolve(dir)) && !inside(path.resolve(p), base)) throw new JournalTrustError(`${what} ${p} is not under ${dir}`);
  const real = await resolvedPath(path.resolve(p));
  if (!inside(real, base)) throw new JournalTrustError(`${what} ${p} resolves to ${real}, outside ${dir}`);
  return real;
}

/** Device patterns the sweeps accept, by kind. */
export const DEVICE_PATTERNS = {
  loop: /^\/dev\/loop\d+$/,
  nbd: /^\/dev\/nbd\d+$/,
  /** A SCSI disk as the by-id links resolve for a LUN or a hot-added disk (or a loop device: the lab's stand-in). */
  scsi: /^\/dev\/(?:sd[a-z]+|loop\d+)$/,
} as const;

/** `device` resolved (realpath) when it matches `pattern`, else JournalTrustError. */
export async function deviceMatching(device: unknown, pattern: RegExp, what: string): Promise<string> {
  if (typeof device !== 'string' || !path.isAbsolute(device)) throw new JournalTrustError(`${what} ${JSON.stringify(device)} is not a device path`);
  const real = await resolvedPath(path.resolve(device));
  if (!pattern.test(real)) throw new JournalTrustError(`${what} ${device}${real === device ? '' : ` (${real})`} is not a device Vaultline uses`);
  return real;
}

/** The command line of a process (/proc/<pid>/cmdline), [] when it is gone. */
export async function commandLine(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  } catch {
    return [];
  }
}
