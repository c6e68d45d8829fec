import { expect, test } from '@playwright/test';
import { fitsWidths } from '../fixtures/layout.ts';
import { shot, signIn, url } from '../fixtures/session.ts';

test("the repository page charts the repository's size over time from the samples the Transporter stored, with its dedup and compression ratios", async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signIn(page);
  // The repository 2-backup backed web-01 up into.
  const repos = (await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string; name: string }[];
  let repo: { id: string; name: string } | undefined;
  for (const r of repos) {
    const points = (await (await page.request.get(`${url()}/api/repositories/${r.id}/restore-points?vm=web-01`)).json()) as unknown[];
    if (points.length > 0) {
      repo = r;
      break;
    }
  }
  expect(repo, 'a repository holding a backup of web-01').toBeTruthy();
  const capacity = await page.request.get(`${url()}/api/repositories/${repo!.id}/capacity?days=7`);
  expect(capacity.status(), await capacity.text()).toBe(200);
  expect(((await capacity.json()) as { samples: unknown[] }).samples.length, 'stored samples').toBeGreaterThanOrEqual(1);

  await page.goto(`${url()}/repositories/${repo!.id}`);
  const section = page.getByTestId('capacity');
  await expect(section.getByRole('heading', { name: 'Capacity' })).toBeVisible();
  await expect(section.getByRole('figure', { name: /Over the last 30 days|One change in the last 30 days/ })).toBeVisible();
  await expect(section.getByRole('img', { name: 'Logical and stored bytes of this repository over the last 30 days' }).locator('canvas').first()).toBeVisible();
  expect(Number(await section.getAttribute('data-stored-points')), 'samples drawn').toBeGreaterThanOrEqual(1);
  await expect(section.getByTestId('capacity-dedup')).toHaveText(/^\d+(\.\d+)?×$/);
  await expect(section.getByTestId('capacity-compression')).toHaveText(/^\d+(\.\d+)?×$/);
  await expect(section.getByTestId('capacity-logical')).toHaveText(/\d+(\.\d)? (B|KiB|MiB|GiB|TiB)/);
  await expect(section.getByTestId('capacity-stored')).toHaveText(/\d+(\.\d)? (B|KiB|MiB|GiB|TiB)/);
  // The hidden table says the same as the chart to a screen reader.
  expect(await section.getByTestId('capacity-sample').count()).toBeGreaterThanOrEqual(1);

  await section.getByLabel('Period').selectOption('7');
  await expect(section.getByRole('img', { name: 'Logical and stored bytes of this repository over the last 7 days' }).locator('canvas').first()).toBeVisible();

  await fitsWidths(page);
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(section.locator('canvas').first()).toBeVisible();
  await page.screenshot({ path: shot('repository-capacity-phone'), fullPage: true });
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.screenshot({ path: shot('repository-capacity'), fullPage: true });
  expect(errors, 'errors in the page').toEqual([]);
});

test("the Transporters page has a load chart per Transporter (its heartbeat's samples) and fits a phone's width", async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signIn(page);
  const [local] = (await (await page.request.get(`${url()}/api/transporters`)).json()) as { id: string; name: string }[];
  // The local Transporter's heartbeat has stored its load since it started (a sample a minute, the first at once).
  const samples = async () => ((await (await page.request.get(`${url()}/api/transporters/${encodeURIComponent(local!.id)}/load?hours=24`)).json()) as { at: number[] }).at.length;
  await expect.poll(samples, { message: 'the heartbeat stores load samples' }).toBeGreaterThan(0);
  await page.goto(`${url()}/transporters`);
  const section = page.getByRole('region', { name: /Load, last 24 hours/ });
  const figure = section.getByRole('figure', { name: new RegExp(`^${local!.name} \\d+ samples?; busiest \\d+ of \\d+ disk tasks, CPU up to \\d+ %, memory [\\d.]+ (MiB|GiB) now`) });
  await expect(figure).toBeVisible();
  expect(Number(await figure.getAttribute('data-samples'))).toBeGreaterThan(0);
  await expect(figure.getByRole('img', { name: `Disk tasks and CPU of ${local!.name} over the last 24 hours` }).locator('canvas').first()).toBeVisible();
  await fitsWidths(page);
  await page.screenshot({ path: shot('transporters-load'), fullPage: true });
  expect(errors, 'errors in the page').toEqual([]);
});
