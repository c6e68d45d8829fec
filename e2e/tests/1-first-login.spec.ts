import { expect, test, type Page } from '@playwright/test';
import { ADMIN_PASSWORD, nav, shot, signOut, url } from '../fixtures/session.ts';

const firstPassword = () => process.env.VAULTLINE_E2E_ADMIN_PASSWORD!;

test.describe.configure({ mode: 'serial' });

/** What Chromium reports blocked by the console's Content-Security-Policy on this page. */
function cspViolations(page: Page): string[] {
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (load|execute|apply|connect)/i.test(m.text())) violations.push(m.text());
  });
  return violations;
}

test('http:// lands on the https console, which runs under its Content-Security-Policy without a violation', async ({ page }) => {
  const violations = cspViolations(page);
  const res = await page.goto(url().replace(/^https:/, 'http:'));
  expect(page.url()).toBe(`${url()}/`);
  expect(res!.headers()['content-security-policy']).toContain("script-src 'self'");
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  expect(violations).toEqual([]);
});

test('a wrong password shows a clear error', async ({ page }) => {
  await page.goto(url());
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('wrong username or password');
});

test('first login forces a new password, then shows health, and the Transporter online with its heartbeat', async ({ page }) => {
  const violations = cspViolations(page);
  await page.goto(url());
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(firstPassword());
  await page.getByRole('button', { name: 'Sign in' }).click();

  await expect(page.getByRole('heading', { name: 'Choose your password' })).toBeVisible();
  await page.getByLabel('One-time password').fill(firstPassword());
  await page.getByLabel(/^New password/).first().fill(ADMIN_PASSWORD);
  await page.getByLabel('New password again').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Save and continue' }).click();

  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  await expect(page.getByRole('status', { name: 'PostgreSQL: ok' })).toBeVisible();
  await expect(page.getByRole('status', { name: 'Redis: ok' })).toBeVisible();
  await expect(page.getByTestId('overall')).toHaveText('All systems go');
  await page.screenshot({ path: shot('status'), fullPage: true });

  await nav(page, 'Transporters');
  const row = page.getByTestId('transporter-row').filter({ hasText: 'e2e-transporter' });
  await expect(row).toContainText('online');
  await expect(row).toContainText(/\d+ s ago/);
  await expect(row.getByTestId('transporter-load')).toHaveText('0 VMs · 0 of 6 disk tasks');
  await page.screenshot({ path: shot('transporters'), fullPage: true });
  expect(violations).toEqual([]);
});

test('the new password works after signing out, the one-time one does not', async ({ page }) => {
  await page.goto(url());
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(firstPassword());
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('wrong username or password');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  await signOut(page);
});
