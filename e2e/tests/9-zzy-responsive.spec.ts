import { expect, test, type Page } from '@playwright/test';
import { expectNoHorizontalScroll, horizontalOverflow, LAPTOP, PHONE } from '../fixtures/layout.ts';
import { NAV_PAGES, visitEveryPage } from '../fixtures/pages.ts';
import { signIn } from '../fixtures/session.ts';

// Runs after the other 9-* specs (every list holds what they made) and before 9-zzz-accessibility.
/** The widest window with the Menu button (styles.css); wider, the links are inline. */
const MENU_UP_TO = 1120;
/** Widths checked for sideways scrolling besides the two photographed: a small tablet, the narrow layout's edge, around the menu's breakpoint, wide screens. */
const MORE_WIDTHS = [600, 760, 761, 1024, MENU_UP_TO, MENU_UP_TO + 1, 1920, 2560];

/** Screenshots kept with the other test results (playwright.config.ts outputDir). */
const screen = (name: string) => new URL(`../../.vaultline/e2e-results/screens/${name}.png`, import.meta.url).pathname;
const slug = (label: string) => label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

const menuButton = (page: Page) => page.getByRole('button', { name: 'Menu', exact: true });
const mainLink = (page: Page, label: string) => page.locator('#main-nav-links').getByRole('link', { name: label, exact: true });

test('at 390 px the main navigation collapses behind a Menu button; at 1440 px its links are inline', async ({ page }) => {
  await page.setViewportSize(LAPTOP);
  await signIn(page);
  await expect(menuButton(page)).toBeHidden();
  for (const label of NAV_PAGES) await expect(mainLink(page, label)).toBeVisible();
  // Just wider than the menu's breakpoint, an admin's links still fit on one line of the top bar.
  await page.setViewportSize({ width: MENU_UP_TO + 1, height: 900 });
  await expect(menuButton(page)).toBeHidden();
  const tops = await page.locator('#main-nav-links a').evaluateAll((links) => links.map((a) => Math.round(a.getBoundingClientRect().top)));
  expect(tops.length).toBe(NAV_PAGES.length);
  expect(new Set(tops).size, `the links' top edges: ${tops.join(', ')}`).toBe(1);
  await page.setViewportSize({ width: MENU_UP_TO, height: 900 });
  await expect(menuButton(page)).toBeVisible();

  await page.setViewportSize(PHONE);
  const menu = menuButton(page);
  await expect(menu).toBeVisible();
  await expect(menu).toHaveAttribute('aria-expanded', 'false');
  await expect(menu).toHaveAttribute('aria-controls', 'main-nav-links');
  for (const label of NAV_PAGES) await expect(mainLink(page, label)).toBeHidden();

  // Pressed: the links show; one chosen navigates and the menu closes, focus on the page it opened.
  await menu.click();
  await expect(menu).toHaveAttribute('aria-expanded', 'true');
  for (const label of NAV_PAGES) await expect(mainLink(page, label)).toBeVisible();
  await expectNoHorizontalScroll(page, 'the open menu');
  await page.screenshot({ path: screen('menu-open-390'), fullPage: true });
  await mainLink(page, 'Runs').click();
  await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
  await expect(menu).toHaveAttribute('aria-expanded', 'false');
  await expect(mainLink(page, 'Runs')).toBeHidden();
  await expect(page.locator('#main')).toBeFocused();

  // From the keyboard: Enter opens, Tab reaches the links, Escape closes and gives focus back to the button.
  await menu.focus();
  await page.keyboard.press('Enter');
  await expect(menu).toHaveAttribute('aria-expanded', 'true');
  await page.keyboard.press('Tab');
  await expect(mainLink(page, 'Overview')).toBeFocused();
  await page.keyboard.press('Escape');
  await expect(menu).toHaveAttribute('aria-expanded', 'false');
  await expect(mainLink(page, 'Overview')).toBeHidden();
  await expect(menu).toBeFocused();
  // Enter on a link opens its page and closes the menu.
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await expect(mainLink(page, 'Jobs')).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { level: 1, name: 'Jobs' })).toBeVisible();
  await expect(menu).toHaveAttribute('aria-expanded', 'false');

  // A click outside closes it too.
  await menu.click();
  await expect(mainLink(page, 'Jobs')).toBeVisible();
  await page.mouse.click(PHONE.width / 2, PHONE.height - 40);
  await expect(menu).toHaveAttribute('aria-expanded', 'false');

  // So does Tab past its last link: the account menu's button is next.
  await menu.click();
  await mainLink(page, 'Users').focus();
  await page.keyboard.press('Tab');
  await expect(page.getByRole('button', { name: /account menu/ })).toBeFocused();
  await expect(menu).toHaveAttribute('aria-expanded', 'false');
  await expect(mainLink(page, 'Users')).toBeHidden();

  // Back to a wide window: the links are inline again.
  await page.setViewportSize(LAPTOP);
  await expect(menu).toBeHidden();
  await expect(mainLink(page, 'Runs')).toBeVisible();
});

test('every page fits the window without horizontal scroll at 1440×900 and 390×844 (and at widths between 600 and 2560), with a screenshot of each', async ({ page }) => {
  test.setTimeout(300_000);
  await page.setViewportSize(LAPTOP);
  await signIn(page);
  const found: string[] = [];
  const check = async (label: string) => {
    await expect(page.getByRole('heading', { level: 1 })).toHaveCount(1);
    // Let lists and figures load: the checked page is the one an operator reads.
    await page.waitForLoadState('networkidle');
    for (const size of [LAPTOP, PHONE, ...MORE_WIDTHS.map((width) => ({ width, height: 900 }))]) {
      await page.setViewportSize(size);
      // Figures (charts) lay out after a resize: give them a moment before naming what sticks out.
      let overflow = await horizontalOverflow(page);
      for (let i = 0; i < 10 && overflow.length; i++) {
        await page.waitForTimeout(200);
        overflow = await horizontalOverflow(page);
      }
      if (overflow.length) found.push(`${label} at ${size.width} px: ${overflow.join(', ')}`);
      if (size === LAPTOP || size === PHONE) await page.screenshot({ path: screen(`${slug(label)}-${size.width}`), fullPage: true });
    }
    await page.setViewportSize(LAPTOP);
  };
  await visitEveryPage(page, check);
  expect(found, found.join('\n')).toEqual([]);
});
