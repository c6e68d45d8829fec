import { defineProject } from 'vitest/config';

// Lets `npx vitest run --root .` work inside the package; the root config runs it as project @vaultline/nfs.
export default defineProject({
  test: { name: '@vaultline/nfs', include: ['test/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 120_000 },
});
