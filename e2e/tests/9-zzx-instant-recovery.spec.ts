import { expect, test, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { backUpNow, labState, nav, next, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-ir-01';
const RECOVERED = `${VM}-recovered`;
const SECOND = `${VM}-second`;
const MiB = 1024 * 1024;

const step = (page: Page, n: number) => expect(page.getByRole('heading', { name: new RegExp(`^Step ${n} of 4`) })).toBeVisible();

/** The form of instant recovery for the VM's newest restore point, reached as an operator would: overview → restore → what. */
async function openForm(page: Page) {
  await nav(page, 'Overview');
  await page.getByTestId('vm-row').filter({ hasText: VM }).getByRole('link', { name: `Restore ${VM}` }).click();
  await step(page, 1);
  await next(page);
  await step(page, 2);
  await page.getByTestId('instant-recovery-offer').getByRole('link', { name: 'Instant recovery' }).click();
  await expect(page.getByRole('heading', { level: 1, name: `Instant recovery of ${VM}` })).toBeVisible();
}

/** Chooses the first ESXi host the form lists; its name. */
async function chooseHost(page: Page): Promise<string> {
  const hosts = page.getByLabel('ESXi host').locator('option:not([value=""])');
  await expect(hosts.first()).toBeAttached();
  const value = (await hosts.first().getAttribute('value'))!;
  await page.getByLabel('ESXi host').selectOption(value);
  return (await hosts.first().textContent())!.split(' · ')[0]!;
}

/** The NFS datastores of instant recoveries the lab vCenter still has, as the Director lists its datastores. */
async function recoveryDatastores(page: Page): Promise<string[]> {
  const [vc] = (await (await page.request.get(`${url()}/api/vcenters`)).json()) as { id: string }[];
  const placement = (await (await page.request.get(`${url()}/api/vcenters/${vc!.id}/placement`)).json()) as { datastores: { name: string }[] };
  return placement.datastores.map((d) => d.name).filter((n) => n.startsWith('vaultline-'));
}

test('instant recovery from a restore point: the VM runs on the chosen host from the Transporter\'s NFS export within seconds, reads as the backup, moves to local storage while running; a second one is discarded and nothing is left', async ({ page }) => {
  // The Transporter serves NFS on the ports ESXi uses (111, 2049): only root may listen there (CI runs as root).
  // Skipped only outside CI for a developer who is not root; in CI (CI=true) it runs, and fails without root.
  test.skip(process.getuid?.() !== 0 && process.env.CI !== 'true', 'needs root: the Transporter serves NFS on ports 111 and 2049');
  test.setTimeout(300_000);
  const lab = connectLab(labState());
  await lab.createVm({ name: VM, guestId: 'debian12_64Guest', disks: [{ capacityBytes: 24 * MiB }], nics: ['VM Network'], cbt: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 5 * MiB, pattern: 'random', seed: 311 }]);
  const truth = await lab.diskSha256(VM, 0);

  await signIn(page);
  await backUpNow(page, VM, 90_000);

  await openForm(page);
  await expect(page.getByLabel('VM name')).toHaveValue(RECOVERED);
  await expect(page.getByRole('checkbox', { name: /Power it on/ })).toBeChecked();
  await expect(page.getByRole('checkbox', { name: /Connect its network adapters/ })).not.toBeChecked();
  // No host chosen: said in the form, nothing asked of the Director.
  await page.getByRole('button', { name: 'Recover now' }).click();
  await expect(page.getByRole('alert')).toHaveText('Choose the ESXi host the VM runs on.');
  const host = await chooseHost(page);
  await page.screenshot({ path: shot('instant-recovery-form'), fullPage: true });
  await page.getByRole('button', { name: 'Recover now' }).click();

  await expect(page.getByRole('heading', { level: 1, name: 'Instant recovery' })).toBeVisible();
  await expect(page.getByRole('status').filter({ hasText: 'Recovering' })).toContainText(`Recovering ${RECOVERED} on ${host}`);
  const row = page.getByTestId('instant-recovery-row').filter({ hasText: RECOVERED });
  await expect(row.getByTestId('instant-recovery-state')).toHaveText(/running from backup/, { timeout: 90_000 });
  await expect(row).toContainText(host);
  await expect(row).toContainText(/vaultline-/);
  await expect(row).toContainText('served by e2e-transporter');
  await page.screenshot({ path: shot('instant-recovery-running'), fullPage: true });

  // In vSphere: powered on, its disk on the NFS datastore, reading what was backed up.
  const running = await lab.getVm(RECOVERED);
  expect(running.powerState).toBe('poweredOn');
  expect(running.disks[0]!.fileName).toMatch(/^\[vaultline-[^\]]+\] /);
  expect(await lab.diskSha256(RECOVERED, 0)).toBe(truth);

  // Migrate: the running VM moves to the lab's local datastore; the NFS datastore goes.
  const local = lab.datastores[0]!.name;
  await row.getByRole('button', { name: `Migrate ${RECOVERED}` }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Migrate' }).click();
  await expect(dialog.getByRole('alert')).toHaveText('Choose the datastore to move it to.');
  const target = dialog.getByLabel('Target datastore').locator('option').filter({ hasText: new RegExp(`^${local} · `) });
  await dialog.getByLabel('Target datastore').selectOption((await target.getAttribute('value'))!);
  await dialog.getByRole('button', { name: 'Migrate' }).click();
  await expect(dialog).toBeHidden();
  await expect(row.getByTestId('instant-recovery-state')).toHaveText(/migrated/, { timeout: 120_000 });
  await expect(row).toContainText(local);
  const moved = await lab.getVm(RECOVERED);
  expect(moved.powerState).toBe('poweredOn');
  expect(moved.disks[0]!.fileName.startsWith(`[${local}] `)).toBe(true);
  expect(await lab.diskSha256(RECOVERED, 0)).toBe(truth);
  await expect(row.getByRole('button', { name: `Migrate ${RECOVERED}` })).toHaveCount(0);
  expect(await recoveryDatastores(page)).toEqual([]);

  // A second recovery of the same point, discarded: the VM and its datastore go; the restore point stays.
  await openForm(page);
  await page.getByLabel('VM name').fill(SECOND);
  await chooseHost(page);
  await page.getByRole('button', { name: 'Recover now' }).click();
  const second = page.getByTestId('instant-recovery-row').filter({ hasText: SECOND });
  await expect(second.getByTestId('instant-recovery-state')).toHaveText(/running from backup/, { timeout: 90_000 });
  await second.getByRole('button', { name: `Discard ${SECOND}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Discard VM' }).click();
  await expect(second.getByTestId('instant-recovery-state')).toHaveText(/discarded/, { timeout: 90_000 });
  await expect(lab.getVm(SECOND)).rejects.toThrow();
  expect(await recoveryDatastores(page)).toEqual([]);
  await nav(page, 'Overview');
  await expect(page.getByTestId('vm-row').filter({ hasText: VM }).getByRole('link', { name: `Restore ${VM}` })).toBeVisible();
});
