import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { nav, shot, signIn } from '../fixtures/session.ts';
import { startSshd } from '../fixtures/sshd.ts';

let dir = '';
test.beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-e2e-repo-'));
});
test.afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('an admin adds an encrypted local repository, warned that a lost passphrase cannot be recovered; a bad path gets the server’s reason', async ({ page }) => {
  await signIn(page);
  await nav(page, 'Repositories');
  await page.getByRole('button', { name: 'Add repository' }).click();
  const form = page.getByRole('form', { name: 'Add a repository' });
  await form.getByLabel('Name').fill('e2e vault');
  await form.getByLabel('Path').fill('relative/path');
  await form.getByRole('button', { name: 'Add repository' }).click();
  await expect(form.getByRole('alert')).toHaveText('location: an absolute path');

  await form.getByLabel('Path').fill(path.join(dir, 'vault'));
  await form.getByRole('checkbox', { name: /Encrypt with a passphrase/ }).check();
  await expect(form.getByRole('note')).toContainText('It cannot be recovered or reset.');
  await form.getByLabel(/^Passphrase \(at least/).fill('e2e passphrase 1');
  await form.getByLabel('Passphrase again').fill('e2e passphrase 2');
  await form.getByRole('button', { name: 'Add repository' }).click();
  await expect(form.getByRole('alert')).toHaveText('The two passphrases differ.');
  await form.getByLabel('Passphrase again').fill('e2e passphrase 1');
  await page.screenshot({ path: shot('repository-add'), fullPage: true });
  await form.getByRole('button', { name: 'Add repository' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Repository e2e vault added.' })).toBeVisible();

  const row = page.getByTestId('repository-row').filter({ hasText: 'e2e vault' });
  await expect(row).toContainText('encrypted');
  await expect(row).toContainText(path.join(dir, 'vault'));
  await expect(row.getByRole('cell').nth(1)).toHaveText('0');
  await expect(row).toContainText(/GiB of .* GiB/);
});

test('the default repository shows its figures and the restore points per VM written by the earlier backups', async ({ page }) => {
  await signIn(page);
  await nav(page, 'Repositories');
  const row = page.getByTestId('repository-row').filter({ hasText: 'Local repository' });
  await expect(row.getByRole('cell').nth(1)).toHaveText('2');
  await expect(row).toContainText('×');
  await page.screenshot({ path: shot('repositories'), fullPage: true });
  await row.getByRole('link', { name: 'Local repository' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Repository Local repository' })).toBeVisible();
  const vms = page.getByTestId('vm-points');
  await expect(vms).toHaveCount(2);
  await expect(vms.filter({ hasText: 'web-01' }).getByTestId('point-row')).toHaveCount(1);
  const app = vms.filter({ hasText: 'app-02' }).getByTestId('point-row');
  await expect(app).toHaveCount(1);
  await expect(app).toContainText('immutable until');
  await page.getByLabel('VM').selectOption('web-01');
  await expect(vms).toHaveCount(1);
  await page.screenshot({ path: shot('restore-points'), fullPage: true });
});

test('an SFTP repository is added with its SSH key (OpenSSH on loopback); a key the server does not accept is refused with its reason', async ({ page }) => {
  // sshd here lets root in by key; without root there is no user to log in as.
  // Skipped only when the tests do not run as root (with CI=true, e2e/playwright.config.ts stops a run that is not root and says why, so in CI it always runs): the SFTP server it adds is a real sshd on loopback, started by packages/ssh-lab, which needs root.
  // Skipped off root only (sshd on loopback needs root); e2e/playwright.config.ts refuses CI=true without root, so on CI it always runs.
  // Skipped only outside CI for a developer who is not root; in CI (CI=true) it runs, and fails without root.
  test.skip(process.getuid?.() !== 0 && process.env.CI !== 'true', 'needs root to run sshd on loopback');
  const sshd = await startSshd();
  try {
    const location = `sftp://root@127.0.0.1:${sshd.port}${sshd.dir}/sftp-repo`;
    await signIn(page);
    await nav(page, 'Repositories');
    await page.getByRole('button', { name: 'Add repository' }).click();
    const form = page.getByRole('form', { name: 'Add a repository' });
    await form.getByRole('radio', { name: 'SFTP server' }).check();
    await form.getByLabel('Name').fill('sftp on loopback');
    await form.getByLabel('SFTP location').fill(location);
    await form.getByLabel('SSH private key').fill(sshd.strangerKey);
    await form.getByRole('button', { name: 'Add repository' }).click();
    // First the server's host key, for the admin to check: exactly what ssh-keygen prints for it.
    await expect(form.getByTestId('host-key')).toContainText(sshd.hostKeyFingerprint);
    await form.getByRole('button', { name: 'Trust this host key and add' }).click();
    await expect(form.getByRole('alert').filter({ hasText: location })).toContainText(/authentication/i);

    await form.getByLabel('SSH private key').fill(sshd.privateKey);
    await form.getByRole('button', { name: 'Trust this host key and add' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Repository sftp on loopback added.' })).toBeVisible();
    const row = page.getByTestId('repository-row').filter({ hasText: 'sftp on loopback' });
    await expect(row).toContainText('sftp');
    await expect(row.getByRole('cell').nth(1)).toHaveText('0');
    await expect(row).toContainText('not reported');
  } finally {
    await sshd.stop();
  }
});
