import { expect, test, type Page } from '@playwright/test';
import { nav, shot, signInAsNew, url } from '../fixtures/session.ts';

const VM = 'e2e-rst-01';

const openLocalRepository = async (page: Page) => {
  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: 'Local repository' }).getByRole('link', { name: 'Local repository' }).click();
  await expect(page.getByTestId('maintenance')).toBeVisible();
};

test('a viewer sees restore points, drills and maintenance but none of their actions, and the Director refuses them anyway', async ({ page }) => {
  await signInAsNew(page, 'rita-viewer', 'viewer');
  await expect(page.getByTestId('vm-row').filter({ hasText: VM }).first()).toBeVisible();
  await expect(page.getByRole('link', { name: `Restore ${VM}`, exact: true })).toHaveCount(0);
  await expect(page.getByRole('button', { name: /^Back up .+ now$/ })).toHaveCount(0);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Notifications' })).toHaveCount(0);

  await openLocalRepository(page);
  await expect(page.getByTestId('point-row').first()).toBeVisible();
  await expect(page.getByRole('link', { name: /^Restore .* from / })).toHaveCount(0);
  const panel = page.getByTestId('maintenance');
  for (const name of ['Verify now', 'Collect garbage now', 'Save schedules']) await expect(panel.getByRole('button', { name })).toHaveCount(0);
  await expect(panel).toContainText('Saturdays at 03:00');
  await page.screenshot({ path: shot('repository-viewer'), fullPage: true });

  await nav(page, 'Drills');
  await expect(page.getByTestId('drill-row').first()).toBeVisible();
  await expect(page.getByRole('link', { name: 'New drill' })).toHaveCount(0);
  for (const name of [/^Run .+ now$/, /^Edit /, /^Delete /]) await expect(page.getByRole('button', { name })).toHaveCount(0);
  await nav(page, 'Transporters');
  await expect(page.getByTestId('remote-transporters')).toHaveCount(0);

  const [point] = (await (await page.request.get(`${url()}/api/restore-points?vm=${VM}`)).json()) as { id: string; repositoryId: string }[];
  await page.goto(`${url()}/restore?point=${point!.id}`);
  await expect(page.getByRole('alert')).toHaveText('This page needs the operator role.');
  await page.goto(`${url()}/notifications`);
  await expect(page.getByRole('alert')).toHaveText('This page needs the operator role.');
  for (const [method, path, data] of [
    ['POST', '/api/restores', { restorePointId: point!.id, name: 'sneaky' }],
    ['POST', `/api/repositories/${point!.repositoryId}/verify`, {}],
    ['POST', `/api/repositories/${point!.repositoryId}/gc`, {}],
    ['GET', `/api/restore-points/${point!.id}/ova`, undefined],
    ['GET', '/api/notifications', undefined],
  ] as const) {
    const res = await page.request.fetch(`${url()}${path}`, { method, ...(data ? { data } : {}) });
    expect(res.status(), `${method} ${path}`).toBe(403);
  }
});

test('an operator may restore, run drills and start verify or GC, but not change schedules, notification targets or remote Transporters', async ({ page }) => {
  await signInAsNew(page, 'otto-operator', 'operator');
  await expect(page.getByRole('link', { name: `Restore ${VM}`, exact: true })).toBeVisible();
  await openLocalRepository(page);
  const panel = page.getByTestId('maintenance');
  await expect(panel.getByRole('button', { name: 'Verify now' })).toBeVisible();
  await expect(panel.getByRole('button', { name: 'Collect garbage now' })).toBeVisible();
  await expect(panel.getByRole('button', { name: 'Save schedules' })).toHaveCount(0);
  await expect(page.getByRole('link', { name: /^Restore .* from / }).first()).toBeVisible();

  await nav(page, 'Drills');
  await expect(page.getByRole('link', { name: 'New drill' })).toBeVisible();
  await expect(page.getByTestId('drill-row').first().getByRole('button', { name: /^Run .+ now$/ })).toBeVisible();

  await nav(page, 'Notifications');
  await expect(page.getByTestId('target-row').first()).toBeVisible();
  await expect(page.getByRole('button', { name: 'Add target' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Send test' })).toHaveCount(0);
  await expect(page.getByRole('switch')).toHaveCount(0);
  await page.screenshot({ path: shot('notifications-operator'), fullPage: true });
  await nav(page, 'Transporters');
  await expect(page.getByTestId('remote-transporters')).toHaveCount(0);

  const [repo] = (await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string }[];
  for (const [method, path, data] of [
    ['PUT', `/api/repositories/${repo!.id}/maintenance`, { gcSchedule: null, verifySchedule: null, verifySample: 1 }],
    ['POST', '/api/notifications', { kind: 'webhook', name: 'sneaky', url: 'http://127.0.0.1:9/' }],
    ['GET', '/api/transporters/remote', undefined],
    ['PUT', '/api/settings/transporter-endpoints', { databaseAddress: null, redisAddress: null }],
  ] as const) {
    const res = await page.request.fetch(`${url()}${path}`, { method, ...(data ? { data } : {}) });
    expect(res.status(), `${method} ${path}`).toBe(403);
    expect((await res.json()).message).toBe('this needs the admin role');
  }
});
