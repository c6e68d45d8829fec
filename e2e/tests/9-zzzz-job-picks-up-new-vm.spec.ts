// Runs last: the job, its runs and the VM it creates (with its restore point) would change what the earlier specs
// count (the Runs page's "All jobs", the repository's VMs with restore points).
import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { labState, nav, next, shot, signIn, step, url } from '../fixtures/session.ts';

const MiB = 1024 * 1024;

const LATER_JOB = 'e2e cluster container';
const NEW_VM = 'e2e-after-job-01';

test('a cluster chosen in the tree: a VM created in it after the job, unknown to the job by name, is listed and backed up by the next run started from the console', async ({ page }) => {
  test.setTimeout(240_000);
  await signIn(page);
  await nav(page, 'Jobs');
  await page.getByRole('link', { name: 'New job' }).click();
  await step(page, 1);

  // The cluster, with every VM it holds now excluded: the job's runs back up only VMs that join it later
  // (and the run stays small). The new VM does not exist yet.
  const tree = page.getByRole('list', { name: 'Inventory: hosts and clusters' });
  const cluster = tree.getByRole('checkbox', { name: 'Select cluster DC0_C0' });
  await cluster.check();
  await expect(cluster).toBeChecked();
  await expect(tree.getByLabel(`Select ${NEW_VM}`)).toHaveCount(0);
  const note = page.getByTestId('container-note');
  await expect(note).toHaveText(/^\d+ VMs? in it now\. VMs added to it later are backed up by the next run/);
  const held = Number(/^(\d+)/.exec((await note.textContent()) ?? '')![1]);
  const vmBoxes = tree.getByTestId('pick-vm').getByRole('checkbox', { name: /^Select / });
  await expect(vmBoxes).toHaveCount(held);
  for (const box of await vmBoxes.all()) await box.uncheck();
  await expect(note).toContainText(`${held} VMs in it now, ${held} excluded.`);
  await expect(page.getByTestId('vm-count')).toHaveText(' · 0 VMs now');

  for (const n of [2, 3, 4]) {
    await next(page);
    await step(page, n);
  }
  await next(page);
  await step(page, 5);
  await expect(page.getByTestId('review-sources')).toContainText('Cluster DC0/DC0_C0: its VMs at each run, VMs added later included (except ');
  await expect(page.getByTestId('review-sources')).not.toContainText(NEW_VM);
  await page.getByLabel('Job name').fill(LATER_JOB);
  await page.getByRole('button', { name: 'Create job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${LATER_JOB} created.` })).toBeVisible();

  // As stored when created: the cluster and its excluded VMs; the new VM's name nowhere.
  const jobs = (await (await page.request.get(`${url()}/api/jobs`)).json()) as Array<{ id: string; name: string; sources: Array<{ kind?: string; name: string; exclude?: Array<{ name: string }> }> }>;
  const job = jobs.find((j) => j.name === LATER_JOB)!;
  expect(job.sources).toEqual([expect.objectContaining({ kind: 'cluster', name: 'DC0_C0', path: 'DC0/DC0_C0' })]);
  expect(job.sources[0]!.exclude).toHaveLength(held);
  expect(JSON.stringify(job.sources)).not.toContain(NEW_VM);

  const jobRow = page.getByTestId('job-row').filter({ hasText: LATER_JOB });
  const runFromConsole = async () => {
    await nav(page, 'Jobs');
    await jobRow.getByRole('button', { name: `Run ${LATER_JOB} now` }).click();
    await page.getByRole('status').filter({ hasText: `${LATER_JOB} started.` }).getByRole('link', { name: 'Watch the run' }).click();
    await expect(page.getByRole('heading', { level: 1, name: `${LATER_JOB} — run` })).toBeVisible();
  };
  try {
    // Run now before the VM exists: nothing to back up.
    await runFromConsole();
    await expect(page.getByTestId('run-status')).toHaveText('warning', { timeout: 60_000 });
    await expect(page.getByText("the job's containers hold no VM now")).toBeVisible();
    await expect(page.getByTestId('run-vm')).toHaveCount(0);

    // A new VM made in the lab vCenter after the job (the lab puts every new VM on one of the cluster's hosts).
    const lab = connectLab(labState());
    await lab.createVm({ name: NEW_VM, disks: [{ capacityBytes: 64 * MiB }], cbt: true, powerOn: true });
    await lab.guestWrite(NEW_VM, 0, [{ offset: 0, length: 4 * MiB, pattern: 'random', seed: 171 }]);

    // Run now from the console: the run lists the new VM, brought in by the cluster, and backs it up.
    await runFromConsole();
    await expect(page.getByTestId('run-status')).toHaveText(/succeeded|warning/, { timeout: 120_000 });
    const vms = page.getByTestId('run-vm');
    await expect(vms).toHaveCount(1);
    const vm = page.getByRole('region', { name: `VM ${NEW_VM}` });
    await expect(vm).toBeVisible();
    await expect(vm.getByTestId('run-disk')).toHaveCount(1);
    await expect(vm.getByTestId('run-disk')).toContainText(/stored \d/);
    await expect(page.getByTestId('summary-vm').filter({ hasText: NEW_VM })).toContainText('succeeded');
    await expect(page.getByTestId('run-status')).toHaveText('succeeded');
    await expect(page.getByTestId('run-log')).toContainText(`${NEW_VM} info Included by cluster DC0/DC0_C0`);
    await page.screenshot({ path: shot('run-container-later-vm'), fullPage: true });

    // Its restore point is there: the overview offers to restore it.
    await nav(page, 'Overview');
    // By name: by now the estate has more VMs than the overview's first page shows.
    await page.getByLabel('Search by name').fill(NEW_VM);
    await expect(page.getByTestId('vm-row').filter({ hasText: NEW_VM }).getByRole('link', { name: `Restore ${NEW_VM}` })).toBeVisible();
  } finally {
    // Deleted again (the VM and its restore point stay, as other specs' backed-up VMs do).
    await nav(page, 'Jobs');
    await jobRow.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: `Delete ${LATER_JOB}?` }).getByRole('button', { name: 'Delete job' }).click();
    await expect(page.getByRole('status').filter({ hasText: `Job ${LATER_JOB} deleted.` })).toBeVisible();
  }
});
