import { expect, test } from '@playwright/test';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { ADMIN_PASSWORD, labJobs, labState, nav, shot, signIn } from '../fixtures/session.ts';

/** A second lab vCenter: the appliance's own lab is registered already (as "Lab vCenter"). */
let other: Lab | undefined;
test.afterAll(async () => {
  await other?.stop();
});

const lab = () => {
  const s = labState();
  return { url: s.url, user: s.username, password: s.password, thumbprint: s.thumbprintSha256 };
};

test('adding a vCenter: the certificate thumbprint to confirm first, then a wrong password is named clearly; an unreachable host too', async ({ page }) => {
  await signIn(page);
  await nav(page, 'vCenters');
  await page.getByRole('button', { name: 'Add vCenter' }).click();
  const form = page.getByRole('form', { name: 'Add a vCenter' });
  const host = new URL(lab().url).host;

  await form.getByLabel('Name').fill('second');
  await form.getByLabel('URL').fill('https://127.0.0.1:1/sdk');
  await form.getByLabel('User').fill(lab().user);
  await form.getByLabel('Password').fill('whatever');
  await form.getByRole('button', { name: 'Connect' }).click();
  await expect(form.getByRole('alert')).toContainText('cannot reach 127.0.0.1:1');

  await form.getByLabel('URL').fill(lab().url);
  await form.getByLabel('Password').fill('not-the-lab-password');
  await form.getByRole('button', { name: 'Connect' }).click();
  const thumb = form.getByTestId('thumbprint');
  await expect(thumb).toContainText(`${host} presents a certificate with this SHA-256 thumbprint`);
  await expect(thumb).toContainText(lab().thumbprint);
  await page.screenshot({ path: shot('vcenter-thumbprint'), fullPage: true });
  await form.getByRole('button', { name: 'Trust this certificate and add' }).click();
  await expect(form.getByRole('alert').filter({ hasText: 'rejected' })).toHaveText(`${host} rejected the user name or password`);
  await page.screenshot({ path: shot('vcenter-wrong-password'), fullPage: true });

  // The right password, but this is the vCenter the appliance has already (same instance UUID).
  await form.getByLabel('Password').fill(lab().password);
  await form.getByRole('button', { name: 'Trust this certificate and add' }).click();
  await expect(form.getByRole('alert').filter({ hasText: 'already registered' })).toContainText(`this vCenter is already registered as Lab vCenter (${lab().url}, instance UUID `);

  // Another vCenter is added.
  other = await startLab({ port: 0 });
  await form.getByLabel('URL').fill(other.url);
  await form.getByLabel('User').fill(other.username);
  await form.getByLabel('Password').fill(other.password);
  await form.getByRole('button', { name: 'Connect' }).click();
  await expect(thumb).toContainText(other.thumbprintSha256);
  await form.getByRole('button', { name: 'Trust this certificate and add' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'vCenter second added.' })).toBeVisible();
  const row = page.getByTestId('vcenter-row').filter({ hasText: 'second' });
  await expect(row).toContainText(other.thumbprintSha256);
});

test('removing a vCenter asks first; one that jobs use is refused with the server’s reason', async ({ page }) => {
  await signIn(page);
  const inUse = (await labJobs(page)).length;
  await nav(page, 'vCenters');
  const used = page.getByTestId('vcenter-row').filter({ hasText: 'Lab vCenter' });
  await used.getByRole('button', { name: 'Remove' }).click();
  const dialog = page.getByRole('dialog', { name: 'Remove Lab vCenter?' });
  // Removing cannot be undone: the dialog wants the password again, and confirms nothing without it.
  await expect(dialog.getByRole('button', { name: 'Remove vCenter' })).toBeDisabled();
  await dialog.getByLabel('Your password, to confirm').fill(ADMIN_PASSWORD);
  await dialog.getByRole('button', { name: 'Remove vCenter' }).click();
  await expect(dialog.getByRole('alert')).toContainText(`Lab vCenter is used by ${inUse} job(s); delete or move them first`);
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  const second = page.getByTestId('vcenter-row').filter({ hasText: 'second' });
  await second.getByRole('button', { name: 'Remove' }).click();
  const confirm = page.getByRole('dialog', { name: 'Remove second?' });
  await confirm.getByLabel('Your password, to confirm').fill('not-the-password');
  await confirm.getByRole('button', { name: 'Remove vCenter' }).click();
  await expect(confirm.getByRole('alert')).toContainText('your password is wrong; nothing was changed');
  await confirm.getByLabel('Your password, to confirm').fill(ADMIN_PASSWORD);
  await confirm.getByRole('button', { name: 'Remove vCenter' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'vCenter second removed.' })).toBeVisible();
  await expect(second).toHaveCount(0);
});
