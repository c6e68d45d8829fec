import * as fs from 'node:fs';
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
