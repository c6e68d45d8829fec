import { expect, test } from '@playwright/test';
import { startSshLab } from '@vaultline/ssh-lab';
import { ADMIN_PASSWORD, nav, shot, signIn } from '../fixtures/session.ts';

test('an admin adds a remote Transporter against a real sshd: the host key is shown to confirm, then pinned; deploy is refused while PostgreSQL and Redis have no TLS for Transporters; remove forgets it', async ({ page }) => {
  // ssh-lab creates a local user for sshd to let in: that needs root.
  // Skipped only when the tests do not run as root (with CI=true, e2e/playwright.config.ts stops a run that is not root and says why, so in CI it always runs): deploying a remote Transporter needs a real SSH user and sshd, which only root can create here.
  test.skip(process.getuid?.() !== 0, 'needs root to create the SSH user and run sshd on loopback');
  // Building the bundle (first add) and copying it (deploy) take a while on two cores.
  test.setTimeout(420_000);
  const ssh = await startSshLab({ userPrefix: 'vle2e' });
  try {
    await signIn(page);
    await nav(page, 'Transporters');
    const section = page.getByTestId('remote-transporters');
    await section.getByRole('button', { name: 'Add remote host' }).click();
    const form = page.getByRole('form', { name: 'Add a remote Transporter' });
    await form.getByLabel('Name').fill('e2e remote');
    await form.getByLabel('User').fill(ssh.user);
    await form.getByLabel('Host').fill(ssh.host);
    await form.getByLabel('SSH port').fill(String(ssh.port));
    await form.getByLabel('SSH private key').fill(ssh.privateKey);
    await form.getByRole('button', { name: 'Connect' }).click();

    // First contact only shows the host key: exactly what ssh-keygen -l prints for it on the host.
    const key = form.getByTestId('host-key');
    await expect(key).toContainText(ssh.hostKeyFingerprint());
    await expect(key).toContainText('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub');
    await page.screenshot({ path: shot('remote-host-key'), fullPage: true });
    // Another port voids the confirmation.
    await form.getByLabel('SSH port').fill(String(ssh.port + 1));
    await expect(form.getByTestId('host-key')).toHaveCount(0);
    await form.getByLabel('SSH port').fill(String(ssh.port));
    await form.getByRole('button', { name: 'Connect' }).click();
    await expect(key).toContainText(ssh.hostKeyFingerprint());
    await form.getByRole('button', { name: 'Trust this host key and add' }).click();
    await expect(section.getByRole('status').filter({ hasText: 'e2e remote added: Linux' })).toBeVisible({ timeout: 240_000 });
    await expect(section.getByRole('status')).toContainText(`signed in as ${ssh.user}`);

    const row = section.getByTestId('remote-row').filter({ hasText: 'e2e remote' });
    await expect(row).toContainText(`${ssh.user}@${ssh.host}:${ssh.port}`);
    await expect(row).toContainText(ssh.hostKeyFingerprint());
    await expect(row).toContainText('not deployed yet');

    // Remote Transporters reach PostgreSQL and Redis over TLS only. The appliance under test has no CA for
    // them, so the deploy is refused with what to set, and nothing is installed. A full deploy with TLS,
    // a backup by the remote Transporter and the revocation on remove are covered through the same sshd by
    // apps/director/test/remote-transporters.e2e.test.ts.
    await row.getByRole('button', { name: 'Deploy' }).click();
    await expect(section.getByText('remote Transporters reach PostgreSQL and Redis over TLS only: set VAULTLINE_TRANSPORTER_TLS_CA')).toBeVisible({ timeout: 60_000 });
    await expect(row).toContainText('not deployed yet');
    await page.screenshot({ path: shot('remote-deploy-needs-tls'), fullPage: true });

    await row.getByRole('button', { name: 'Remove' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove e2e remote?' });
    await expect(dialog).toContainText('its own database and Redis logins (revoked by the Director) and its private key');
    await dialog.getByLabel('Your password, to confirm').fill(ADMIN_PASSWORD);
    await dialog.getByRole('button', { name: 'Remove', exact: true }).click();
    await expect(section.getByRole('status').filter({ hasText: 'e2e remote removed' })).toBeVisible({ timeout: 60_000 });
    await expect(row).toHaveCount(0);
  } finally {
    await ssh.stop();
  }
});
