import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { labState, shot, signIn, url } from '../fixtures/session.ts';

const JOB = 'e2e retry failed';
const [BAD, GOOD] = ['e2e-retry-01', 'e2e-retry-02'];
const MiB = 1024 * 1024;

test('Retry failed VMs on a finished run starts a run of only the failed VM, which opens; the runs link each other', async ({ page }) => {
  test.setTimeout(240_000);
  await signIn(page);
  // Two small VMs; one cannot be quiesced (a broken VSS writer), and the job requires quiescing.
  const lab = connectLab(labState());
  const vms = [];
  for (const name of [BAD, GOOD]) {
    vms.push(await lab.createVm({ name, disks: [{ capacityBytes: 16 * MiB }], cbt: true, powerOn: true }));
    await lab.guestWrite(name, 0, [{ offset: 0, length: MiB, pattern: 'random', seed: name.length }]);
  }
  await lab.failQuiesce(BAD, true);
  const [vc] = (await (await page.request.get(`${url()}/api/vcenters`)).json()) as { id: string }[];
  const [repo] = (await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string }[];
  const created = await page.request.post(`${url()}/api/jobs`, {
    data: { name: JOB, vcenterId: vc!.id, repositoryId: repo!.id, sources: vms.map((v) => ({ moref: v.moref, name: v.name, instanceUuid: v.instanceUuid })), options: { quiesce: 'require' } },
  });
  expect(created.status(), await created.text()).toBe(201);
  const jobId = ((await created.json()) as { id: string }).id;
  try {
    const first = ((await (await page.request.post(`${url()}/api/jobs/${jobId}/run`)).json()) as { id: string }).id;
    await expect.poll(async () => ((await (await page.request.get(`${url()}/api/runs/${first}`)).json()) as { status: string }).status, { timeout: 120_000 }).toBe('failed');

    await page.goto(`${url()}/runs/${first}`);
    await expect(page.getByTestId('run-status')).toHaveText('failed');
    // The summary: per VM how its disks were read, its consistency, bytes and time; the last row totals the run.
    const summary = page.getByTestId('run-summary');
    const good = summary.getByTestId('summary-vm').filter({ hasText: GOOD });
    await expect(good).toContainText('succeeded');
    await expect(good.getByRole('cell', { name: '1 full' })).toBeVisible();
    await expect(good.getByRole('cell', { name: 'quiesced', exact: true })).toBeVisible();
    await expect(good.getByRole('cell', { name: /^\d+(\.\d+)? (B|KiB|MiB)$/ })).toHaveCount(2);
    await expect(good.getByRole('cell', { name: /^\d+ (s|min)/ })).toBeVisible();
    const bad = summary.getByTestId('summary-vm').filter({ hasText: BAD });
    await expect(bad).toContainText('failed');
    await expect(bad.getByRole('cell', { name: 'no snapshot', exact: true })).toBeVisible();
    await expect(summary.getByTestId('summary-total')).toContainText('All 2 VMs');
    await expect(summary.getByTestId('summary-total')).toContainText('1 quiesced, 0 crash-consistent');
    // The failed VM's error shows once, under it: not again in Warnings and errors (the run log keeps every line).
    const detail = (await (await page.request.get(`${url()}/api/runs/${first}`)).json()) as { vms: { vmName: string; error: string | null }[] };
    const error = detail.vms.find((v) => v.vmName === BAD)?.error;
    expect(error, `${BAD} failed with an error`).toBeTruthy();
    await expect(page.getByTestId('run-vm').filter({ hasText: BAD })).toContainText(error!);
    await expect(page.getByTestId('run-log')).toContainText(error!);
    await expect(page.getByTestId('run-warnings').getByText(error!)).toHaveCount(0);
    // Each disk's transport reasons: folded when the fastest mode (Direct SAN, HotAdd) was reached, shown after a fallback.
    for (const d of await page.getByTestId('run-vm').filter({ hasText: GOOD }).getByTestId('run-disk').all()) {
      const transport = (await d.getByTestId('disk-transport').textContent()) ?? '';
      const why = d.getByTestId('transport-why');
      const reasons = d.getByRole('list', { name: /transport reasons/ });
      if (/Direct SAN|HotAdd/.test(transport)) {
        await expect(why).not.toHaveAttribute('open');
        await expect(reasons).toBeHidden();
        await why.getByText(`Why ${transport}`).click();
      } else await expect(why).toHaveAttribute('open');
      await expect(reasons).toBeVisible();
    }
    const retry = page.getByRole('button', { name: 'Retry the failed VM' });
    await expect(retry).toBeVisible();
    await page.screenshot({ path: shot('run-failed-retry'), fullPage: true });
    // The guest is fixed; the retry backs up only the VM that failed.
    await lab.failQuiesce(BAD, false);
    await retry.click();
    await expect(page).not.toHaveURL(new RegExp(`/runs/${first}$`));
    await expect(page.getByRole('heading', { level: 1, name: `${JOB} — run` })).toBeVisible();
    await expect(page.getByTestId('run-retries')).toHaveText('A retry of the failed VMs of an earlier run.');
    await expect(page.getByTestId('run-status')).toHaveText(/succeeded|warning/, { timeout: 120_000 });
    const again = ((await (await page.request.get(`${url()}${new URL(page.url()).pathname.replace('/runs/', '/api/runs/')}`)).json()) as { vms: { vmName: string }[]; retryOf: string });
    expect(again.vms.map((v) => v.vmName)).toEqual([BAD]);
    expect(again.retryOf).toBe(first);
    await page.screenshot({ path: shot('run-retry'), fullPage: true });

    await page.getByTestId('run-retries').getByRole('link', { name: 'an earlier run' }).click();
    await expect(page.getByTestId('run-retries')).toHaveText('Its failed VMs were retried in a later run.');
    await expect(page.getByRole('button', { name: /Retry/ })).toHaveCount(0);
  } finally {
    await lab.failQuiesce(BAD, false).catch(() => undefined);
    expect((await page.request.delete(`${url()}/api/jobs/${jobId}`)).status()).toBe(200);
  }
});
