import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A Transporter keeps the same id across restarts (stored in its data dir) unless one is configured. */
export async function transporterId(dataDir: string, configured?: string): Promise<string> {
  if (configured) return configured;
  const file = path.join(dataDir, 'transporter-id');
  try {
    const id = (await readFile(file, 'utf8')).trim();
    if (id) return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = `${os.hostname()}-${randomUUID().slice(0, 8)}`;
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, id + '\n');
  return id;
}
