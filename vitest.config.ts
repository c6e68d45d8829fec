import { defineConfig } from 'vitest/config';

// One Vitest run covers every workspace. Each package/app is its own project
// (named after its package.json) and inherits these settings.
const dirs = ['packages/contracts', 'packages/config', 'packages/logger', 'packages/db', 'packages/queue', 'packages/vsphere', 'packages/vsphere-lab', 'packages/repository', 'apps/director', 'apps/transporter'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 180_000,
    projects: dirs.map((dir) => ({
      extends: true,
      test: { name: `@vaultline/${dir.split('/')[1]}`, root: dir, include: ['test/**/*.test.ts', 'src/**/*.test.ts'] },
    })),
  },
});
