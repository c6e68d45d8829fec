import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { diskCounters, flushLabWrites, labState, nav, openBackUpNowRun, recordDiskProgress, signIn, url } from '../fixtures/session.ts';

// Issue #16: what a run's page shows live when the run ends must be what it shows from the stored rows after a
// reload (a cancelled run once showed 516 MiB read live and 336 MiB after reload: 7-cancel.spec.ts checks that
// path). Here the runs that finish: a full backup, then an incremental one of the same VM.
const VM = 'e2e-live-01';
const MiB = 1024 * 1024;

test('a backup watched live: the read / skipped / stored figures each disk shows when the run ends are, to the character, those shown after a reload (full, then incremental)', async ({ page }) => {
  test.setTimeout(300_000);
  // Enough random data on the first disk for the copy to send progress for a while; a second, smaller disk.
  const lab = connectLab(labState());
  await lab.createVm({ name: VM, disks: [{ capacityBytes: 1024 * MiB }, { capacityBytes: 256 * MiB }], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 512 * MiB, pattern: 'random', seed: 161 }]);
  await lab.guestWrite(VM, 1, [{ offset: 8 * MiB, length: 24 * MiB, pattern: 'text', seed: 162 }]);
  flushLabWrites();

  const ticks = recordDiskProgress(page);
  await signIn(page);
  const seen: string[] = [];
  for (const kind of ['full', 'incremental'] as const) {
    if (kind === 'incremental') {
      // Changed areas on both disks: the incremental reads those and skips the rest.
      await lab.guestWrite(VM, 0, [{ offset: 100 * MiB, length: 64 * MiB, pattern: 'random', seed: 163 }]);
      await lab.guestWrite(VM, 1, [{ offset: 40 * MiB, length: 4 * MiB, pattern: 'text', seed: 164 }]);
      flushLabWrites();
      await nav(page, 'Overview');
    }
    await openBackUpNowRun(page, VM);
    const runId = new URL(page.url()).pathname.split('/').at(-1)!;
    expect(seen, 'a new run').not.toContain(runId);
    seen.push(runId);
    const disks = page.getByTestId('run-disk');
    await expect(page.getByTestId('run-status')).toHaveText(/succeeded|warning/, { timeout: 120_000 });
    // Read at once from the live page (no reload): the status pill has just turned terminal.
    const live = await diskCounters(page);
    expect(live, `${kind}: one row per disk`).toHaveLength(2);
    // Those figures came from the live feed: the page received progress of each of this run's disks.
    const runTicks = ticks.filter((t) => t.runId === runId);
    expect(new Set(runTicks.map((t) => t.deviceKey)).size, `${kind}: live progress received for both disks`).toBe(2);
    await expect(disks.first()).toContainText(kind === 'full' ? '· full read' : '· incremental');

    await page.reload();
    await expect(page.getByTestId('run-status')).toHaveText(/succeeded|warning/);
    await expect(disks).toHaveCount(2);
    expect(await diskCounters(page), `${kind}: read / skipped / stored after a reload, against what the live page showed when the run ended`).toEqual(live);

    // And in bytes: each disk's last live tick carries the counters the Director stored for it.
    const run = (await (await page.request.get(`${url()}/api/runs/${runId}`)).json()) as { vms: Array<{ id: string; disks: Array<{ deviceKey: number; bytesRead: number; bytesSkipped: number; bytesWritten: number }> }> };
    for (const vm of run.vms) {
      for (const d of vm.disks) {
        const last = runTicks.filter((t) => t.runVmId === vm.id && t.deviceKey === d.deviceKey).at(-1)!;
        expect({ read: last.bytesRead, skipped: last.bytesSkipped, stored: last.bytesWritten }, `${kind}: disk ${d.deviceKey}, last live tick against the stored row`).toEqual({ read: d.bytesRead, skipped: d.bytesSkipped, stored: d.bytesWritten });
      }
    }
  }
});
