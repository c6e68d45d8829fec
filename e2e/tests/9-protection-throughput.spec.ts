/// <reference lib="dom" />
// (page.evaluate callbacks run in the page: they use the DOM.)
import { expect, test, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { labState, nav, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-chart-01';
const BARE = 'e2e-bare-01';
const MiB = 1024 * 1024;

/** No horizontal scrolling at a phone's and a laptop's width (a failure names the elements sticking out). */
async function fitsWidths(page: Page) {
  for (const width of [390, 1440]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
    const overflow = () =>
      page.evaluate(() => {
        const root = document.documentElement;
        if (root.scrollWidth <= root.clientWidth) return [];
        const clipped = (e: Element) => {
          for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) if (getComputedStyle(a).overflowX !== 'visible') return true;
          return false;
        };
        const out = (e: Element) => e.getBoundingClientRect().right > root.clientWidth + 1 && !clipped(e);
        // The innermost elements reaching past the window, not inside a scrolling box: what makes the page scroll.
        const culprits = Array.from(document.querySelectorAll('body *'))
          .filter((e) => out(e) && !Array.from(e.children).some(out))
          .slice(0, 12)
          .map((e) => `${e.tagName.toLowerCase()}.${Array.from(e.classList).join('.')} (${Math.round(e.getBoundingClientRect().width)} px)`);
        if (culprits.length) return culprits;
        // Else something inside a scrolling box that escapes it (an absolute element whose containing block is outside).
        const past = Array.from(document.querySelectorAll('body *')).filter((e) => e.getBoundingClientRect().right > root.clientWidth + 0.5);
        return [`the page is ${root.scrollWidth - root.clientWidth} px too wide`, ...past.slice(0, 8).map((e) => `${e.tagName.toLowerCase()}.${Array.from(e.classList).join('.')} right ${Math.round(e.getBoundingClientRect().right)} ${e.textContent?.slice(0, 40) ?? ''}`)];
      });
    await expect.poll(overflow, { message: `horizontal scroll at ${width} px on ${page.url()}` }).toEqual([]);
  }
}

test('a backup stores its throughput: after a reload the run page charts the stored samples; the overview shows it protected and a VM no job covers unprotected', async ({ page }) => {
  test.setTimeout(240_000);
  const lab = connectLab(labState());
  // Enough random data that reading it takes a few seconds: the Transporter samples at most 4 times a second.
  const vm = await lab.createVm({ name: VM, disks: [{ capacityBytes: 2048 * MiB }], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 2048 * MiB, pattern: 'random', seed: 23 }]);
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
