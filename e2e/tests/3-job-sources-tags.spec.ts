import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { labState, nav, next, shot, signIn, step, url } from '../fixtures/session.ts';

const JOB = 'e2e gold tag';
const GOLD = ['db-01', 'file-01', 'mail-01'];

test('the wizard takes a vSphere tag as a source: the VMs tagged now, and a VM tagged after the job is in it', async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  await nav(page, 'Jobs');
  await page.getByRole('link', { name: 'New job' }).click();
  await step(page, 1);

  // Tag category → tag → the VMs tagged (the demo tags its VMs Backup tier/Gold and Silver in vCenter's vAPI).
  await page.getByRole('radio', { name: 'Tags' }).check();
  const tree = page.getByRole('list', { name: 'Inventory: tags' });
  await expect(tree.getByRole('button', { name: 'Collapse tag category Backup tier' })).toHaveAttribute('aria-expanded', 'true');
  const gold = tree.getByRole('checkbox', { name: 'Select tag Gold' });
  await gold.check();
  const note = page.getByTestId('container-note');
  await expect(note).toHaveText('3 VMs tagged now. VMs tagged later (or on a tagged host, cluster or folder) are backed up by the next run; VMs untagged are not.');
  await expect(page.getByTestId('vm-count')).toHaveText(' · 3 VMs now');
  for (const name of GOLD) await expect(tree.getByLabel(`Select ${name}`)).toBeChecked();
  await expect(tree.getByLabel('Select web-01')).not.toBeChecked();
  await page.screenshot({ path: shot('wizard-sources-tags'), fullPage: true });

  for (const n of [2, 3, 4]) {
    await next(page);
    await step(page, n);
  }
  await next(page);
  await step(page, 5);
  await expect(page.getByTestId('review-sources')).toContainText('Tag Backup tier/Gold: the VMs tagged at each run, VMs tagged later included');
  await page.getByLabel('Job name').fill(JOB);
  await page.getByRole('button', { name: 'Create job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} created.` })).toBeVisible();

  const jobs = (await (await page.request.get(`${url()}/api/jobs`)).json()) as Array<{ id: string; name: string; sources: Array<{ moref: string }> }>;
  const job = jobs.find((j) => j.name === JOB)!;
  expect(job.sources).toEqual([{ kind: 'tag', moref: expect.stringMatching(/^urn:vmomi:InventoryServiceTag:/), name: 'Gold', path: 'Backup tier/Gold' }]);
  const overview = (await (await page.request.get(`${url()}/api/overview/protection?fresh=true&limit=500`)).json()) as { vms: Array<{ name: string; jobs: Array<{ name: string }> }> };
  expect(overview.vms.filter((v) => v.jobs.some((j) => j.name === JOB)).map((v) => v.name).sort()).toEqual(GOLD);

  // Tagged after the job was made: opened again, the job holds it (each run expands the tag the same way:
  // apps/director/test/job-containers.test.ts runs it).
  const lab = connectLab(labState());
  await lab.tagVm('Backup tier', 'Gold', 'dc-01');
  try {
    await page.goto(`${url()}/jobs/${job.id}/edit`);
    await step(page, 1);
    await page.getByRole('radio', { name: 'Tags' }).check();
    await expect(page.getByTestId('container-note')).toHaveText(/^4 VMs tagged now\./);
    await expect(tree.getByLabel('Select dc-01')).toBeChecked();
    await page.screenshot({ path: shot('wizard-sources-tag-later-vm'), fullPage: true });
  } finally {
    await lab.tagVm('Backup tier', 'Gold', 'dc-01', false);
  }

  await nav(page, 'Jobs');
  const row = page.getByTestId('job-row').filter({ hasText: JOB });
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: `Delete ${JOB}?` }).getByRole('button', { name: 'Delete job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} deleted.` })).toBeVisible();
});
