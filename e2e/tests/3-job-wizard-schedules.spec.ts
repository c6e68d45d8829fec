import { expect, test } from '@playwright/test';
import { describeSchedule, fromCron, toCron, type ScheduleChoice } from '../../apps/web/src/features/jobs/schedule.ts';
import { nav, next, shot, signIn, step, url } from '../fixtures/session.ts';

const JOB = 'e2e weekdays window retries';

// The console's schedule conversions (apps/web has no unit-test project: its tests are these browser specs).
test.describe('schedule choices and cron expressions', () => {
  const roundTrips: Array<[ScheduleChoice, string]> = [
    [{ kind: 'daily', time: '23:15' }, '15 23 * * *'],
    [{ kind: 'weekly', days: [6], time: '04:30' }, '30 4 * * 6'],
    [{ kind: 'weekly', days: [1, 3, 5], time: '21:30' }, '30 21 * * 1,3,5'],
    [{ kind: 'weekly', days: [0, 6], time: '08:05' }, '5 8 * * 0,6'],
    [{ kind: 'monthly', day: 1, time: '02:00' }, '0 2 1 * *'],
    [{ kind: 'monthly', day: 28, time: '00:00' }, '0 0 28 * *'],
    [{ kind: 'monthly', day: 'last', time: '22:45' }, '45 22 L * *'],
  ];
  for (const [choice, cron] of roundTrips) {
    test(`${cron} is written from, and read back into, its choice`, () => {
      expect(toCron(choice)).toBe(cron);
      expect(fromCron(cron)).toEqual(choice);
    });
  }

  test('weekdays are written once each, Sunday first, whatever order they were ticked in', () => {
    expect(toCron({ kind: 'weekly', days: [5, 1, 3, 1], time: '21:30' })).toBe('30 21 * * 1,3,5');
    expect(toCron({ kind: 'weekly', days: [0, 1], time: '21:30' })).toBe('30 21 * * 0,1');
  });

  test('what no choice writes exactly stays a cron expression, so saving a job unchanged never rewrites it', () => {
    for (const expr of ['30 21 * * 1-5', '30 21 * * 7', '30 21 * * 3,1', '30 21 * * 1,1', '05 2 * * *', '0 2 29 * *', '0 2 31 * *', '0 2 1 * 1', '0 2 L * 5', '0 2 1 1 *', '*/15 * * * *', '61 23 * * *', '0 24 * * *', '0 2 * * * *']) {
      expect(fromCron(expr), expr).toEqual({ kind: 'cron', expr });
    }
    expect(fromCron(null)).toEqual({ kind: 'none' });
    expect(toCron({ kind: 'none' })).toBeNull();
  });

  test('schedules are named in words, Monday first', () => {
    expect(describeSchedule('30 21 * * 1,3,5')).toBe('Mondays, Wednesdays and Fridays at 21:30');
    expect(describeSchedule('30 4 * * 6')).toBe('Saturdays at 04:30');
    expect(describeSchedule('0 3 * * 0,1')).toBe('Mondays and Sundays at 03:00');
    expect(describeSchedule('0 3 * * 0,1,2,3,4,5,6')).toBe('Every day of the week at 03:00');
    expect(describeSchedule('0 2 15 * *')).toBe('Monthly on day 15 at 02:00');
    expect(describeSchedule('45 22 L * *')).toBe('Monthly on the last day at 22:45');
    expect(describeSchedule('30 21 * * 1-5')).toBe('cron 30 21 * * 1-5');
    expect(describeSchedule(null)).toBe('On demand');
  });
});

test('the wizard schedules a job on several weekdays, previews a monthly one, and keeps a backup window and automatic retries', async ({ page }) => {
  test.setTimeout(90_000);
  await signIn(page);
  await nav(page, 'Jobs');
  await page.getByRole('link', { name: 'New job' }).click();

  await step(page, 1);
  await page.getByLabel('Search VMs').fill('app-01');
  await page.getByLabel('Select app-01').check();
  await next(page);
  await step(page, 2);
  await next(page);

  // 3. Schedule: monthly on the last day, as the Director reads it; then Monday, Wednesday and Friday at 21:30.
  await step(page, 3);
  await page.getByRole('radio', { name: /Monthly/ }).check();
  await page.getByLabel('Monthly on', { exact: true }).selectOption({ label: 'the last day' });
  await page.getByLabel('Monthly at').fill('02:00');
  await expect(page.getByTestId('schedule-preview')).toContainText('0 2 L * * — next runs:');
  await page.getByLabel('Monthly on', { exact: true }).selectOption({ label: 'day 15' });
  await expect(page.getByTestId('schedule-preview')).toContainText('0 2 15 * * — next runs:');

  await page.getByRole('radio', { name: /Weekly/ }).check();
  const weekdays = page.getByRole('group', { name: 'Weekly on' });
  await expect(weekdays.getByRole('checkbox')).toHaveCount(7);
  // The one day left cannot be unticked: a weekly schedule needs a day.
  await expect(weekdays.getByRole('checkbox', { name: 'Monday' })).toBeChecked();
  await expect(weekdays.getByRole('checkbox', { name: 'Monday' })).toBeDisabled();
  await weekdays.getByRole('checkbox', { name: 'Wednesday' }).check();
  await weekdays.getByRole('checkbox', { name: 'Friday' }).check();
  await expect(weekdays.getByRole('checkbox', { name: 'Monday' })).toBeEnabled();
  await page.getByLabel('Weekly at').fill('21:30');
  await expect(page.getByTestId('schedule-preview')).toContainText('30 21 * * 1,3,5 — next runs:');
  await page.screenshot({ path: shot('wizard-schedule-weekdays'), fullPage: true });
  await next(page);

  // 4. Options: a night window and two retries 15 minutes apart; a window that ends when it starts is refused.
  await step(page, 4);
  await page.getByRole('checkbox', { name: /Start scheduled runs only inside a backup window/ }).check();
  await page.getByLabel('Backup window from').fill('20:00');
  await page.getByLabel('Backup window to').fill('20:00');
  await next(page);
  await step(page, 4);
  await expect(page.getByRole('alert')).toHaveText('A backup window must not start and end at the same time.');
  await page.getByLabel('Backup window to').fill('06:00');
  await page.getByRole('spinbutton', { name: 'Retry failed VMs automatically' }).fill('2');
  await page.getByRole('spinbutton', { name: 'Minutes between retries' }).fill('15');
  await page.screenshot({ path: shot('wizard-options-window-retries'), fullPage: true });
  await next(page);

  // 5. Review.
  await step(page, 5);
  await page.getByLabel('Job name').fill(JOB);
  const summary = page.getByRole('definition');
  await expect(summary.filter({ hasText: 'Mondays, Wednesdays and Fridays at 21:30' })).toContainText('30 21 * * 1,3,5');
  await expect(page.getByTestId('review-window')).toHaveText('20:00–06:00 (appliance time zone): scheduled runs start only inside it; VMs not started when it closes wait for the next run');
  await expect(page.getByTestId('review-retries')).toHaveText('failed VMs retried 2 times, 15 minutes apart');
  await page.screenshot({ path: shot('wizard-review-window-retries'), fullPage: true });
  await page.getByRole('button', { name: 'Create job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} created.` })).toBeVisible();
  const row = page.getByTestId('job-row').filter({ hasText: JOB });
  await expect(row).toContainText('Mondays, Wednesdays and Fridays at 21:30');

  // As stored.
  const jobs = (await (await page.request.get(`${url()}/api/jobs`)).json()) as Array<{ id: string; name: string; schedule: string | null; options: { window: unknown; retries: unknown } }>;
  const job = jobs.find((j) => j.name === JOB)!;
  expect(job.schedule).toBe('30 21 * * 1,3,5');
  expect(job.options.window).toEqual({ start: '20:00', end: '06:00' });
  expect(job.options.retries).toEqual({ count: 2, delayMinutes: 15 });

  // Opened again, the wizard shows the same choices.
  await page.goto(`${url()}/jobs/${job.id}/edit`);
  await page.getByRole('button', { name: /Schedule/ }).click();
  await step(page, 3);
  for (const day of ['Monday', 'Wednesday', 'Friday']) await expect(weekdays.getByRole('checkbox', { name: day })).toBeChecked();
  for (const day of ['Tuesday', 'Thursday', 'Saturday', 'Sunday']) await expect(weekdays.getByRole('checkbox', { name: day })).not.toBeChecked();
  await expect(page.getByLabel('Weekly at')).toHaveValue('21:30');
  await page.getByRole('button', { name: /Options/ }).click();
  await step(page, 4);
  await expect(page.getByLabel('Backup window from')).toHaveValue('20:00');
  await expect(page.getByLabel('Backup window to')).toHaveValue('06:00');
  await expect(page.getByRole('spinbutton', { name: 'Retry failed VMs automatically' })).toHaveValue('2');

  // Later specs count the jobs: this one goes again.
  await nav(page, 'Jobs');
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: `Delete ${JOB}?` }).getByRole('button', { name: 'Delete job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} deleted.` })).toBeVisible();
  expect(((await (await page.request.get(`${url()}/api/jobs`)).json()) as Array<{ name: string }>).some((j) => j.name === JOB)).toBe(false);
});
