import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadJournalKey } from '../src/journal-trust.ts';
import { createFileOnce } from '../src/key-file.ts';
import { loadSecretKey } from '../src/secret-key.ts';

// Many processes may start at once on one data dir (Director, Transporters, the CLI); each must get the
// same key, and none may ever read the key file while it is still empty.
describe('key files made at first start', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'vaultline-keys-'));
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const ROUNDS = 40;
  const STARTERS = 12;

  it('journal.key: every concurrent starter gets the one key, 0600, and no temporary file is left', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const dir = path.join(tmp, `journal-${round}`);
      const keys = await Promise.all(Array.from({ length: STARTERS }, () => loadJournalKey(dir)));
      expect(keys[0]!.length).toBe(32);
      for (const key of keys) expect(key.equals(keys[0]!)).toBe(true);
      expect((await readFile(path.join(dir, 'journal.key'))).equals(keys[0]!)).toBe(true);
      expect((await stat(path.join(dir, 'journal.key'))).mode & 0o777).toBe(0o600);
      expect(await readdir(dir)).toEqual(['journal.key']);
    }
  });

  it('secret.key: every concurrent starter gets the one key, 0600, and no temporary file is left', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const dir = path.join(tmp, `secret-${round}`);
      const keys = await Promise.all(Array.from({ length: STARTERS }, () => loadSecretKey(dir, undefined)));
      expect(keys[0]!.length).toBe(32);
      for (const key of keys) expect(key.equals(keys[0]!)).toBe(true);
      expect((await readFile(path.join(dir, 'secret.key'), 'utf8')).trim()).toBe(keys[0]!.toString('hex'));
      expect((await stat(path.join(dir, 'secret.key'))).mode & 0o777).toBe(0o600);
      expect(await readdir(dir)).toEqual(['secret.key']);
    }
  });

  it('createFileOnce never replaces a file that exists', async () => {
    const file = path.join(tmp, 'once');
    expect(await createFileOnce(file, 'first')).toBe(true);
    expect(await createFileOnce(file, 'second')).toBe(false);
    expect(await readFile(file, 'utf8')).toBe('first');
    expect((await readdir(tmp)).filter((n) => n.startsWith('.once'))).toEqual([]);
  });

  it('a damaged key is reported, not replaced', async () => {
    const dir = path.join(tmp, 'damaged');
    await loadJournalKey(dir);
    await rm(path.join(dir, 'journal.key'));
    expect(await createFileOnce(path.join(dir, 'journal.key'), Buffer.alloc(5))).toBe(true);
    await expect(loadJournalKey(dir)).rejects.toThrow(/damaged: expected 32 bytes, found 5/);
    expect((await readFile(path.join(dir, 'journal.key'))).length).toBe(5);
  });
});
