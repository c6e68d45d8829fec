import { AxeBuilder } from '@axe-core/playwright';
import { expect, test } from '@playwright/test';
import { nav, signIn, url } from '../fixtures/session.ts';

const PAGES = ['Overview', 'Jobs', 'Drills', 'Runs', 'Repositories', 'Transporters', 'vCenters', 'Notifications', 'Users'];

// Runs last, so every list holds what the earlier specs made (jobs, runs, restore points, users).
test('every page of the console has one h1 and passes axe-core with no serious or critical violation (WCAG 2 A/AA rules)', async ({ page }) => {
  test.setTimeout(180_000);
  await signIn(page);
  const found: string[] = [];
  const check = async (label: string) => {
    // Let lists and figures load: the checked page is the one an operator reads.
    await page.waitForLoadState('networkidle');
    // One h1 per page: its title.
    await expect(page.getByRole('heading', { level: 1 })).toHaveCount(1);
    const { violations } = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
    for (const v of violations.filter((x) => x.impact === 'serious' || x.impact === 'critical')) {
      found.push(`${label}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(' | ')}`);
    }
  };
  for (const label of PAGES) {
    await nav(page, label);
    await check(label);
  }
  // The pages reached from those: a run, a repository, a job, the wizards, the password form.
  const runs = (await (await page.request.get(`${url()}/api/runs`)).json()) as { id: string }[] | { items: { id: string }[] };
  const firstRun = (Array.isArray(runs) ? runs : runs.items)[0];
  expect(firstRun, 'the earlier specs made runs').toBeDefined();
  const repos = (await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string }[];
  expect(repos.length).toBeGreaterThan(0);
  const jobs = (await (await page.request.get(`${url()}/api/jobs`)).json()) as { id: string }[];
  expect(jobs.length).toBeGreaterThan(0);
  for (const [label, path] of [
    ['a run', `/runs/${firstRun!.id}`],
    ['a repository', `/repositories/${repos[0]!.id}`],
    ['a job', `/jobs/${jobs[0]!.id}`],
    ['the job wizard', '/jobs/new'],
    ['the drill form', '/drills/new'],
    ['the restore wizard', '/restore'],
    ['the password form', '/account/password'],
  ] as const) {
    await page.goto(`${url()}${path}`);
    await check(label);
  }
  expect(found, found.join('\n')).toEqual([]);
});
