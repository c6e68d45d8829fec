import { AxeBuilder } from '@axe-core/playwright';
import { expect, test } from '@playwright/test';
import { visitEveryPage } from '../fixtures/pages.ts';
import { signIn } from '../fixtures/session.ts';


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
  await visitEveryPage(page, check);
  expect(found, found.join('\n')).toEqual([]);
});
