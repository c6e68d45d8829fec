import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { diskCounters, flushLabWrites, labState, openBackUpNowRun, recordDiskProgress, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-big-01';
const GiB = 1024 ** 3;

test('Cancel stops a running backup: the run ends cancelled, nothing is committed and no snapshot is left; the counters shown live at the end are the ones shown after a reload', async ({ page }) => {
  test.setTimeout(300_000);
  // A VM with enough random data that its copy takes many seconds on this machine.
  const lab = connectLab(labState());
  await lab.createVm({ name: VM, disks: [{ capacityBytes: 4 * GiB }], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 3 * GiB, pattern: 'random', seed: 7 }]);
  flushLabWrites();

  const ticks = recordDiskProgress(page);
  await signIn(page);
  await openBackUpNowRun(page, VM);
  const runId = new URL(page.url()).pathname.split('/').at(-1)!;
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
  // What the live page shows once the run has ended, read before any reload: it came from the live feed
  // (the page received this disk's progress while it was read).
  const live = await diskCounters(page);
  expect(live).toHaveLength(1);
  expect(ticks.filter((t) => t.runId === runId).length, 'progress ticks of this run received live').toBeGreaterThan(0);
  expect(live[0]!.read, 'the cancelled disk had been read from').not.toBe('0 B');
  await expect(page.getByTestId('run-warnings')).toContainText('cancelled: nothing was committed and everything was cleaned up');
  await page.screenshot({ path: shot('run-cancelled'), fullPage: true });

  // After a reload (no live feed for an ended run: the stored rows only) the same figures, to the character.
  await page.reload();
  await expect(page.getByTestId('run-status')).toHaveText('cancelled');
  await expect(disk).toHaveCount(1);
  await expect(disk).toContainText('· cancelled');
  expect(await diskCounters(page), 'read / skipped / stored after a reload, against what the live page showed').toEqual(live);

  expect(await (await page.request.get(`${url()}/api/restore-points?vm=${VM}`)).json()).toEqual([]);
  const vm = await lab.getVm(VM);
  expect(vm.disks[0]!.parents, 'the disk still runs on a snapshot delta').toEqual([]);
});
