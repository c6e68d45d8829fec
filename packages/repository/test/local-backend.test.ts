import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../src/index.ts';
import { backendConformance } from './backend-conformance.ts';
import { tmpDir } from './helpers.ts';

backendConformance('local filesystem', async () => {
  const root = tmpDir('vl-local-');
  const backend = new LocalBackend(root);
  return {
    backend,
    cleanup: async () => {
      await backend.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
});

describe('local filesystem: folders on a kernel filesystem', () => {
  it('creating them under /proc fails (ENOENT, as not found) at once (Node\'s recursive mkdir retries there forever at 100% CPU)', () => {
    const child = path.join(import.meta.dirname, 'fixtures', 'kernel-fs-mkdir.ts');
    const r = spawnSync(process.execPath, ['--import', 'tsx', child], { encoding: 'utf8', cwd: path.resolve(import.meta.dirname, '..'), timeout: 20_000 });
    expect(r.signal, 'the child was killed: it spun').toBeNull();
    expect(r.stdout).toBe('mkdirp: ENOENT\nwriteFileAtomic: NOT_FOUND\nopenWriter: NOT_FOUND\ninit: ENOENT\n');
  });
});
