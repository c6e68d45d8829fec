import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { fitsWidths } from '../fixtures/layout.ts';
import { flushLabWrites, labState, nav, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-chart-01';
const BARE = 'e2e-bare-01';
const MiB = 1024 * 1024;

test('a backup stores its throughput: after a reload the run page charts the stored samples; the overview shows it protected and a VM no job covers unprotected', async ({ page }) => {
  test.setTimeout(240_000);
  const lab = connectLab(labState());
  // Enough random data that reading it takes a few seconds: the Transporter samples at most 4 times a second.
  const vm = await lab.createVm({ name: VM, disks: [{ capacityBytes: 2048 * MiB }], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 2048 * MiB, pattern: 'random', seed: 23 }]);
  flushLabWrites();
  await lab.createVm({ name: BARE, disks: [{ capacityBytes: 16 * MiB }] });

  await signIn(page);
  const [vc] = (await (await page.request.get(`${url()}/api/vcenters`)).json()) as { id: string }[];
  const [repo] = (await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string }[];
  const job = await page.request.post(`${url()}/api/jobs`, { data: { name: `e2e ${VM}`, schedule: '0 3 * * *', vcenterId: vc!.id, repositoryId: repo!.id, sources: [{ moref: vm.moref, name: VM, instanceUuid: vm.instanceUuid }] } });
  expect(job.status(), await job.text()).toBe(201);
  const run = (await (await page.request.post(`${url()}/api/jobs/${(await job.json()).id}/run`)).json()) as { id: string };

  await page.goto(`${url()}/runs/${run.id}`);
  await expect(page.getByTestId('run-status')).toHaveText(/succeeded|warning/, { timeout: 120_000 });
  await page.reload();
  const chart = page.getByTestId('throughput');
  await expect(chart.getByRole('img', { name: /Read throughput over time of Hard disk 1/ }).locator('canvas').first()).toBeVisible();
  const disk = chart.getByTestId('throughput-disk');
  await expect(disk).toHaveCount(1);
  expect(Number(await disk.getAttribute('data-stored-points')), 'stored samples of the disk').toBeGreaterThanOrEqual(10);
  await expect(disk).toContainText(/Hard disk 1: \d+ samples, fastest .+\/s/);
  await fitsWidths(page);
  await page.screenshot({ path: shot('run-throughput'), fullPage: true });

  await page.setViewportSize({ width: 1440, height: 900 });
  await nav(page, 'Overview');
  // The Director keeps each vCenter's inventory for a minute, and BARE was made just now: read it again.
  await page.getByRole('button', { name: 'Refresh inventory' }).click();
  await expect(page.getByRole('button', { name: 'Refresh inventory' })).toBeEnabled();
  const rows = page.getByTestId('protection').getByTestId('protection-row');
  const mine = rows.filter({ hasText: VM });
  await expect(mine.getByTestId('protection-state')).toHaveText('Protected');
  await expect(mine).toContainText(`e2e ${VM}`);
  await expect(mine.getByRole('link', { name: new RegExp(`^Last backup of ${VM}: (succeeded|warning)`) })).toBeVisible();
  await expect(mine).toContainText(/full · .+ written/);
  const bare = rows.filter({ hasText: BARE });
  await expect(bare.getByTestId('protection-state')).toHaveText('Unprotected');
  await expect(bare).toContainText('no job covers it');
  await expect(page.getByTestId('last-24h')).toContainText(/[1-9]\d* succeeded|[1-9]\d* warnings/);
  await expect(page.getByTestId('next-runs')).toContainText(`e2e ${VM}`);
  await fitsWidths(page);
  await page.screenshot({ path: shot('overview-protection'), fullPage: true });
});
