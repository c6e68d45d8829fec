import { existsSync, readdirSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// One Vitest run covers every workspace. Each package and app is its own
// project, named after its folder, and inherits these settings. The web
// console's pages are tested in a browser by the Playwright tests in e2e/;
// here it has only the unit tests of its pure modules (src/**/*.test.ts, in
// Node: no DOM, no components).
const dirs = ['packages', 'apps']
  .flatMap((group) => readdirSync(group).map((name) => `${group}/${name}`))
  .filter((dir) => existsSync(`${dir}/package.json`))
  .sort();

// Projects whose tests start lab vCenters with SAN LUNs and hot-added disks
// compete for the machine's few loop devices: each runs in its own group,
// one after another, while the light projects share group 0.
const heavy = ['packages/vsphere-lab', 'packages/vsphere', 'apps/transporter', 'packages/repository'];

// Tests that need root (loop devices, mounts, sshd, SAN LUNs) run only as root. On CI that is a
// requirement, not a skip: a CI run without root stops here and says why.
if (process.env.CI === 'true' && process.getuid?.() !== 0) {
  throw new Error('CI=true but not running as root: the loop-device, mount, sshd and SAN tests need root and would not run');
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 180_000,
    projects: dirs.map((dir) => ({
      extends: true,
      test: {
        name: `@vaultline/${dir.split('/')[1]}`,
        root: dir,
        include: dir === 'apps/web' ? ['src/**/*.test.ts'] : ['test/**/*.test.ts', 'src/**/*.test.ts'],
        environment: 'node',
        sequence: { groupOrder: heavy.indexOf(dir) + 1 },
      },
    })),
  },
});
