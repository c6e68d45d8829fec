import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { flushLabWrites, labState, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-big-01';
const GiB = 1024 ** 3;

test('Cancel stops a running backup: the run ends cancelled, nothing is committed and no snapshot is left', async ({ page }) => {
  test.setTimeout(300_000);
  // A VM with enough random data that its copy takes many seconds on this machine.
  const lab = connectLab(labState());
  await lab.createVm({ name: VM, disks: [{ capacityBytes: 4 * GiB }], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 3 * GiB, pattern: 'random', seed: 7 }]);
  flushLabWrites();

  await signIn(page);
  await page.getByTestId('vm-row').filter({ hasText: VM }).getByRole('button', { name: `Back up ${VM} now` }).click();
  await page.getByTestId('backup-now-progress').getByRole('link', { name: /^(Open|See) the run$/ }).click();
  await expect(page.getByRole('heading', { level: 1, name: `One-off backup of ${VM} — run` })).toBeVisible();
  const disk = page.getByTestId('run-disk');
  await expect(disk).toContainText('· reading', { timeout: 60_000 });
  await expect(page.getByTestId('bottleneck')).toContainText('Bottleneck:');
  await page.screenshot({ path: shot('run-live'), fullPage: true });

  await page.getByRole('button', { name: 'Cancel run' }).click();
  const dialog = page.getByRole('dialog', { name: 'Cancel this run?' });
  await expect(dialog).toContainText('commits nothing');
  await dialog.getByRole('button', { name: 'Cancel run' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('cancelled', { timeout: 60_000 });
  await expect(page.getByRole('button', { name: 'Cancel run' })).toHaveCount(0);
  await expect(disk).toContainText('· cancelled');
  await expect(page.getByTestId('run-warnings')).toContainText('cancelled: nothing was committed and everything was cleaned up');
  await page.screenshot({ path: shot('run-cancelled'), fullPage: true });

  expect(await (await page.request.get(`${url()}/api/restore-points?vm=${VM}`)).json()).toEqual([]);
  const vm = await lab.getVm(VM);
  expect(vm.disks[0]!.parents, 'the disk still runs on a snapshot delta').toEqual([]);
});
