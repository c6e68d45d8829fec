import { defineProject } from 'vitest/config';

// Lets `npx vitest run --root .` work inside the package; the root config runs it as project @vaultline/vmdk.
export default defineProject({
  test: { name: '@vaultline/vmdk', include: ['test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 300_000 },
});
