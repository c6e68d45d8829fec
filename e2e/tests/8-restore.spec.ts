import { readFile } from 'node:fs/promises';
import { expect, test, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { backUpNow, labState, nav, next, shot, signIn } from '../fixtures/session.ts';

const VM = 'e2e-rst-01';
const COPY = 'e2e-rst-01-copy';
const MiB = 1024 * 1024;

const step = (page: Page, n: number, of = 4) => expect(page.getByRole('heading', { name: new RegExp(`^Step ${n} of ${of}`) })).toBeVisible();

test.describe.configure({ mode: 'serial' });

test('a VM backed up from the overview is restored from the wizard as a new VM: a name in use is refused by the Director, the copy succeeds with a verify line per disk', async ({ page }) => {
  test.setTimeout(240_000);
  const lab = connectLab(labState());
  await lab.createVm({ name: VM, disks: [{ capacityBytes: 48 * MiB }, { capacityBytes: 16 * MiB }], nics: ['VM Network'], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 6 * MiB, pattern: 'random', seed: 81 }]);
  await lab.guestWrite(VM, 1, [{ offset: 2 * MiB, length: 3 * MiB, pattern: 'text', seed: 82 }]);

  await signIn(page);
  const row = page.getByTestId('vm-row').filter({ hasText: VM });
  await expect(row.getByRole('link', { name: `Restore ${VM}` })).toHaveCount(0);
  await backUpNow(page, VM, 90_000);

  // From the VM in the inventory to the wizard.
  await nav(page, 'Overview');
  await row.getByRole('link', { name: `Restore ${VM}` }).click();
  await expect(page.getByRole('heading', { level: 1, name: `Restore ${VM}` })).toBeVisible();
  await step(page, 1);
  await expect(page.getByTestId('restore-point-choice')).toHaveCount(1);
  await expect(page.getByRole('radio', { name: /\(newest\)$/ })).toBeChecked();
  await expect(page.getByTestId('restore-point-choice')).toContainText('Local repository');
  await next(page);

  await step(page, 2);
  await expect(page.getByRole('radio', { name: /The whole VM, as a new VM/ })).toBeChecked();
  await expect(page.getByText(/never deleted/)).toBeVisible();
  await page.screenshot({ path: shot('restore-what'), fullPage: true });
  await next(page);

  // Details: placement from the vCenter's inventory, the NIC's network, the transports (never SAN, and why).
  await step(page, 3);
  await expect(page.getByLabel('New VM name')).toHaveValue(`${VM}-restored`);
  await expect(page.getByLabel('Host', { exact: true })).toContainText('DC0_C0_H1');
  await expect(page.getByLabel('Datastore', { exact: true })).toContainText(/datastore1 · .* free of /);
  await expect(page.getByLabel('Network for VM Network')).toContainText('DC0_DVPG0');
  await expect(page.getByTestId('san-note')).toContainText('Direct SAN is never used to write');
  await expect(page.getByRole('radio', { name: /Direct SAN/ })).toHaveCount(0);
  await page.getByLabel('New VM name').fill(VM);
  await page.getByLabel('Datastore', { exact: true }).selectOption('datastore2');
  await page.getByLabel('Network for VM Network').selectOption({ label: 'DC0_DVPG0' });
  await page.screenshot({ path: shot('restore-details'), fullPage: true });
  await next(page);

  await step(page, 4);
  const summary = page.getByRole('definition');
  await expect(summary.filter({ hasText: 'VM Network → DC0_DVPG0' })).toBeVisible();
  await expect(summary.filter({ hasText: 'datastore2' })).toBeVisible();
  // The name is in use: the Director refuses before any run exists, and the wizard goes back to the name.
  await page.getByRole('button', { name: 'Start the restore' }).click();
  await expect(page.getByRole('alert')).toHaveText(`a VM named ${VM} already exists in Lab vCenter; choose another name, or replace it by sending replace: { confirm: "${VM}" } (the original is then kept, powered off and renamed)`);
  await step(page, 3);
  await page.getByLabel('New VM name').fill(COPY);
  await next(page);
  await step(page, 4);
  await page.screenshot({ path: shot('restore-review'), fullPage: true });
  await page.getByRole('button', { name: 'Start the restore' }).click();

  // The run's live page: disks with transport and reasons, then each disk's verify line.
  await expect(page.getByRole('heading', { level: 1, name: `Restore to ${COPY} — run` })).toBeVisible();
  await expect(page.getByTestId('run-status')).toHaveText('succeeded', { timeout: 120_000 });
  const disks = page.getByTestId('run-disk');
  await expect(disks).toHaveCount(2);
  for (const d of await disks.all()) {
    await expect(d.getByTestId('disk-transport')).toHaveText(/HotAdd|NBDSSL/);
    // Why: folded when HotAdd (the fastest a restore writes with) was reached, shown after a fallback to the network.
    const why = d.getByTestId('transport-why');
    if ((await d.getByTestId('disk-transport').textContent()) === 'HotAdd') {
      await expect(why).not.toHaveAttribute('open');
      await why.getByText('Why HotAdd').click();
    } else await expect(why).toHaveAttribute('open');
    await expect(d.getByRole('list', { name: /transport reasons/ })).toBeVisible();
    await expect(d.getByTestId('disk-verified')).toContainText(/verified SHA-256 [0-9a-f]{64}/);
    await expect(d).toContainText('zeros skipped');
  }
  await expect(page.getByTestId('run-log')).toContainText(`creating VM ${COPY}:`);
  await expect(page.getByTestId('run-log')).toContainText('network VM Network → DC0_DVPG0');
  await expect(page.getByRole('button', { name: 'Cancel run' })).toHaveCount(0);
  await page.screenshot({ path: shot('restore-run'), fullPage: true });

  const copy = await lab.getVm(COPY);
  expect(copy.disks.map((d) => d.capacityBytes)).toEqual([48 * MiB, 16 * MiB]);
  expect(copy.disks[0]!.fileName).toMatch(/^\[datastore2\] /);
  expect(await lab.diskSha256(COPY, 0)).toBe(await lab.diskSha256(VM, 0));
});

test('replacing the VM is refused until its exact name is typed; then it succeeds and the original stays, renamed, in the inventory', async ({ page }) => {
  test.setTimeout(240_000);
  const lab = connectLab(labState());
  const before = await lab.getVm(VM);
  await signIn(page);
  // From the restore point on the repository page this time.
  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: 'Local repository' }).getByRole('link', { name: 'Local repository' }).click();
  await page.getByLabel('VM').selectOption(VM);
  await page.getByTestId('point-row').first().getByRole('link', { name: new RegExp(`^Restore ${VM} from`) }).click();
  await step(page, 1);
  await next(page);
  await page.getByRole('radio', { name: /Replace the existing VM/ }).check();
  await next(page);
  await step(page, 3);
  await expect(page.getByLabel('VM to replace')).toHaveValue(VM);
  await expect(page.getByTestId('replace-note')).toContainText('it is kept, with its disks untouched');
  await page.getByLabel(/to confirm$/).fill(VM.toUpperCase());
  await next(page);
  await expect(page.getByRole('alert')).toHaveText(`Type the VM’s exact name (${VM}) to confirm that it is replaced.`);
  await step(page, 3);
  await page.getByLabel(/to confirm$/).fill(`${VM} `);
  await next(page);
  await expect(page.getByRole('alert')).toContainText('exact name');
  await page.getByLabel(/to confirm$/).fill(VM);
  await expect(page.getByText('Confirmed.')).toBeVisible();
  await page.screenshot({ path: shot('restore-replace-confirm'), fullPage: true });
  await next(page);
  await step(page, 4);
  await page.getByRole('button', { name: `Restore and replace ${VM}` }).click();

  await expect(page.getByRole('heading', { level: 1, name: `Restore to ${VM} — run` })).toBeVisible();
  await expect(page.getByTestId('run-status')).toHaveText('succeeded', { timeout: 120_000 });
  await expect(page.getByTestId('disk-verified')).toHaveCount(2);
  const log = page.getByTestId('run-log');
  await expect(log).toContainText(new RegExp(`renamed the original VM ${VM} to ${VM}-replaced-\\d{8}-\\d{4}; it is kept`));
  await page.screenshot({ path: shot('restore-replace-run'), fullPage: true });

  // The inventory now has the restored VM under the name and the original, renamed and powered off.
  await nav(page, 'Overview');
  const original = page.getByTestId('vm-row').filter({ hasText: new RegExp(`${VM}-replaced-\\d{8}-\\d{4}`) });
  await expect(original).toHaveCount(1);
  await expect(original.getByRole('cell').nth(1)).toHaveText('off');
  await expect(page.getByTestId('vm-row').filter({ hasText: new RegExp(`^${VM}\\b`) }).first()).toBeVisible();
  const now = await lab.getVm(VM);
  expect(now.moref).not.toBe(before.moref);
});

test('one disk of the restore point goes into an existing VM as a new disk, verified; the download step offers each disk as raw or VMDK and the VM as an OVA', async ({ page }) => {
  test.setTimeout(180_000);
  const lab = connectLab(labState());
  const target = await lab.getVm(COPY);
  await signIn(page);
  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: 'Local repository' }).getByRole('link', { name: 'Local repository' }).click();
  await page.getByLabel('VM').selectOption(VM);
  await page.getByTestId('point-row').first().getByRole('link', { name: new RegExp(`^Restore ${VM} from`) }).click();
  await next(page);
  await page.getByRole('radio', { name: /One disk, into an existing VM/ }).check();
  await next(page);
  await step(page, 3);
  await page.getByLabel('Disk', { exact: true }).selectOption({ label: 'Hard disk 2 · 16 MiB · pvscsi' });
  await next(page);
  await expect(page.getByRole('alert')).toHaveText('Choose the VM that gets the disk.');
  await page.getByLabel('Into VM', { exact: true }).selectOption(target.moref);
  await next(page);
  await step(page, 4);
  await expect(page.getByRole('definition').filter({ hasText: `${COPY}, as a new disk` })).toBeVisible();
  await page.getByRole('button', { name: 'Start the restore' }).click();
  await expect(page.getByRole('heading', { level: 1, name: `Restore to ${COPY} — run` })).toBeVisible();
  await expect(page.getByTestId('run-status')).toHaveText('succeeded', { timeout: 120_000 });
  await expect(page.getByTestId('run-log')).toContainText(/disk written to .*, SHA-256 [0-9a-f]{64} verified/);
  const after = await lab.getVm(COPY);
  expect(after.disks).toHaveLength(target.disks.length + 1);
  expect(after.disks.at(-1)!.capacityBytes).toBe(16 * MiB);

  // Download: plain links the browser streams; a VMDK starts with its magic number.
  await page.goBack();
  await step(page, 1);
  await next(page);
  await page.getByRole('radio', { name: /Download/ }).check();
  await next(page);
  await step(page, 3, 3);
  const links = page.getByTestId('download-disks');
  await expect(links.getByRole('link', { name: 'Raw image of Hard disk 1' })).toHaveAttribute('href', /\/disks\/\d+\/download\?format=raw$/);
  await expect(page.getByRole('link', { name: 'Download the OVA' })).toHaveAttribute('href', /\/ova\?layout=chunked$/);
  await page.getByRole('radio', { name: /One file per disk/ }).check();
  await expect(page.getByRole('link', { name: 'Download the OVA' })).toHaveAttribute('href', /\/ova\?layout=whole$/);
  await page.screenshot({ path: shot('restore-download'), fullPage: true });
  const [download] = await Promise.all([page.waitForEvent('download'), links.getByRole('link', { name: 'VMDK of Hard disk 2' }).click()]);
  const file = await download.path();
  expect((await readFile(file)).subarray(0, 4).toString('latin1')).toBe('KDMV');
  expect(download.suggestedFilename()).toMatch(new RegExp(`^${VM}-.*-disk\\d+\\.vmdk$`));
});
