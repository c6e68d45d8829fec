import { expect, test } from '@playwright/test';
import { ADMIN_PASSWORD, nav, next, shot, signIn, step } from '../fixtures/session.ts';

const JOB = 'e2e manual hotadd';

test.describe.configure({ mode: 'serial' });

test('the wizard builds a job with manual HotAdd; a bad cron is refused with the server’s reason; its run succeeds with a transport and reasons per disk', async ({ page }) => {
  test.setTimeout(150_000);
  await signIn(page);
  await nav(page, 'Jobs');
  await page.getByRole('link', { name: 'New job' }).click();

  // 1. Sources: search, see power state, disks and controllers, pick one VM.
  await step(page, 1);
  await next(page);
  await expect(page.getByRole('alert')).toHaveText('Choose at least one VM.');
  await page.getByLabel('Search VMs').fill('app-0');
  await expect(page.getByTestId('pick-vm')).toHaveCount(2);
  const row = page.getByTestId('pick-vm').filter({ hasText: 'app-02' });
  await expect(row).toContainText('on');
  await expect(row).toContainText('pvscsi, lsilogic');
  await expect(row).toContainText('2.0 GiB · lsilogic');
  await page.getByLabel('Select app-02').check();
  await expect(page.getByTestId('selected-count')).toHaveText('1 selected');
  await page.getByLabel('Search VMs').fill('legacy');
  await expect(page.getByTestId('pick-vm').filter({ hasText: 'legacy-ide-01' })).toContainText('IDE disk: no HotAdd for it');
  await page.screenshot({ path: shot('wizard-sources'), fullPage: true });
  await next(page);

  // 2. Destination: the default repository, with its figures.
  await step(page, 2);
  await expect(page.getByRole('radio', { name: /Local repository/ })).toBeChecked();
  await expect(page.getByText(/restore points? · .* stored · dedup/)).toBeVisible();
  await next(page);

  // 3. Schedule: an invalid cron expression shows the server's error and blocks the step.
  await step(page, 3);
  await page.getByRole('radio', { name: /Cron expression/ }).check();
  await page.getByRole('textbox', { name: 'Cron expression' }).fill('every night');
  await expect(page.getByTestId('schedule-error')).toHaveText('schedule "every night" is not a valid cron expression: a cron expression has 5 fields (minute hour day-of-month month day-of-week); this one has 2');
  await next(page);
  await step(page, 3);
  await expect(page.getByRole('alert').filter({ hasText: 'this one has 2' })).toHaveCount(2);
  await page.getByRole('textbox', { name: 'Cron expression' }).fill('61 23 * * *');
  await expect(page.getByTestId('schedule-error')).toContainText('expected range 0-59');
  await page.screenshot({ path: shot('wizard-schedule-error'), fullPage: true });
  await page.getByRole('radio', { name: /Daily/ }).check();
  await page.getByLabel('Daily at').fill('23:15');
  await expect(page.getByTestId('schedule-preview')).toContainText('15 23 * * * — next runs:');
  await next(page);

  // 4. Options: manual HotAdd, with its explanation and network failover.
  await step(page, 4);
  await expect(page.getByText('Per disk, tries Direct SAN, then HotAdd, then the network')).toBeVisible();
  await page.getByRole('radio', { name: /HotAdd only/ }).check();
  await expect(page.getByText('Manual: every disk uses HotAdd.')).toBeVisible();
  await expect(page.getByRole('checkbox', { name: /Fail over to the network/ })).toBeEnabled();
  await expect(page.getByRole('checkbox', { name: /Fail over to the network/ })).toBeChecked();
  await page.getByRole('spinbutton', { name: 'Keep last' }).fill('7');
  await page.getByRole('spinbutton', { name: 'Immutable for' }).fill('1');
  await page.screenshot({ path: shot('wizard-options'), fullPage: true });
  await next(page);

  // 5. Review, then create and run.
  await step(page, 5);
  await expect(page.getByLabel('Job name')).toHaveValue('Backup – app-02');
  await page.getByLabel('Job name').fill(JOB);
  const summary = page.getByRole('definition');
  await expect(summary.filter({ hasText: 'HotAdd only, failing over to the network' })).toBeVisible();
  await expect(summary.filter({ hasText: 'Daily at 23:15' })).toBeVisible();
  await expect(summary.filter({ hasText: 'last 7' })).toContainText('immutable 1 day');
  await page.getByRole('button', { name: 'Create and run now' }).click();

  // The run detail, live: per disk the transport and why.
  await expect(page.getByRole('heading', { level: 1, name: `${JOB} — run` })).toBeVisible();
  await expect(page.getByTestId('run-status')).toHaveText('succeeded', { timeout: 120_000 });
  const disks = page.getByTestId('run-disk');
  await expect(disks).toHaveCount(2);
  for (const d of await disks.all()) {
    await expect(d.getByTestId('disk-transport')).toHaveText('HotAdd');
    // HotAdd reached: why is folded away until asked for.
    const reasons = d.getByRole('list', { name: /transport reasons/ });
    await expect(d.getByTestId('transport-why')).not.toHaveAttribute('open');
    await expect(reasons).toBeHidden();
    await d.getByTestId('transport-why').getByText('Why HotAdd').click();
    await expect(reasons).toContainText('HOTADD: chosen manually');
    await expect(d).toContainText(/read \d/);
  }
  await expect(page.getByTestId('run-log')).toContainText('restore point');
  await expect(page.getByRole('button', { name: 'Cancel run' })).toHaveCount(0);
  // Where the time went stays on the run after it ended, also after a reload (no live events then).
  await page.reload();
  // The read speed the Transporter recorded (average, and the fastest second when faster) stays too.
  for (const d of await disks.all()) await expect(d.getByTestId('disk-speed')).toHaveText(/^\s*·\s[\d.]+ (B|KiB|MiB|GiB)\/s(\s\(peak [\d.]+ (B|KiB|MiB|GiB)\/s\))?$/);
  await expect(disks.first().getByTestId('bottleneck')).toContainText(/Bottleneck: (source|processing|target) — busy reading the source \d+%, processing \d+%, writing to the repository \d+%/);
  await page.screenshot({ path: shot('run-detail'), fullPage: true });

  // The job list: transport, schedule, next run and the last result.
  await nav(page, 'Jobs');
  const job = page.getByTestId('job-row').filter({ hasText: JOB });
  await expect(job).toContainText('HotAdd');
  await expect(job).toContainText('Daily at 23:15');
  await expect(job.getByRole('link', { name: `Last run of ${JOB}: succeeded` })).toBeVisible();
  await expect(job.getByRole('switch', { name: `${JOB} enabled` })).toHaveAttribute('aria-checked', 'true');
  await page.screenshot({ path: shot('jobs'), fullPage: true });
});

test('run history filters by job and status', async ({ page }) => {
  await signIn(page);
  await nav(page, 'Runs');
  await page.getByLabel('Job').selectOption({ label: JOB });
  await expect(page.getByTestId('history-row')).toHaveCount(1);
  await expect(page.getByTestId('history-row')).toContainText('app-02');
  await page.getByLabel('Status').selectOption('failed');
  await expect(page.getByText('No run matches.')).toBeVisible();
  await page.getByLabel('Status').selectOption('succeeded');
  await expect(page.getByTestId('history-row')).toHaveCount(1);
  await page.getByLabel('Job').selectOption({ label: 'All jobs' });
  await expect(page.getByTestId('history-row')).toHaveCount(2);
  await page.screenshot({ path: shot('runs'), fullPage: true });
});

test('a job is disabled, edited to a weekly schedule, and deleted only after confirming', async ({ page }) => {
  await signIn(page);
  await nav(page, 'Jobs');
  const job = page.getByTestId('job-row').filter({ hasText: JOB });
  await job.getByRole('switch', { name: `${JOB} enabled` }).click();
  await expect(job.getByRole('switch', { name: `${JOB} enabled` })).toHaveAttribute('aria-checked', 'false');
  await expect(job).toContainText('disabled');

  await job.getByRole('button', { name: `Edit ${JOB}`, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: `Edit ${JOB}` })).toBeVisible();
  await page.getByRole('button', { name: /Schedule/ }).click();
  await step(page, 3);
  await expect(page.getByLabel('Daily at')).toHaveValue('23:15');
  await page.getByRole('radio', { name: /Weekly/ }).check();
  const weekdays = page.getByRole('group', { name: 'Weekly on' });
  await weekdays.getByRole('checkbox', { name: 'Saturday' }).check();
  await weekdays.getByRole('checkbox', { name: 'Monday' }).uncheck();
  await page.getByLabel('Weekly at').fill('04:30');
  await expect(page.getByTestId('schedule-preview')).toContainText('30 4 * * 6');
  // Keeping fewer restore points deletes some at the next prune: the review asks for the password again.
  await page.getByRole('button', { name: /Options/ }).click();
  await step(page, 4);
  await page.getByRole('spinbutton', { name: 'Keep last' }).fill('3');
  await page.getByRole('button', { name: /Review/ }).click();
  await step(page, 5);
  await page.getByRole('checkbox', { name: /Enabled/ }).check();
  const confirm = page.getByLabel(/Retention goes down \(keep last 7 → 3\).*Confirm with your password/);
  await expect(confirm).toBeVisible();
  await confirm.fill('not-my-password');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'your password is wrong; nothing was changed' })).toBeVisible();
  await confirm.fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} saved.` })).toBeVisible();
  await expect(job).toContainText('Saturdays at 04:30');
  await expect(job.getByRole('switch', { name: `${JOB} enabled` })).toHaveAttribute('aria-checked', 'true');

  await job.getByRole('button', { name: `Delete ${JOB}`, exact: true }).click();
  const dialog = page.getByRole('dialog', { name: `Delete ${JOB}?` });
  await expect(dialog).toContainText('Restore points it made stay in their repository');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  await expect(job).toBeVisible();
  await job.getByRole('button', { name: `Delete ${JOB}`, exact: true }).click();
  await dialog.getByRole('button', { name: 'Delete job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} deleted.` })).toBeVisible();
  await expect(job).toHaveCount(0);
});
