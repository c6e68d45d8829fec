import { AxeBuilder } from '@axe-core/playwright';
import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { labState, nav, next, shot, signIn, step, url } from '../fixtures/session.ts';

const JOB = 'e2e host container';

test('the wizard takes a host from the inventory tree, by keyboard: its VMs now, later ones included, one excluded; the review and the job say so', async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  await nav(page, 'Jobs');
  await page.getByRole('link', { name: 'New job' }).click();
  await step(page, 1);

  // Datacenter → cluster → host → VMs, each node with a labelled checkbox; branches fold with a button.
  const tree = page.getByRole('list', { name: 'Inventory: hosts and clusters' });
  await expect(tree.getByRole('checkbox', { name: 'Select datacenter DC0' })).toBeVisible();
  await expect(tree.getByRole('checkbox', { name: 'Select cluster DC0_C0' })).toBeVisible();
  const fold = tree.getByRole('button', { name: 'Collapse host DC0_C0_H1' });
  await fold.focus();
  await page.keyboard.press('Enter');
  await expect(tree.getByRole('button', { name: 'Expand host DC0_C0_H1' })).toHaveAttribute('aria-expanded', 'false');
  await page.keyboard.press('Enter');
  await expect(tree.getByRole('button', { name: 'Collapse host DC0_C0_H1' })).toHaveAttribute('aria-expanded', 'true');

  // Chosen with the keyboard: the host says how many VMs it holds now and that later ones are included.
  const host = tree.getByRole('checkbox', { name: 'Select host DC0_C0_H1' });
  await host.focus();
  await page.keyboard.press('Space');
  await expect(host).toBeChecked();
  const note = page.getByTestId('container-note');
  await expect(note).toHaveText(/^\d+ VMs? in it now\. VMs added to it later are backed up by the next run; VMs removed from it are not\.$/);
  const held = Number(/^(\d+)/.exec((await note.textContent()) ?? '')![1]);
  expect(held).toBeGreaterThan(1);
  await expect(page.getByTestId('selected-count')).toHaveText('1 selected');
  await expect(page.getByTestId('vm-count')).toHaveText(` · ${held} VMs now`);
  // Its VMs show as in it; unchecking one excludes it from the host.
  await expect(page.getByLabel('Select app-02')).toBeChecked();
  await page.getByLabel('Select app-02').uncheck();
  await expect(note).toContainText(`${held} VMs in it now, 1 excluded.`);
  await expect(page.getByTestId('vm-count')).toHaveText(` · ${held - 1} VM${held - 1 === 1 ? '' : 's'} now`);
  await expect(page.getByTestId('pick-vm').filter({ hasText: 'app-02' })).toContainText('Excluded from host DC0_C0_H1');

  // The search finds containers and VMs, showing the way down to them.
  await page.getByLabel('Search VMs').fill('DC0_C0_H1');
  await expect(page.getByTestId('pick-container')).toHaveCount(3);
  await page.getByLabel('Search VMs').fill('app-01');
  await expect(page.getByTestId('pick-vm')).toHaveCount(1);
  await expect(page.getByLabel('Select app-01')).not.toBeChecked();
  await page.getByLabel('Search VMs').fill('');

  // The tree with a container chosen and a VM excluded passes axe-core (WCAG 2 A/AA) with no serious or critical violation.
  const { violations } = await new AxeBuilder({ page }).include('.wizard').withTags(['wcag2a', 'wcag2aa']).analyze();
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(' | ')})`);
  expect(bad, bad.join('\n')).toEqual([]);

  // The VMs-and-folders view: the datacenter with its VMs (the lab has no folders).
  await page.getByRole('radio', { name: 'VMs and folders' }).check();
  const folders = page.getByRole('list', { name: 'Inventory: VMs and folders' });
  await expect(folders.getByRole('checkbox', { name: 'Select datacenter DC0' })).toBeVisible();
  await expect(folders.getByLabel('Select app-02')).not.toBeChecked();
  await page.getByRole('radio', { name: 'Hosts and clusters' }).check();

  // At 390 px the tree wraps instead of scrolling sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(host).toBeVisible();
  expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
  await page.screenshot({ path: shot('wizard-sources-tree-390'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: shot('wizard-sources-tree'), fullPage: true });

  for (const n of [2, 3, 4]) {
    await next(page);
    await step(page, n);
  }
  await next(page);
  await step(page, 5);
  await expect(page.getByTestId('review-sources')).toContainText('Host DC0/DC0_C0/DC0_C0_H1: its VMs at each run, VMs added later included (except app-02)');
  await page.getByLabel('Job name').fill(JOB);
  await page.getByRole('button', { name: 'Create job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} created.` })).toBeVisible();

  // Stored as the host, with the exclusion; the overview counts the host's VMs as in the job.
  const jobs = (await (await page.request.get(`${url()}/api/jobs`)).json()) as Array<{ id: string; name: string; vcenterId: string; sources: Array<{ moref: string }> }>;
  const job = jobs.find((j) => j.name === JOB)!;
  expect(job.sources).toEqual([{ kind: 'host', moref: expect.any(String), name: 'DC0_C0_H1', path: 'DC0/DC0_C0/DC0_C0_H1', exclude: [expect.objectContaining({ name: 'app-02' })] }]);
  const overview = (await (await page.request.get(`${url()}/api/overview/protection?limit=500`)).json()) as { vms: Array<{ name: string; jobs: Array<{ name: string }> }> };
  const inJob = overview.vms.filter((v) => v.jobs.some((j) => j.name === JOB)).map((v) => v.name);
  expect(inJob).toHaveLength(held - 1);
  expect(inJob).not.toContain('app-02');
  expect(inJob).not.toContain('app-01');

  // Two VMs created after the job (the lab puts new VMs on its hosts in turn): opened again, the job's host holds
  // the one made on it, ticked as part of the host, and not the other (each run expands the host the same way:
  // apps/director/test/job-containers.test.ts runs it).
  const lab = connectLab(labState());
  const later = [await lab.createVm({ name: 'e2e-later-a', disks: [], cbt: false }), await lab.createVm({ name: 'e2e-later-b', disks: [], cbt: false })];
  try {
    const inventory = (await (await page.request.get(`${url()}/api/vcenters/${job.vcenterId}/inventory`)).json()) as { vms: Array<{ name: string; containers?: string[] }> };
    const onHost = later.filter((v) => inventory.vms.find((x) => x.name === v.name)?.containers?.includes(job.sources[0]!.moref));
    expect(onHost).toHaveLength(1);
    const elsewhere = later.find((v) => v !== onHost[0])!;
    await page.goto(`${url()}/jobs/${job.id}/edit`);
    await step(page, 1);
    await expect(page.getByTestId('container-note')).toHaveText(new RegExp(`^${held + 1} VMs in it now, 1 excluded\\.`));
    await expect(page.getByTestId('vm-count')).toHaveText(` · ${held} VMs now`);
    await expect(tree.getByLabel(`Select ${onHost[0]!.name}`)).toBeChecked();
    await expect(tree.getByLabel(`Select ${elsewhere.name}`)).not.toBeChecked();
    await page.screenshot({ path: shot('wizard-sources-tree-later-vm'), fullPage: true });
  } finally {
    const soap = await lab.soap();
    for (const vm of later) await soap.task(`<Destroy_Task><_this type="VirtualMachine">${vm.moref}</_this></Destroy_Task>`).catch(() => undefined);
  }

  // Deleted again: the specs after this one see the inventory as they left it.
  await nav(page, 'Jobs');
  const row = page.getByTestId('job-row').filter({ hasText: JOB });
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: `Delete ${JOB}?` }).getByRole('button', { name: 'Delete job' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Job ${JOB} deleted.` })).toBeVisible();
});
