import { expect, test } from '@playwright/test';
import { ADMIN_PASSWORD, labJobs, nav, shot, signIn, signOut, url } from '../fixtures/session.ts';

const VIEWER = 'vicky';
const ONE_TIME = 'vicky-one-time-1';
const CHOSEN = 'vicky-chosen-pass-1';

test.describe.configure({ mode: 'serial' });

test('an admin creates a viewer; the viewer sees jobs without their actions, and the server refuses them anyway', async ({ page }) => {
  await signIn(page);
  await nav(page, 'Users');
  const form = page.getByRole('form', { name: 'Add a user' });
  await form.getByLabel('Username').fill(VIEWER);
  await form.getByLabel('Role').selectOption('viewer');
  await form.getByLabel(/One-time password/).fill(ONE_TIME);
  await form.getByRole('button', { name: 'Add user' }).click();
  await expect(page.getByRole('status').filter({ hasText: `User ${VIEWER} (viewer) added.` })).toBeVisible();
  await expect(page.getByTestId('user-row').filter({ hasText: 'admin' })).toContainText('you');
  await labJobs(page); // the viewer's job list below needs one
  await expect(page.getByTestId('user-row').filter({ hasText: 'admin' }).getByRole('button', { name: 'Delete' })).toHaveCount(0);
  await page.screenshot({ path: shot('users'), fullPage: true });
  await signOut(page);

  // The viewer's first sign-in asks for a new password, then shows the console without actions.
  await page.getByLabel('Username').fill(VIEWER);
  await page.getByLabel('Password').fill(ONE_TIME);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('One-time password').fill(ONE_TIME);
  await page.getByLabel(/^New password/).first().fill(CHOSEN);
  await page.getByLabel('New password again').fill(CHOSEN);
  await page.getByRole('button', { name: 'Save and continue' }).click();
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  await expect(page.getByTestId('vm-row').first()).toBeVisible();
  await expect(page.getByRole('button', { name: /^Back up .+ now$/ })).toHaveCount(0);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' })).toHaveCount(0);

  await nav(page, 'Jobs');
  const row = page.getByTestId('job-row').first();
  await expect(row).toBeVisible();
  for (const name of ['Run now', 'Edit', 'Delete']) await expect(page.getByRole('button', { name })).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'New job' })).toHaveCount(0);
  await expect(page.getByRole('switch')).toHaveCount(0);
  await page.screenshot({ path: shot('jobs-viewer'), fullPage: true });

  // The server is the one that decides: the same calls from this session are refused.
  const jobs = (await (await page.request.get(`${url()}/api/jobs`)).json()) as { id: string }[];
  const id = jobs[0]!.id;
  for (const [method, path, data] of [
    ['POST', `/api/jobs/${id}/run`, undefined],
    ['PATCH', `/api/jobs/${id}`, { enabled: false }],
    ['DELETE', `/api/jobs/${id}`, undefined],
    ['POST', '/api/jobs', { name: 'sneaky' }],
  ] as const) {
    const res = await page.request.fetch(`${url()}${path}`, { method, ...(data ? { data } : {}) });
    expect(res.status(), `${method} ${path}`).toBe(403);
    expect((await res.json()).message).toBe('this needs the operator role');
  }
  await page.goto(`${url()}/jobs/new`);
  await expect(page.getByRole('alert')).toHaveText('This page needs the operator role.');
  await page.goto(`${url()}/users`);
  await expect(page.getByRole('alert')).toHaveText('This page needs the admin role.');
  await nav(page, 'vCenters');
  await expect(page.getByRole('button', { name: 'Add vCenter' })).toHaveCount(0);
});

test('a user changes their own password from the user menu, which ends their other session; the admin deletes the viewer after confirming', async ({ page, browser }) => {
  const elsewhere = await browser.newPage();
  await signIn(elsewhere, VIEWER, CHOSEN);
  await signIn(page, VIEWER, CHOSEN);
  await page.getByRole('button', { name: /account menu/ }).click();
  await page.getByRole('menuitem', { name: 'Change password' }).click();
  await page.getByLabel('Current password').fill('wrong-current');
  await page.getByLabel(/^New password/).first().fill('vicky-new-pass-22');
  await page.getByLabel('New password again').fill('vicky-new-pass-22');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toHaveText('the current password is wrong');
  await page.getByLabel('Current password').fill(CHOSEN);
  await page.getByLabel(/^New password/).first().fill('vicky-new-pass-22');
  await page.getByLabel('New password again').fill('vicky-new-pass-22');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Password changed.' })).toBeVisible();
  // The other session was ended by the Director, which drops its socket saying why: the sign-in page comes back
  // by itself within seconds, without a click there.
  await expect(elsewhere.getByRole('button', { name: 'Sign in' })).toBeVisible({ timeout: 15_000 });
  await elsewhere.close();
  await signOut(page);

  await signIn(page, 'admin', ADMIN_PASSWORD);
  await nav(page, 'Users');
  const row = page.getByTestId('user-row').filter({ hasText: VIEWER });
  await expect(row).not.toContainText('one-time password not changed yet');
  await row.getByRole('button', { name: 'Delete' }).click();
  const dialog = page.getByRole('dialog', { name: `Delete user ${VIEWER}?` });
  await dialog.getByLabel('Your password, to confirm').fill(ADMIN_PASSWORD);
  await dialog.getByRole('button', { name: 'Delete user' }).click();
  await expect(page.getByRole('status').filter({ hasText: `User ${VIEWER} deleted.` })).toBeVisible();
  await expect(row).toHaveCount(0);
});
