import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { backUpNow, labState, nav, next, shot, signIn } from '../fixtures/session.ts';

const VM = 'e2e-kvm-01';
const MiB = 1024 * 1024;

const step = (page: Page, n: number) => expect(page.getByRole('heading', { name: new RegExp(`^Step ${n} of 4`) })).toBeVisible();

test('a backed-up VM is restored onto KVM/Proxmox from the wizard: raw images equal to its disks, a libvirt domain with the mapped bridge, a Proxmox configuration and NOTES', async ({ page }) => {
  test.setTimeout(240_000);
  const lab = connectLab(labState());
  await lab.createVm({ name: VM, guestId: 'debian12_64Guest', disks: [{ capacityBytes: 24 * MiB }, { capacityBytes: 8 * MiB }], nics: ['VM Network'], cbt: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 3 * MiB, pattern: 'random', seed: 191 }]);
  await lab.guestWrite(VM, 1, [{ offset: 1 * MiB, length: 2 * MiB, pattern: 'text', seed: 192 }]);
  const truth = [await lab.diskSha256(VM, 0), await lab.diskSha256(VM, 1)];

  await signIn(page);
  const row = page.getByTestId('vm-row').filter({ hasText: VM });
  await backUpNow(page, VM, 90_000);

  await nav(page, 'Overview');
  await row.getByRole('link', { name: `Restore ${VM}` }).click();
  await step(page, 1);
  await next(page);
  await step(page, 2);
  await page.getByRole('radio', { name: /Onto KVM \/ Proxmox/ }).check();
  await expect(page.getByText(/SATA first boot for Windows/)).toBeVisible();
  await next(page);

  await step(page, 3);
  await page.getByLabel('Name of the VM on KVM').fill(`${VM}-kvm`);
  await expect(page.getByLabel('Folder')).toHaveValue(`${VM}-kvm`);
  // A path is not a folder name: refused in the wizard before the Director is asked.
  await page.getByLabel('Folder').fill('../etc');
  await next(page);
  await expect(page.getByRole('alert')).toHaveText('The folder is a name of letters, digits, dot, dash and underscore (not a path).');
  await page.getByLabel('Folder').fill(`${VM}-kvm`);
  await page.getByRole('radio', { name: /^raw/ }).check();
  await page.getByLabel('libvirt network for VM Network').fill('bridge:br0');
  await page.getByLabel('Proxmox VMID').fill('151');
  await expect(page.getByLabel('Proxmox storage')).toHaveValue('local-lvm');
  await page.screenshot({ path: shot('restore-kvm-details'), fullPage: true });
  await next(page);

  await step(page, 4);
  const summary = page.getByRole('definition');
  await expect(summary.filter({ hasText: 'VM Network → bridge:br0' })).toBeVisible();
  await expect(summary.filter({ hasText: 'VM 151 on storage local-lvm, bridge vmbr0' })).toBeVisible();
  await page.getByRole('button', { name: 'Start the restore' }).click();
  await expect(page.getByRole('heading', { level: 1, name: `Restore to ${VM}-kvm — run` })).toBeVisible();

  await expect(page.getByTestId('run-status')).toHaveText('succeeded', { timeout: 120_000 });
  await expect(page.getByText(/written to \S*e2e-kvm-01-kvm: disk-0\.raw, disk-1\.raw, domain\.xml/).first()).toBeVisible();

  const dir = path.join(process.env.VAULTLINE_E2E_KVM_EXPORT_DIR!, `${VM}-kvm`);
  expect((await readdir(dir)).sort()).toEqual(['151.conf', 'NOTES.txt', 'disk-0.raw', 'disk-1.raw', 'domain.xml', 'import-proxmox.sh']);
  for (const [i, want] of truth.entries()) {
    expect(createHash('sha256').update(await readFile(path.join(dir, `disk-${i}.raw`))).digest('hex')).toBe(want);
  }
  // Thin: the 24 MiB boot disk holds 3 MiB of data.
  expect((await stat(path.join(dir, 'disk-0.raw'))).blocks * 512).toBeLessThan(8 * MiB);
  const xml = await readFile(path.join(dir, 'domain.xml'), 'utf8');
  expect(xml).toMatch(/<name>e2e-kvm-01-kvm<\/name>/);
  expect(xml).toMatch(/<source bridge=['"]br0['"]\/>/);
  expect(await readFile(path.join(dir, '151.conf'), 'utf8')).toMatch(/^name: e2e-kvm-01-kvm$/m);
});
