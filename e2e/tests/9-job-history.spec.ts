import { AxeBuilder } from '@axe-core/playwright';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { expectNoHorizontalScroll, LAPTOP, PHONE } from '../fixtures/layout.ts';
import { nav, shot, signIn, url } from '../fixtures/session.ts';

// What this spec reads of the API's answers (the e2e package does not depend on @vaultline/contracts).
type Job = { id: string; name: string };
type JobHistory = { jobId: string; runs: { id: string; status: string; durationSeconds: number | null }[] };

const VM = 'web-01';
// A one-VM job, made here when an earlier run of this spec has not left it.
const JOB = `e2e history – ${VM}`;

async function theJob(request: APIRequestContext): Promise<Job> {
  const found = ((await (await request.get(`${url()}/api/jobs`)).json()) as Job[]).find((j) => j.name === JOB);
  if (found) return found;
  const [vc] = (await (await request.get(`${url()}/api/vcenters`)).json()) as { id: string }[];
  const [repo] = (await (await request.get(`${url()}/api/repositories`)).json()) as { id: string }[];
  const vms = (await (await request.get(`${url()}/api/vcenters/${vc!.id}/vms`)).json()) as { moref: string; name: string; instanceUuid?: string | null }[];
  const vm = vms.find((v) => v.name === VM)!;
  const res = await request.post(`${url()}/api/jobs`, {
    data: { name: JOB, vcenterId: vc!.id, repositoryId: repo!.id, sources: [{ moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) }] },
  });
  expect(res.status(), await res.text()).toBe(201);
  return (await res.json()) as Job;
}

/** axe-core's serious and critical WCAG 2 A/AA violations on the page as it is (as 9-zzz-accessibility.spec.ts checks). */
async function seriousViolations(page: Page): Promise<string[]> {
  await page.waitForLoadState('networkidle');
  const { violations } = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`);
}

async function history(request: APIRequestContext, jobId: string): Promise<JobHistory> {
  const res = await request.get(`${url()}/api/jobs/${jobId}/history`);
  expect(res.status(), await res.text()).toBe(200);
  return (await res.json()) as JobHistory;
}

test('a job’s runs are bars (duration and result) in the Jobs list and on the job page; a bar opens its run', async ({ page }) => {
  test.setTimeout(240_000);
  await signIn(page);
  const job = await theJob(page.request);

  // At least two finished runs: run the job until it has them (one at a time: a job runs once at a time).
  while ((await history(page.request, job.id)).runs.filter((r) => r.durationSeconds !== null).length < 2) {
    const started = await page.request.post(`${url()}/api/jobs/${job.id}/run`);
    expect(started.status(), await started.text()).toBe(202);
    const { id } = (await started.json()) as { id: string };
    await expect
      .poll(async () => ((await (await page.request.get(`${url()}/api/runs/${id}`)).json()) as { status: string }).status, { timeout: 120_000, intervals: [500, 1000] })
      .toMatch(/succeeded|warning|failed|cancelled/);
  }
  const { runs } = await history(page.request, job.id);
  const last = runs.at(-1)!;
  expect(last.durationSeconds).not.toBeNull();

  // The list: the job's name links to its page, its latest runs are a small picture with a summary.
  await nav(page, 'Jobs');
  const row = page.getByTestId('job-row').filter({ hasText: JOB });
  await expect(row.getByRole('img', { name: new RegExp(`^Recent runs of ${JOB}: last ${Math.min(runs.length, 12)} runs: `) })).toBeVisible();
  await expect(row.getByTestId('history-sparkline').locator('.history-bar')).toHaveCount(Math.min(runs.length, 12));
  expect(await seriousViolations(page)).toEqual([]);
  await page.screenshot({ path: shot('jobs-history'), fullPage: true });
  await page.setViewportSize(PHONE);
  await expectNoHorizontalScroll(page, 'the Jobs list');
  await page.setViewportSize(LAPTOP);
  await row.getByRole('link', { name: JOB, exact: true }).click();

  // The job page: what it backs up and when, and one bar per run, each named by its time, result and duration.
  await expect(page.getByRole('heading', { level: 1, name: JOB })).toBeVisible();
  await expect(page.getByRole('heading', { level: 1 })).toHaveCount(1);
  await expect(page.getByTestId('job-sources')).toHaveText(VM);
  await expect(page.getByTestId('job-schedule')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Edit', exact: true })).toHaveAttribute('href', `/jobs/${job.id}/edit`);
  await expect(page.getByRole('button', { name: 'Run now' })).toBeEnabled();
  const chart = page.getByTestId('history-chart');
  const bars = chart.getByRole('link');
  await expect(bars).toHaveCount(runs.length);
  for (const [i, r] of runs.entries()) {
    await expect(bars.nth(i)).toHaveAttribute('href', `/runs/${r.id}`);
    await expect(bars.nth(i)).toHaveAccessibleName(new RegExp(`^Run .+, ${r.status}(, \\d+ (s|min \\d+ s|h \\d+ min))?$`));
  }
  await expect(chart).toContainText(`${runs.length} run`);
  await expect(page.getByTestId('job-run-row')).toHaveCount(runs.length);

  // No serious accessibility problem on the page.
  expect(await seriousViolations(page)).toEqual([]);

  // A phone: the bars shrink, nothing scrolls sideways.
  await page.setViewportSize(PHONE);
  await expectNoHorizontalScroll(page, 'the job page');
  await expect(bars.last()).toBeVisible();
  await page.screenshot({ path: shot('job-history'), fullPage: true });

  // A bar opens its run.
  await bars.last().click();
  await expect(page).toHaveURL(new RegExp(`/runs/${last.id}$`));
  await expect(page.getByTestId('run-status')).toHaveText(last.status);
});
