import { expect, test } from '@playwright/test';
import { shot, signIn, url } from '../fixtures/session.ts';

test('the first screen after login shows the lab VMs, and Back up now backs one up once (no job made), its progress under its row, with its transport and reasons', async ({ page }) => {
  await signIn(page);
  const inventory = page.getByTestId('inventory');
  await expect(inventory).toContainText('Lab vCenter');
  await expect(inventory.getByTestId('vm-row').filter({ hasText: 'db-01' })).toBeVisible();
  await expect(inventory.getByTestId('vm-row').filter({ hasText: 'legacy-ide-01' })).toContainText('ide');

  const jobsBefore = (await (await page.request.get(`${url()}/api/jobs`)).json()) as unknown[];
  await inventory.getByTestId('vm-row').filter({ hasText: 'web-01' }).getByRole('button', { name: 'Back up web-01 now' }).click();
  // Its progress shows where the click was, then how it ended.
  const progress = inventory.getByTestId('backup-now-progress');
  await expect(progress).toContainText('web-01');
  await expect(progress).toContainText('backed up: a restore point was made (kept until deleted; no job was created)', { timeout: 60_000 });
  expect(await (await page.request.get(`${url()}/api/jobs`)).json()).toHaveLength(jobsBefore.length);
  const run = page.getByTestId('run').first();
  await expect(run).toContainText('web-01');
  await expect(run.getByTestId('run-status')).toHaveText(/succeeded|warning/, { timeout: 60_000 });
  await expect(run).toContainText(/SAN: |HotAdd: |NBDSSL: /);
  await page.screenshot({ path: shot('backup'), fullPage: true });
});
