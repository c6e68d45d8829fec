/**
 * First start: creates the `admin` user with a random password that must be
 * changed at first login. The password is never logged: it is written once to
 * <data dir>/first-login.txt (mode 0600), which `npm start` prints, and the file
 * is deleted as soon as the password is changed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '@vaultline/db';
import { generatePassword, hashPassword } from '../auth/passwords.ts';

export const FIRST_LOGIN_FILE = 'first-login.txt';

export async function ensureFirstAdmin(db: Db, dataDir: string): Promise<{ created: boolean; password?: string }> {
  if ((await db.user.count()) > 0) return { created: false };
  const password = generatePassword();
  await db.user.create({ data: { username: 'admin', role: 'admin', passwordHash: await hashPassword(password), mustChangePassword: true } });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dataDir, FIRST_LOGIN_FILE), `username: admin\npassword: ${password}\n`, { mode: 0o600 });
  return { created: true, password };
}

export async function forgetFirstLogin(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, FIRST_LOGIN_FILE), { force: true });
}

/** The appliance key that seals secrets at rest: from the environment, or generated once into the data dir. */
export async function loadSecretKey(dataDir: string, fromEnv: string | undefined): Promise<Buffer> {
  if (fromEnv) {
    const key = /^[0-9a-fA-F]{64}$/.test(fromEnv) ? Buffer.from(fromEnv, 'hex') : Buffer.from(fromEnv, 'base64');
    if (key.length !== 32) throw new Error('VAULTLINE_SECRET_KEY must be 32 bytes, as 64 hex characters or base64');
    return key;
  }
  const file = path.join(dataDir, 'secret.key');
  try {
    const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'hex');
    if (key.length === 32) return key;
    throw new Error(`${file} is damaged: expected 64 hex characters`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  await writeFile(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}
