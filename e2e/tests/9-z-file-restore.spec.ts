import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test, type Download, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { startExtraDirector } from '../fixtures/appliance.ts';
import { buildFilesImage, MANY, ODD_NAME, sha256, writeImageToLabVm, type FilesImage } from '../fixtures/disk-image.ts';
import { backUpNow, labState, nav, shot, signIn, signInAsNew, signOut, url } from '../fixtures/session.ts';

// File-level restore from the console: a real GPT/ext4 disk image written into a lab VM, backed up by the
// real Transporter, then browsed through the real Director (NBD, nbdfuse, loop devices, read-only mounts).
const VM = 'e2e-files-01';

test.describe.configure({ mode: 'serial' });

let work: string;
let image: FilesImage;

test.beforeAll(async () => {
  // Skipped only when the tests do not run as root (with CI=true, e2e/playwright.config.ts stops a run that is not root and says why, so in CI it always runs): file-level restore needs loop devices and mounts, which only root may make.
  // Skipped off root only (loop devices and mounts need root); e2e/playwright.config.ts refuses CI=true without root, so on CI it always runs.
  // Skipped only outside CI for a developer who is not root; in CI (CI=true) it runs, and fails without root.
  test.skip(process.getuid?.() !== 0 && process.env.CI !== 'true', 'needs root: the disk image is built on a loop device and the Director mounts it');
  work = await mkdtemp(path.join(os.tmpdir(), 'vaultline-e2e-files-'));
  image = await buildFilesImage(work);
});

test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** The token of the next browse session the page opens (the console never shows it). */
const nextSession = async (page: Page) => {
  const res = await page.waitForResponse((r) => r.request().method() === 'POST' && /^\/api\/restore-points\/[^/]+\/browse$/.test(new URL(r.url()).pathname), { timeout: 60_000 });
  expect(res.status(), await res.text()).toBe(201);
  return ((await res.json()) as { session: string }).session;
};

const pointOf = async (page: Page) => {
  const [point] = (await (await page.request.get(`${url()}/api/restore-points?vm=${VM}`)).json()) as Array<{ id: string }>;
  return point!.id;
};

/** What the Director answers for a session: 200 while open, 404 once closed. */
const sessionStatus = async (page: Page, pointId: string, token: string) => (await page.request.get(`${url()}/api/restore-points/${pointId}/browse/${token}`)).status();

const download = async (page: Page, click: () => Promise<void>): Promise<{ d: Download; body: Buffer }> => {
  const [d] = await Promise.all([page.waitForEvent('download'), click()]);
  const file = await d.path();
  return { d, body: await readFile(file) };
};

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/** A row of the folder shown, by its entry's exact name (a row's accessible name starts with it). */
const entry = (page: Page, name: string) => page.getByTestId('directory-browser').getByRole('row', { name: new RegExp(`^${escapeRe(name)} `) });

const tarList = (tarball: Buffer, verbose = false) => execFileSync('tar', [verbose ? '-tvf' : '-tf', '-'], { input: tarball, encoding: 'utf8' });

test('a restore point’s files from the restore point list: partitions and why not, folders, downloads checked by SHA-256 and tar, links not followed, load more; Close and leaving end the session', async ({ page }) => {
  test.setTimeout(300_000);
  const lab = connectLab(labState());
  const vm = await lab.createVm({ name: VM, disks: [{ capacityBytes: image.capacityBytes }], cbt: true, powerOn: true });
  await writeImageToLabVm(labState(), vm.moref, vm.disks[0]!.key, image.file);

  await signIn(page);
  await backUpNow(page, VM);

  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: 'Local repository' }).getByRole('link', { name: 'Local repository' }).click();
  await page.getByLabel('VM').selectOption(VM);
  const opened = nextSession(page);
  await page.getByTestId('point-row').first().getByRole('link', { name: new RegExp(`^Browse files of ${VM} from`) }).click();
  await expect(page.getByRole('heading', { level: 1, name: `Files of ${VM}` })).toBeVisible();
  const token = await opened;
  const pointId = await pointOf(page);

  // The disk, its partitions with filesystem, label and size; the LVM one is named and not opened.
  const disk = page.getByTestId('browse-disk');
  await expect(disk.getByRole('heading', { level: 4 })).toHaveText('Hard disk 1 40 MiB · GPT');
  const parts = page.getByTestId('partition-row');
  await expect(parts).toHaveCount(2);
  await expect(parts.nth(0).getByRole('cell')).toHaveText([`Partition 1 (${image.ext4.partitionName})`, 'ext4', image.ext4.label, '32 MiB', /^read-only · /, /^Browse/]);
  await expect(parts.nth(1).getByTestId('partition-reason')).toHaveText(/^Not opened: .*LVM/);
  await expect(parts.nth(1).getByRole('button')).toHaveCount(0);

  // The one mounted partition is opened at its root.
  const browser = page.getByTestId('directory-browser');
  await expect(browser.getByRole('heading', { level: 3 })).toHaveText(`Hard disk 1 · Partition 1 (${image.ext4.partitionName}) · ext4 “${image.ext4.label}”`);
  const crumbs = page.getByRole('navigation', { name: 'Path' });
  await expect(crumbs.locator('[aria-current="page"]')).toHaveText('/ (root)');
  const entries = browser.getByTestId('entry');
  const at = (name: string) => entry(page, name);
  await expect(entries).toHaveCount(9);
  await expect(browser.getByTestId('entry-count')).toHaveText('9 entries');
  for (const name of ['docs', 'empty-dir', 'many', 'big.bin', 'empty', ODD_NAME, 'a-fifo', 'passwd-link']) await expect(at(name)).toHaveCount(1);
  // Folders first (shown with a trailing /), by name.
  await expect(entries.nth(0)).toContainText(/^docs\//);
  await expect(entries.nth(2)).toContainText(/^many\//);

  // A symbolic link: its target shown, nothing to open or download (the Director would refuse anyway).
  const link = at('passwd-link');
  await expect(link.getByTestId('link-target')).toHaveText('→ /etc/passwd');
  await expect(link.getByRole('cell').nth(1)).toHaveText('symbolic link');
  await expect(link.getByRole('link')).toHaveCount(0);
  await expect(link.getByRole('button')).toHaveCount(0);
  await expect(link).toContainText('links are not followed');
  const fifo = at('a-fifo');
  await expect(fifo.getByRole('cell').nth(1)).toHaveText('FIFO');
  await expect(fifo.getByRole('link')).toHaveCount(0);
  // A name that is not UTF-8: replacement characters and a mark; it still downloads, by its bytes.
  const raw = entries.filter({ hasText: 'not UTF-8' });
  await expect(raw).toHaveCount(1);
  await expect(raw).toContainText('raw-\ufffd\ufffd.bin');
  expect((await download(page, () => raw.getByRole('link', { name: /^Download raw-/ }).click())).body.toString()).toBe('raw name\n');

  // Sorting by size: the empty file first, then the other way round the big one first (folders stay on top).
  const sizeHeader = browser.getByRole('columnheader', { name: 'Size' });
  await sizeHeader.getByRole('button').click();
  await expect(sizeHeader).toHaveAttribute('aria-sort', 'ascending');
  await expect(browser.locator('[data-testid="entry"][data-type="file"]').first()).toContainText(/^empty/);
  await sizeHeader.getByRole('button').click();
  await expect(sizeHeader).toHaveAttribute('aria-sort', 'descending');
  await expect(browser.locator('[data-testid="entry"][data-type="file"]').first()).toContainText(/^big\.bin/);
  // Folders stay on top, in name order (they have no size to sort by).
  await expect(entries.nth(0)).toContainText(/^docs\//);
  await expect(entries.nth(2)).toContainText(/^many\//);
  await page.screenshot({ path: shot('files-root'), fullPage: true });

  // A file: its size shown, downloaded by the browser under its own name, the same bytes as written.
  await expect(at('big.bin').getByRole('cell').nth(2)).toHaveText('1.5 MiB');
  const big = await download(page, () => at('big.bin').getByRole('link', { name: 'Download big.bin' }).click());
  expect(big.d.suggestedFilename()).toBe('big.bin');
  expect(big.body.length).toBe(image.bigBytes);
  expect(sha256(big.body)).toBe(image.bigSha256);
  const odd = await download(page, () => at(ODD_NAME).getByRole('link', { name: `Download ${ODD_NAME}` }).click());
  expect(odd.d.suggestedFilename()).toBe(ODD_NAME);
  expect(odd.body.toString()).toBe('odd name, plain content\n');

  // A folder as .tar, listed by GNU tar.
  const docsTar = await download(page, () => at('docs').getByRole('link', { name: '.tar of docs' }).click());
  expect(docsTar.d.suggestedFilename()).toBe('docs.tar');
  expect(tarList(docsTar.body).trim().split('\n').map((l) => l.replace(/\/$/, '')).sort()).toEqual(['docs', 'docs/q4-link', 'docs/readme.md', 'docs/reports', 'docs/reports/2026', 'docs/reports/2026/q4.txt']);
  // The whole partition: the link kept as a link, the FIFO left out (as the page says).
  await expect(browser).toContainText('FIFOs, sockets and device files are left out');
  const all = await download(page, () => browser.getByTestId('folder-archive').click());
  const listing = tarList(all.body, true);
  expect(listing).toMatch(/^l.* passwd-link -> \/etc\/passwd$/m);
  expect(listing).toMatch(/ big\.bin$/m);
  expect(listing).not.toMatch(/a-fifo/);

  // Into the folders, and back by the breadcrumb.
  await at('docs').getByRole('link', { name: 'docs', exact: true }).click();
  await expect(crumbs.locator('[aria-current="page"]')).toHaveText('docs');
  await expect(at('q4-link').getByTestId('link-target')).toHaveText('→ reports/2026/q4.txt');
  await at('reports').getByRole('link', { name: 'reports', exact: true }).click();
  await at('2026').getByRole('link', { name: '2026', exact: true }).click();
  await expect(crumbs.getByRole('listitem')).toHaveText(['/ (root)', 'docs', 'reports', '2026']);
  await expect(at('q4.txt').getByRole('cell').nth(2)).toHaveText('18 KiB');
  await page.screenshot({ path: shot('files-nested'), fullPage: true });
  const q4 = await download(page, () => at('q4.txt').getByRole('link', { name: 'Download q4.txt' }).click());
  expect(q4.body.toString()).toBe('quarterly figures\n'.repeat(1000));
  await crumbs.getByRole('link', { name: 'docs' }).click();
  await expect(crumbs.locator('[aria-current="page"]')).toHaveText('docs');
  await expect(at('readme.md')).toHaveCount(1);
  await page.goBack();
  await expect(crumbs.locator('[aria-current="page"]')).toHaveText('2026');
  await crumbs.getByRole('link', { name: '/ (root)' }).click();

  // A folder bigger than a page: the first 200, then the rest.
  await at('many').getByRole('link', { name: 'many', exact: true }).click();
  await expect(browser.getByTestId('entry-count')).toHaveText(`200 of ${MANY} entries loaded; sorting applies to those`);
  await expect(entries).toHaveCount(200);
  await browser.getByRole('button', { name: 'Load more' }).click();
  await expect(entries).toHaveCount(MANY);
  await expect(browser.getByTestId('entry-count')).toHaveText(`${MANY} entries`);
  await expect(browser.getByRole('button', { name: 'Load more' })).toHaveCount(0);

  // Close: the Director forgets the session (its list answers 404) and everything is unmounted.
  expect(await sessionStatus(page, pointId, token)).toBe(200);
  await page.getByRole('button', { name: 'Close the browse session' }).click();
  await expect(page.getByTestId('browse-closed')).toContainText('Session closed: the restore point’s disks are unmounted.');
  await expect(page.getByTestId('directory-browser')).toHaveCount(0);
  expect(await sessionStatus(page, pointId, token)).toBe(404);
  expect((await page.request.get(`${url()}/api/restore-points/${pointId}/browse/${token}/list?partition=d0p1`)).status()).toBe(404);
  await page.screenshot({ path: shot('files-closed'), fullPage: true });

  // Browse again, then leave the page: that closes the session too.
  const again = nextSession(page);
  await page.getByRole('button', { name: 'Browse again' }).click();
  const second = await again;
  await expect(page.getByTestId('directory-browser')).toBeVisible();
  expect(await sessionStatus(page, pointId, second)).toBe(200);
  await nav(page, 'Overview');
  await expect.poll(() => sessionStatus(page, pointId, second), { timeout: 15_000 }).toBe(404);

  // Back to it (a new session), then signing out from the page closes that one before the sign-out.
  const third = nextSession(page);
  await page.goBack();
  const last = await third;
  await expect(page.getByTestId('directory-browser')).toBeVisible();
  await signOut(page);
  await signIn(page);
  expect(await sessionStatus(page, pointId, last)).toBe(404);
});

test('a viewer sees no Browse files, the page says it needs the operator role, and the Director refuses to open a session', async ({ page }) => {
  await signInAsNew(page, 'vera-viewer', 'viewer');
  const pointId = await pointOf(page);
  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: 'Local repository' }).getByRole('link', { name: 'Local repository' }).click();
  await page.getByLabel('VM').selectOption(VM);
  await expect(page.getByTestId('point-row')).toHaveCount(1);
  await expect(page.getByRole('link', { name: /^Browse files/ })).toHaveCount(0);
  await page.goto(`${url()}/restore-points/${pointId}/files`);
  await expect(page.getByRole('alert')).toHaveText('This page needs the operator role.');
  expect((await page.request.post(`${url()}/api/restore-points/${pointId}/browse`)).status()).toBe(403);
});

test('from the restore wizard’s “what” step; a session left unused past the idle timeout says it ended, and reopening continues in the same folder', async ({ page }) => {
  // The e2e appliance closes sessions after 1 min unused; the page checks 45 s after that.
  test.setTimeout(240_000);
  await signIn(page);
  const pointId = await pointOf(page);
  await page.getByTestId('vm-row').filter({ hasText: VM }).getByRole('link', { name: `Restore ${VM}` }).click();
  await expect(page.getByRole('heading', { name: /^Step 1 of 4/ })).toBeVisible();
  await page.getByRole('button', { name: 'Next' }).click();
  await expect(page.getByRole('heading', { name: /^Step 2 of 4/ })).toBeVisible();
  const offer = page.getByTestId('browse-files-offer');
  await expect(offer).toContainText('without restoring anything');
  await page.screenshot({ path: shot('files-wizard-offer'), fullPage: true });
  const opened = nextSession(page);
  await offer.getByRole('link', { name: 'Browse files' }).click();
  const token = await opened;
  await entry(page, 'docs').getByRole('link', { name: 'docs', exact: true }).click();
  const crumbs = page.getByRole('navigation', { name: 'Path' });
  await expect(crumbs.locator('[aria-current="page"]')).toHaveText('docs');
  await expect(page.getByTestId('session-note')).toHaveText('Session open · closed after 1 min without use');

  const ended = page.getByTestId('browse-ended');
  await expect(ended).toBeVisible({ timeout: 180_000 });
  await expect(ended).toContainText('This browse session has ended. The Director closes a session that is not used for 1 min and unmounts its disks.');
  await expect(page.getByTestId('directory-browser')).toHaveCount(0);
  expect(await sessionStatus(page, pointId, token)).toBe(404);
  await page.screenshot({ path: shot('files-ended'), fullPage: true });

  const reopened = nextSession(page);
  await ended.getByRole('button', { name: 'Open a new session' }).click();
  const second = await reopened;
  expect(second).not.toBe(token);
  await expect(crumbs.locator('[aria-current="page"]')).toHaveText('docs');
  await expect(entry(page, 'readme.md')).toHaveCount(1);
  await page.getByRole('button', { name: 'Close the browse session' }).click();
  await expect(page.getByTestId('browse-closed')).toBeVisible();
  expect(await sessionStatus(page, pointId, second)).toBe(404);
});

test('a Director whose file-level restore helper is not running answers 503 and the page shows its message', async ({ page }) => {
  const pointId = await (async () => {
    await signIn(page);
    return pointOf(page);
  })();
  // No helper serves this Director's run directory; it runs without CAP_SYS_ADMIN, which it never needs.
  const other = await startExtraDirector({ prefix: ['setpriv', '--bounding-set', '-sys_admin', '--inh-caps', '-sys_admin', '--'] });
  try {
    await page.context().clearCookies();
    await signIn(page, 'admin', undefined, other.url);
    await page.goto(`${other.url}/restore-points/${pointId}/files`);
    const failed = page.getByTestId('browse-failed');
    await expect(failed).toContainText('file-level restore is not available: its helper (vaultline-flr) is not running');
    await expect(failed).toContainText('An administrator can enable it');
    await expect(page.getByTestId('partitions')).toHaveCount(0);
    await page.screenshot({ path: shot('files-unavailable'), fullPage: true });
  } finally {
    await other.stop();
  }
});
