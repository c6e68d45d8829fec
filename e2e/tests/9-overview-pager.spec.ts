import { AxeBuilder } from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { expectNoHorizontalScroll, LAPTOP, PHONE } from '../fixtures/layout.ts';
import { labState, nav, shot, signIn, url } from '../fixtures/session.ts';

// What this spec reads of the API's answer (the e2e package does not depend on @vaultline/contracts).
type Protection = { total: number; counts: { protected: number; unprotected: number; attention: number }; vms: { name: string }[] };

/** VMs made for this spec (no disks: the overview lists them, no job covers them), destroyed again at its end. */
const PREFIX = 'e2e-pager-';
const MADE = 30;

const protection = async (page: Page, query = ''): Promise<Protection> => {
  const res = await page.request.get(`${url()}/api/overview/protection?${query}`);
  expect(res.status(), await res.text()).toBe(200);
  return (await res.json()) as Protection;
};
const n = (x: number) => x.toLocaleString('en-US');

test('the overview’s protection table pages through the VMs (25/50/100 a page), filters and searches on the Director, by keyboard and at 390 px, and keeps its page across refreshes', async ({ page }) => {
  test.setTimeout(180_000);
  const lab = connectLab(labState());
  const made: string[] = [];
  try {
    for (let i = 0; i < MADE; i++) made.push((await lab.createVm({ name: `${PREFIX}${String(i).padStart(2, '0')}`, disks: [], cbt: false })).moref);
    await signIn(page);
    // The Director keeps each vCenter's inventory for a minute: read it now, with this spec's VMs.
    const all = await protection(page, 'fresh=true&limit=1');
    expect(all.total).toBeGreaterThan(MADE);
    // The first screen after signing in read the overview before that: read it again.
    await page.reload();
    await nav(page, 'Overview');
    const panel = page.getByTestId('protection');
    const rows = panel.getByTestId('protection-row');
    const range = panel.getByTestId('protection-range');
    const pager = page.getByRole('navigation', { name: 'Protection table pages' });
    const previous = pager.getByRole('button', { name: 'Previous page' });
    const next = pager.getByRole('button', { name: 'Next page' });

    // 50 a page at first; 25 a page when chosen, starting at the first page.
    await expect(range).toContainText(`1–${n(Math.min(50, all.total))} of ${n(all.total)}`);
    await expect(rows).toHaveCount(Math.min(50, all.total));
    await pager.getByLabel('Rows per page').selectOption('25');
    await expect(range).toContainText(`1–25 of ${n(all.total)}`);
    await expect(rows).toHaveCount(25);
    await expect(previous).toBeDisabled();
    const firstPage = await rows.locator('.name-cell strong').allInnerTexts();

    // By keyboard: Tab from the page size reaches Next (Previous is disabled), Enter turns the page.
    await pager.getByLabel('Rows per page').focus();
    await page.keyboard.press('Tab');
    await expect(next).toBeFocused();
    await page.keyboard.press('Enter');
    const secondEnd = Math.min(50, all.total);
    await expect(range).toContainText(`26–${n(secondEnd)} of ${n(all.total)}`);
    await expect(rows).toHaveCount(secondEnd - 25);
    const secondPage = await rows.locator('.name-cell strong').allInnerTexts();
    expect(secondPage.filter((name) => firstPage.includes(name)), 'no VM on both pages').toEqual([]);
    // The page is the Director's: the same VMs as offset 25, limit 25.
    expect(secondPage).toEqual((await protection(page, 'offset=25&limit=25')).vms.map((v) => v.name));
    await expect(page).toHaveURL(/vms_page=2/);
    await expect(previous).toBeEnabled();

    // The panel's periodic refresh (every 30 s) asks for the same page and stays on it.
    await page.waitForResponse((r) => r.url().includes('/api/overview/protection') && r.url().includes('offset=25') && r.url().includes('limit=25'), { timeout: 45_000 });
    await expect(range).toContainText(`26–${n(secondEnd)} of ${n(all.total)}`);
    // So does "Refresh inventory" and a reload (the page is in the address).
    await panel.getByRole('button', { name: 'Refresh inventory' }).click();
    await expect(panel.getByRole('button', { name: 'Refresh inventory' })).toBeEnabled();
    await expect(range).toContainText(`26–${n(secondEnd)} of ${n(all.total)}`);
    await page.reload();
    await expect(range).toContainText(`26–${n(secondEnd)} of ${n(all.total)}`);
    await expect(rows.locator('.name-cell strong')).toHaveText(secondPage);
    await previous.focus();
    await page.keyboard.press('Enter');
    await expect(range).toContainText(`1–25 of ${n(all.total)}`);

    // Filters are applied by the Director: only unprotected VMs, counted; back to the first page.
    const counts = (await protection(page, 'limit=1')).counts;
    await panel.getByLabel('Show').selectOption('unprotected');
    await expect(range).toContainText(`1–${n(Math.min(25, counts.unprotected))} of ${n(counts.unprotected)}`);
    await expect(rows.getByTestId('protection-state').filter({ hasText: /^Protected$/ })).toHaveCount(0);
    await expect(page).toHaveURL(/vms_status=unprotected/);

    // A name search (with the state filter): this spec's VMs 10–19.
    await panel.getByLabel('Search by name').fill(`${PREFIX}1`);
    await expect(range).toContainText('1–10 of 10');
    await expect(rows).toHaveCount(10);
    await expect(rows.first()).toContainText(`${PREFIX}10`);
    await expect(next).toBeDisabled();
    await expect(panel.getByText(/^10 of \d+ VMs$/)).toBeVisible();
    await panel.getByLabel('Search by name').fill('no-vm-is-called-this');
    await expect(panel.getByText('No VM matches.')).toBeVisible();
    await panel.getByLabel('Search by name').fill(PREFIX);
    await expect(range).toContainText(`1–25 of ${MADE}`);
    await expect(next).toBeEnabled();

    const { violations } = await new AxeBuilder({ page }).include('[data-testid="protection"]').withTags(['wcag2a', 'wcag2aa']).analyze();
    expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}: ${v.nodes.map((x) => x.target.join(' ')).join(' | ')}`)).toEqual([]);

    // At a phone's width: the table is cards, the pager and filters fit and work.
    await page.setViewportSize(PHONE);
    await expectNoHorizontalScroll(page, 'the overview with its pager');
    await next.scrollIntoViewIfNeeded();
    await expect(next).toBeVisible();
    await next.click();
    await expect(range).toContainText(`26–${MADE} of ${MADE}`);
    await expect(rows).toHaveCount(MADE - 25);
    await expectNoHorizontalScroll(page, 'the overview’s second page');
    await page.screenshot({ path: shot('overview-pager-phone'), fullPage: true });
    await page.setViewportSize(LAPTOP);
    await page.screenshot({ path: shot('overview-pager'), fullPage: true });
  } finally {
    // The later specs find their own VMs on the overview's first page: this spec's go again.
    const soap = await lab.soap();
    for (const moref of made) await soap.task(`<Destroy_Task><_this type="VirtualMachine">${moref}</_this></Destroy_Task>`).catch(() => undefined);
    await page.request.get(`${url()}/api/overview/protection?fresh=true&limit=1`).catch(() => undefined);
  }
});
