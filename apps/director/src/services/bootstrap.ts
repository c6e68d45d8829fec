/**
 * First start: creates the `admin` user with a random password that must be
 * changed at first login. The password is never logged: it is written once to
 * <data dir>/first-login.txt (mode 0600), which `npm start` prints, and the file
 * is deleted as soon as the password is changed.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '@vaultline/db';
import { generatePassword, hashPassword, type PasswordCost } from '../auth/passwords.ts';

export const FIRST_LOGIN_FILE = 'first-login.txt';

export async function ensureFirstAdmin(db: Db, dataDir: string, cost?: PasswordCost): Promise<{ created: boolean; password?: string }> {
  if ((await db.user.count()) > 0) return { created: false };
  const password = generatePassword();
  await db.user.create({ data: { username: 'admin', role: 'admin', passwordHash: await hashPassword(password, cost), mustChangePassword: true } });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dataDir, FIRST_LOGIN_FILE), `username: admin\npassword: ${password}\n`, { mode: 0o600 });
  return { created: true, password };
}

export async function forgetFirstLogin(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, FIRST_LOGIN_FILE), { force: true });
}
