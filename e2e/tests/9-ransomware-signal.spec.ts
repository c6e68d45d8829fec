import { expect, test, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { labState, nav, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-ransom-01';
const MiB = 1024 * 1024;

/** Runs the job now and waits for its run to finish; returns the run's status. */
async function backup(page: Page, jobId: string): Promise<string> {
  const run = (await (await page.request.post(`${url()}/api/jobs/${jobId}/run`)).json()) as { id: string };
  let status = '';
  await expect
    .poll(
      async () => {
        status = ((await (await page.request.get(`${url()}/api/runs/${run.id}`)).json()) as { status: string }).status;
        return ['succeeded', 'warning', 'failed', 'cancelled'].includes(status);
      },
      { timeout: 120_000, message: `run ${run.id} of ${VM} finishes` },
    )
    .toBe(true);
  return status;
}

test('a VM whose guest starts encrypting its files: its restore point shows the ransomware flag, what was measured and the held retention; an operator releases the hold', async ({ page }) => {
  test.setTimeout(300_000);
  const lab = connectLab(labState());
  const vm = await lab.createVm({ name: VM, disks: [{ capacityBytes: 64 * MiB }], cbt: true, powerOn: true });

  await signIn(page);
  const [vc] = (await (await page.request.get(`${url()}/api/vcenters`)).json()) as { id: string }[];
  const [repo] = (await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string; name: string }[];
  const retention = { keepLast: 2, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 };
  const job = await page.request.post(`${url()}/api/jobs`, {
    data: { name: `e2e ${VM}`, vcenterId: vc!.id, repositoryId: repo!.id, sources: [{ moref: vm.moref, name: VM, instanceUuid: vm.instanceUuid }], options: { cbtSanityRate: 0, retention } },
  });
  expect(job.status(), await job.text()).toBe(201);
  const jobId = ((await job.json()) as { id: string }).id;
  // Ordinary days: log-like files, rewritten.
  for (const seed of [1, 2, 3]) {
    await lab.guestWrite(VM, 0, [{ offset: 0, length: 24 * MiB, pattern: 'text', seed }]);
    expect(await backup(page, jobId)).toBe('succeeded');
  }
  // The files are encrypted in place.
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 24 * MiB, pattern: 'random', seed: 77 }]);
  expect(await backup(page, jobId)).toBe('warning');

  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: repo!.name }).getByRole('link', { name: repo!.name }).click();
  const points = page.getByTestId('vm-points').filter({ hasText: VM }).getByTestId('point-row');
  const flagged = points.filter({ has: page.getByTestId('point-ransomware') });
  await expect(flagged).toHaveCount(1);
  await expect(flagged).toContainText('retention held');
  await expect(flagged).toContainText(/disk Hard disk 1: 100 % of 24 MiB of new data is high-entropy .* over the last 2 restore point\(s\) \(medians\)/);
  // Retention kept the point keepLast 2 would have pruned.
  await expect(points).toHaveCount(3);
  await page.screenshot({ path: shot('ransomware-signal'), fullPage: true });

  const button = flagged.getByRole('button', { name: /^Release retention hold of e2e-ransom-01 from / });
  await button.click();
  const dialog = page.getByRole('dialog', { name: `Release the retention hold of ${VM}?` });
  await dialog.getByRole('button', { name: 'Release hold' }).click();
  await expect(dialog.getByRole('alert')).toContainText('say why the hold is released');
  await dialog.getByLabel('Why it is safe to release').fill('restored the share from the point before; checked clean');
  await dialog.getByRole('button', { name: 'Release hold' }).click();
  await expect(dialog).toBeHidden();
  await expect(flagged).toContainText('hold released by admin');
  await expect(flagged).not.toContainText('retention held');
  await expect(flagged.getByRole('button', { name: /^Release retention hold/ })).toHaveCount(0);
});
