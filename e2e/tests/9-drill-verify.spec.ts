import { expect, test, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { labState, nav, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-drill-01';
const DRILL = 'e2e weekly drill';
const MiB = 1024 * 1024;

/** A small VM with a restore point, backed up by a one-VM job through the API. */
async function backedUpVm(page: Page) {
  const lab = connectLab(labState());
  const vm = await lab.createVm({ name: VM, disks: [{ capacityBytes: 32 * MiB }], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: MiB, length: 4 * MiB, pattern: 'random', seed: 91 }]);
  const [vc] = (await (await page.request.get(`${url()}/api/vcenters`)).json()) as { id: string }[];
  const [repo] = (await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string }[];
  const job = await page.request.post(`${url()}/api/jobs`, { data: { name: `e2e ${VM}`, vcenterId: vc!.id, repositoryId: repo!.id, sources: [{ moref: vm.moref, name: VM, instanceUuid: vm.instanceUuid }] } });
  expect(job.status(), await job.text()).toBe(201);
  const run = (await (await page.request.post(`${url()}/api/jobs/${(await job.json()).id}/run`)).json()) as { id: string };
  await expect.poll(async () => ((await (await page.request.get(`${url()}/api/runs/${run.id}`)).json()) as { status: string }).status, { timeout: 90_000 }).toMatch(/succeeded|warning/);
}

test.describe.configure({ mode: 'serial' });

test('a drill is created for a VM with restore points, with the schedule preview; Run now restores, verifies and deletes it, and the list shows the result', async ({ page }) => {
  test.setTimeout(240_000);
  await signIn(page);
  await backedUpVm(page);
  await nav(page, 'Drills');
  await page.getByRole('link', { name: 'New drill' }).click();
  const form = page.getByRole('form', { name: 'New drill' });
  await form.getByLabel('Name').fill(DRILL);
  await form.getByRole('button', { name: 'Create drill' }).click();
  await expect(form.getByRole('alert')).toHaveText('Choose at least one VM.');
  await form.getByLabel(`Drill ${VM}`).check();
  await form.getByRole('radio', { name: /A random one/ }).check();
  await form.getByRole('radio', { name: /Cron expression/ }).check();
  await form.getByRole('textbox', { name: 'Cron expression' }).fill('0 4 * * 0');
  await expect(page.getByTestId('schedule-preview')).toContainText('0 4 * * 0 — next runs:');
  await page.screenshot({ path: shot('drill-form'), fullPage: true });
  await form.getByRole('button', { name: 'Create drill' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Drill ${DRILL} created.` })).toBeVisible();

  const row = page.getByTestId('drill-row').filter({ hasText: DRILL });
  await expect(row).toContainText('Sundays at 04:00');
  await expect(row).toContainText('a random one');
  await expect(row.getByTestId('drill-result')).toHaveText(`${VM}: never drilled`);
  await row.getByRole('button', { name: `Run ${DRILL} now`, exact: true }).click();
  await page.getByRole('status').filter({ hasText: `${DRILL} started.` }).getByRole('link', { name: 'Watch the run' }).click();
  await expect(page.getByRole('heading', { level: 1, name: new RegExp(`^Restore drill ${VM}-drill-\\d{8}-\\d{4} — run$`) })).toBeVisible();
  await expect(page.getByTestId('run-status')).toHaveText('succeeded', { timeout: 120_000 });
  await expect(page.getByTestId('disk-verified')).toContainText(/verified SHA-256 [0-9a-f]{64}/);
  await expect(page.getByTestId('run-log')).toContainText(/drill passed: .* restored, verified and deleted/);
  await page.screenshot({ path: shot('drill-run'), fullPage: true });

  await nav(page, 'Drills');
  await expect(row.getByRole('link', { name: `Last drill of ${VM}: succeeded` })).toBeVisible();
  await page.screenshot({ path: shot('drills'), fullPage: true });
  // Edit: the newest point from now on, and no schedule.
  await row.getByRole('button', { name: `Edit ${DRILL}`, exact: true }).click();
  const edit = page.getByRole('form', { name: `Edit drill ${DRILL}` });
  await expect(edit.getByLabel(`Drill ${VM}`)).toBeChecked();
  await edit.getByRole('radio', { name: /The newest/ }).check();
  await edit.getByRole('radio', { name: /No schedule/ }).check();
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Drill ${DRILL} saved.` })).toBeVisible();
  await expect(row).toContainText('the newest');
  await expect(row).toContainText('On demand');
  // The throwaway VM is gone again.
  await nav(page, 'Overview');
  await expect(page.getByTestId('vm-row').filter({ hasText: `${VM}-drill-` })).toHaveCount(0);
});

test('Verify now on a repository runs a verify that succeeds; a full one records when every point was last verified', async ({ page }) => {
  test.setTimeout(240_000);
  await signIn(page);
  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: 'Local repository' }).getByRole('link', { name: 'Local repository' }).click();
  const panel = page.getByTestId('maintenance');
  await expect(panel.getByTestId('damaged-count')).toHaveText('0');
  await expect(panel.getByTestId('last-full-verify')).toHaveText('never');
  await expect(panel.getByLabel('Verify schedule')).toHaveValue('0 3 * * 6');
  await page.screenshot({ path: shot('repository-maintenance'), fullPage: true });

  await panel.getByRole('radio', { name: 'every chunk (full)' }).check();
  await panel.getByRole('button', { name: 'Verify now' }).click();
  await panel.getByRole('status').filter({ hasText: 'Verify started (every chunk).' }).getByRole('link', { name: 'Watch the run' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Verify of Local repository — run' })).toBeVisible();
  await expect(page.getByTestId('run-status')).toHaveText('succeeded', { timeout: 180_000 });
  await expect(page.getByTestId('run-log')).toContainText(/restore point\(s\), (\d+) of \1 chunk\(s\) checked .*: all intact/);
  await page.screenshot({ path: shot('verify-run'), fullPage: true });

  await nav(page, 'Runs');
  await expect(page.getByTestId('history-row').filter({ hasText: 'Verify' }).first()).toContainText('succeeded');
  await page.goBack();
  await page.goBack();
  await expect(panel.getByTestId('last-full-verify')).not.toHaveText('never');
  await expect(page.getByTestId('point-row').first()).toContainText('verified');

  // A schedule the Director cannot read is refused with its reason; a good one is saved.
  await panel.getByLabel('Garbage collection schedule').fill('every night');
  await panel.getByRole('button', { name: 'Save schedules' }).click();
  await expect(panel.getByRole('alert').filter({ hasText: 'gcSchedule "every night" is not a cron expression' })).toBeVisible();
  await panel.getByLabel('Garbage collection schedule').fill('45 1 * * *');
  await panel.getByRole('button', { name: 'Save schedules' }).click();
  await expect(panel.getByRole('status').filter({ hasText: 'Maintenance schedules saved.' })).toBeVisible();
});
