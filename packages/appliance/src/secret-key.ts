import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createFileOnce } from './key-file.js';

/** The appliance key that seals secrets at rest: from the environment, or generated once into the data dir. */
export async function loadSecretKey(dataDir: string, fromEnv: string | undefined): Promise<Buffer> {
  if (fromEnv) {
    const key = /^[0-9a-fA-F]{64}$/.test(fromEnv) ? Buffer.from(fromEnv, 'hex') : Buffer.from(fromEnv, 'base64');
    if (key.length !== 32) throw new Error('VAULTLINE_SECRET_KEY must be 32 bytes, as 64 hex characters or base64');
    return key;
  }
  const file = path.join(dataDir, 'secret.key');
  for (;;) {
    try {
      const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'hex');
      if (key.length === 32) return key;
      throw new Error(`${file} is damaged: expected 64 hex characters`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    // Two processes starting at once: one creates the key, the other reads the winner's.
    if (await createFileOnce(file, key.toString('hex') + '\n')) return key;
  }
}
