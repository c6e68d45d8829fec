// Runs after the other specs that read restore points (copies are restore points too, listed beside the originals) and before the responsive and accessibility specs, which then see the copy job.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { nav, shot, signIn } from '../fixtures/session.ts';

let dir = '';
test.beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-e2e-copies-'));
});
test.afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('an admin sets up a backup copy into a second repository, runs it, and the copied restore points are listed in that repository', async ({ page }) => {
  test.setTimeout(180_000);
  await signIn(page);
  await nav(page, 'Repositories');
  await page.getByRole('button', { name: 'Add repository' }).click();
  const form = page.getByRole('form', { name: 'Add a repository' });
  await form.getByLabel('Name').fill('e2e offsite');
  await form.getByLabel('Path').fill(path.join(dir, 'offsite'));
  // Checked once it sticks: in one CI run the click landed while the page shifted (the check itself stays required).
  const encrypt = form.getByRole('checkbox', { name: /Encrypt with a passphrase/ });
  await expect(async () => {
    await encrypt.check({ timeout: 5_000 });
  }).toPass({ timeout: 20_000 });
  await form.getByLabel(/^Passphrase \(at least/).fill('e2e offsite passphrase');
  await form.getByLabel('Passphrase again').fill('e2e offsite passphrase');
  await form.getByRole('button', { name: 'Add repository' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Repository e2e offsite added.' })).toBeVisible();

  const copies = page.getByTestId('copy-jobs');
  await copies.getByRole('button', { name: 'New copy job' }).click();
  const add = copies.getByRole('form', { name: 'New copy job' });
  await add.getByLabel('Name').fill('e2e offsite copy');
  await add.getByLabel('Copy from').selectOption({ label: 'Local repository' });
  await add.getByLabel('Copy into').selectOption({ label: 'e2e offsite (local, encrypted)' });
  // The same repository on both sides is refused before anything is sent.
  await add.getByLabel('Copy into').selectOption({ label: 'Local repository (local)' });
  await add.getByRole('button', { name: 'Add copy job' }).click();
  await expect(add.getByRole('alert')).toHaveText('Choose another repository to copy into than the one copied from.');
  await add.getByLabel('Copy into').selectOption({ label: 'e2e offsite (local, encrypted)' });
  const kept = add.getByRole('group', { name: 'Copies kept per VM' });
  await kept.getByLabel('Keep last').fill('5');
  await kept.getByLabel('Weekly').fill('4');
  await add.getByRole('button', { name: 'Add copy job' }).click();
  await expect(copies.getByRole('status')).toHaveText('Copy job e2e offsite copy added.');
  const row = copies.getByTestId('copy-job-row').filter({ hasText: 'e2e offsite copy' });
  await expect(row).toContainText('Local repository');
  await expect(row).toContainText('the last 5, 4 weekly');
  await expect(row).toContainText('On demand');

  await row.getByRole('button', { name: 'Run e2e offsite copy now' }).click();
  await expect(copies.getByRole('status')).toContainText('Copy job e2e offsite copy started.');
  await copies.getByRole('link', { name: 'Watch the run' }).click();
  // Waits for the run to end, then names its log when it did not succeed (a warning says which VM failed, and why).
  const status = page.getByTestId('run-status').first();
  await expect(status).not.toHaveText(/^(queued|running)$/, { timeout: 120_000 });
  const ended = (await status.textContent()) ?? '';
  expect(ended, ended === 'succeeded' ? '' : `the copy run ended ${ended}; its log:\n${(await page.getByTestId('run-log').innerText().catch(() => '(no log)'))}`).toBe('succeeded');
  await expect(page.getByText(/restore point\(s\) copied: .* read from Local repository/)).toBeVisible();
  await page.screenshot({ path: shot('copy-job-run'), fullPage: true });

  // The copies are restore points of the second repository, one per point of the first (the earlier specs' backups).
  await nav(page, 'Repositories');
  // (The list shown first may be the one read before the run; it is read again on opening the page.)
  const copiesCell = row.locator('td[data-label="Copies"]');
  await expect(copiesCell).not.toHaveText('0');
  const copied = Number(await copiesCell.innerText());
  expect(copied).toBeGreaterThan(0);
  await page.getByRole('link', { name: 'e2e offsite', exact: true }).first().click();
  await expect(page.getByTestId('point-row')).toHaveCount(copied);
  await expect(page.getByTestId('vm-points').filter({ hasText: 'web-01' })).toBeVisible();
  // Each is marked a copy (the originals in Local repository are not).
  await expect(page.getByTestId('point-row').filter({ hasText: 'copy' })).toHaveCount(copied);
});
