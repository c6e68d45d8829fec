import { defineConfig } from 'vitest/config';

// One Vitest run covers every workspace; each package/app is its own project so
// its tests run with its own root (and its own vitest.config.ts when it has one).
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/director', 'apps/transporter'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
