import { expect, test } from '@playwright/test';
import { nav, next, shot, signIn, step, url } from '../fixtures/session.ts';

const JOB = 'e2e disks left out';

interface InventoryVm {
  moref: string;
  name: string;
  instanceUuid?: string;
  host?: string;
  disks: { key: number; label: string }[];
}

test("the wizard leaves disks out: a chosen VM's disk unchecked, and a disk of a VM in a chosen host (the VM becomes a source of its own); the review and the stored job say so", async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  const vcenters = (await (await page.request.get(`${url()}/api/vcenters`)).json()) as Array<{ id: string }>;
  const inventory = (await (await page.request.get(`${url()}/api/vcenters/${vcenters[0]!.id}/inventory`)).json()) as { vms: InventoryVm[]; containers: Array<{ moref: string; name: string; kind: string }> };
  const db = inventory.vms.find((v) => v.name === 'db-01')!;
  expect(db.disks.map((d) => d.label)).toEqual(['Hard disk 1', 'Hard disk 2', 'Hard disk 3']);
  // A VM with two disks on another host than db-01, to be taken in through its host.
  const other = inventory.vms.find((v) => v.disks.length === 2 && v.host && v.host !== db.host)!;
  const host = inventory.containers.find((c) => c.moref === other.host)!;

  await nav(page, 'Jobs');
  await page.getByRole('link', { name: 'New job' }).click();
  await step(page, 1);

  // A VM chosen by itself: each disk gets a checkbox, checked = backed up.
  await page.getByLabel('Select db-01').check();
  const dbRow = page.getByTestId('pick-vm').filter({ hasText: 'db-01' });
  for (const d of db.disks) await expect(page.getByRole('checkbox', { name: `Back up ${d.label} of db-01` })).toBeChecked();
  await page.getByRole('checkbox', { name: 'Back up Hard disk 2 of db-01' }).uncheck();
  await expect(page.getByRole('checkbox', { name: 'Back up Hard disk 2 of db-01' })).not.toBeChecked();
  await expect(dbRow.getByTestId('vm-disk').filter({ hasText: 'Hard disk 2' })).toContainText('left out');
  // Leaving out Hard disk 3 too leaves one disk: its checkbox cannot be unchecked (skipping the VM is unchecking it).
  await page.getByRole('checkbox', { name: 'Back up Hard disk 3 of db-01' }).uncheck();
  await expect(page.getByRole('checkbox', { name: 'Back up Hard disk 1 of db-01' })).toBeDisabled();
  await page.getByRole('checkbox', { name: 'Back up Hard disk 3 of db-01' }).check();
  await expect(page.getByRole('checkbox', { name: 'Back up Hard disk 1 of db-01' })).toBeEnabled();

  // A VM in a chosen host: unchecking one of its disks makes it a VM source of its own, as the note says.
  await page.getByRole('checkbox', { name: `Select host ${host.name}` }).check();
  const otherRow = page.getByTestId('pick-vm').filter({ hasText: other.name });
  await expect(page.getByLabel(`Select ${other.name}`, { exact: true })).toBeChecked();
  await expect(otherRow.getByTestId('disk-note')).toHaveText(`Unchecking a disk adds ${other.name} to the job as a VM source of its own that leaves that disk out; host ${host.name} still brings in its other VMs.`);
  await page.getByRole('checkbox', { name: `Back up Hard disk 1 of ${other.name}` }).uncheck();
  await expect(otherRow.getByTestId('disk-note')).toContainText('Chosen by itself to leave disks out');
  await expect(page.getByTestId('selected-count')).toHaveText('3 selected');
  await page.screenshot({ path: shot('wizard-exclude-disks'), fullPage: true });

  for (const n of [2, 3, 4]) {
    await next(page);
    await step(page, n);
  }
  await next(page);
  await step(page, 5);
  const review = page.getByTestId('review-sources');
  await expect(review).toContainText('db-01 without Hard disk 2');
  await expect(review).toContainText(`${other.name} without Hard disk 1`);
  await page.getByLabel('Job name').fill(JOB);
  await page.getByRole('button', { name: 'Create job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} created.` })).toBeVisible();

  // Stored with each VM source's disks left out, by device key.
  const jobs = (await (await page.request.get(`${url()}/api/jobs`)).json()) as Array<{ id: string; name: string; sources: unknown[] }>;
  const job = jobs.find((j) => j.name === JOB)!;
  const key = (vm: InventoryVm, label: string) => vm.disks.find((d) => d.label === label)!.key;
  expect(job.sources).toEqual(
    expect.arrayContaining([
      { moref: db.moref, name: 'db-01', instanceUuid: db.instanceUuid, excludeDisks: [key(db, 'Hard disk 2')] },
      { moref: other.moref, name: other.name, instanceUuid: other.instanceUuid, excludeDisks: [key(other, 'Hard disk 1')] },
      expect.objectContaining({ kind: 'host', moref: host.moref }),
    ]),
  );
  expect(job.sources).toHaveLength(3);

  // Opened again, the wizard shows the disks as stored.
  await page.goto(`${url()}/jobs/${job.id}/edit`);
  await step(page, 1);
  await expect(page.getByRole('checkbox', { name: 'Back up Hard disk 2 of db-01' })).not.toBeChecked();
  await expect(page.getByRole('checkbox', { name: 'Back up Hard disk 1 of db-01' })).toBeChecked();
  await expect(page.getByRole('checkbox', { name: `Back up Hard disk 1 of ${other.name}` })).not.toBeChecked();

  // Deleted again: the specs after this one see the jobs as they left them.
  await nav(page, 'Jobs');
  const row = page.getByTestId('job-row').filter({ hasText: JOB });
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: `Delete ${JOB}?` }).getByRole('button', { name: 'Delete job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} deleted.` })).toBeVisible();
});
