import { defineConfig } from '@playwright/test';

// Debian's chromium, never a downloaded browser. The appliance under test
// (Director + Transporter on a fresh database) is started by global-setup. It
// serves HTTPS with a self-signed certificate: Chromium accepts that one
// certificate, named by its public key's hash (no TLS error is ignored otherwise).
// The workers load this file after global-setup has set VAULTLINE_E2E_SPKI.
const spki = process.env.VAULTLINE_E2E_SPKI;

// Three specs need root (sshd on loopback, an SSH user, loop devices and mounts) and skip without it
// on a developer's machine. On CI that is a requirement, not a skip: a CI run without root stops here.
if (process.env.CI === 'true' && process.getuid?.() !== 0) {
  throw new Error('CI=true but not running as root: the repository-over-SFTP, remote Transporter and file-level restore browser tests need root and would not run');
}
export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: process.env.PLAYWRIGHT_JSON_OUTPUT_NAME ? [['list'], ['json']] : [['list']],
  globalSetup: './fixtures/global-setup.ts',
  outputDir: '../.vaultline/e2e-results',
  use: {
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        ...(spki ? [`--ignore-certificate-errors-spki-list=${spki}`] : []),
      ],
    },
    screenshot: 'only-on-failure',
    trace: 'off',
  },
});
