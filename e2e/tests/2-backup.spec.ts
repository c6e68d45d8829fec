import { expect, test } from '@playwright/test';
import { shot, signIn } from '../fixtures/session.ts';

test('the first screen after login shows the lab VMs, and one backs up live with its transport and reasons', async ({ page }) => {
  await signIn(page);
  const inventory = page.getByTestId('inventory');
  await expect(inventory).toContainText('Lab vCenter');
  await expect(inventory.getByTestId('vm-row').filter({ hasText: 'db-01' })).toBeVisible();
  await expect(inventory.getByTestId('vm-row').filter({ hasText: 'legacy-ide-01' })).toContainText('ide');

  await inventory.getByTestId('vm-row').filter({ hasText: 'web-01' }).getByRole('button', { name: 'Back up now' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Backup of web-01 started' })).toBeVisible();
  const run = page.getByTestId('run').first();
  await expect(run).toContainText('web-01');
  await expect(run.getByTestId('run-status')).toHaveText(/succeeded|warning/, { timeout: 60_000 });
  await expect(run).toContainText(/SAN: |HotAdd: |NBDSSL: /);
  await page.screenshot({ path: shot('backup'), fullPage: true });
});
