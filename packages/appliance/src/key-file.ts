import { randomBytes } from 'node:crypto';
import { link, open, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Creates `file` (mode 0600) holding `content`, unless it exists; true when this call created it.
 *
 * The content is written and synced under a temporary name first and then hard-linked into place, so
 * the file appears whole or not at all: a process starting beside this one never reads it empty or
 * half-written, and a crash mid-write leaves only a stray temporary file, never a damaged key.
 */
export async function createFileOnce(file: string, content: Buffer | string): Promise<boolean> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fh = await open(temp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await link(temp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}
