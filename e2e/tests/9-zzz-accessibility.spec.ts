import { AxeBuilder } from '@axe-core/playwright';
import { expect, test } from '@playwright/test';
import { rowActions } from '../fixtures/layout.ts';
import { visitEveryPage } from '../fixtures/pages.ts';
import { signIn } from '../fixtures/session.ts';


// Runs last, so every list holds what the earlier specs made (jobs, runs, restore points, users).
test('every page of the console has one h1, passes axe-core with no serious or critical violation (WCAG 2 A/AA rules), and names each row’s actions uniquely', async ({ page }) => {
  test.setTimeout(180_000);
  await signIn(page);
  const found: string[] = [];
  const ambiguous: string[] = [];
  let actionsSeen = 0;
  const check = async (label: string) => {
    // Let lists and figures load: the checked page is the one an operator reads.
    await page.waitForLoadState('networkidle');
    // One h1 per page: its title.
    await expect(page.getByRole('heading', { level: 1 })).toHaveCount(1);
    const { violations } = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
    for (const v of violations.filter((x) => x.impact === 'serious' || x.impact === 'critical')) {
      found.push(`${label}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(' | ')}`);
    }
    // A screen reader's list of buttons and links must tell the rows' actions apart ("Delete nightly", not "Delete" ×3):
    // two actions may share a name only when both are links to the same place.
    const actions = await rowActions(page);
    actionsSeen += actions.length;
    const byName = new Map<string, string[]>();
    for (const [name, href] of actions) byName.set(name, [...(byName.get(name) ?? []), href]);
    for (const [name, hrefs] of byName) {
      if (hrefs.length > 1 && (hrefs.includes('') || new Set(hrefs).size > 1)) ambiguous.push(`${label}: ${hrefs.length} row actions named "${name}"`);
    }
  };
  await visitEveryPage(page, check);
  expect(found, found.join('\n')).toEqual([]);
  expect(actionsSeen, 'the earlier specs made rows with actions (jobs, users, vCenters…)').toBeGreaterThan(0);
  expect(ambiguous, ambiguous.join('\n')).toEqual([]);
});
