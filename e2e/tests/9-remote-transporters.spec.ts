import { execFileSync } from 'node:child_process';
import { expect, test } from '@playwright/test';
import { startSshLab } from '@vaultline/ssh-lab';
import { ADMIN_PASSWORD, nav, shot, signIn } from '../fixtures/session.ts';

/**
 * The Transporter logins the Director has made on the appliance's own PostgreSQL (members of vl_transporters)
 * and Redis (ACL users named like them), read with the command-line clients as an operator would.
 */
function transporterLogins(): { pg: string[]; redis: string[] } {
  const services = JSON.parse(process.env.VAULTLINE_E2E_SERVICES ?? 'null') as { pgAdminUrl: string; redisPort: number; caFile: string } | null;
  if (!services) throw new Error('VAULTLINE_E2E_SERVICES is not set (e2e/fixtures/global-setup.ts sets it)');
  const sql = "select r.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid join pg_roles r on r.oid = m.member where g.rolname = 'vl_transporters' order by 1";
  const pg = execFileSync('psql', [services.pgAdminUrl, '-tAc', sql], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const users = execFileSync('redis-cli', ['--tls', '--cacert', services.caFile, '-h', '127.0.0.1', '-p', String(services.redisPort), 'ACL', 'USERS'], { encoding: 'utf8' });
  return { pg, redis: users.split('\n').filter((u) => u.startsWith('vl_t_')) };
}

test('an admin adds a remote Transporter against a real sshd: the host key is shown to confirm, then pinned; the deploy comes online over TLS-only PostgreSQL and Redis; remove stops it and revokes its logins', async ({ page }) => {
  // ssh-lab creates a local user for sshd to let in: that needs root.
  // Skipped only when the tests do not run as root (with CI=true, e2e/playwright.config.ts stops a run that is not root and says why, so in CI it always runs): deploying a remote Transporter needs a real SSH user and sshd, which only root can create here.
  // Skipped off root only (creating the SSH user and running sshd need root); e2e/playwright.config.ts refuses CI=true without root, so on CI it always runs.
  // Skipped only outside CI for a developer who is not root; in CI (CI=true) it runs, and fails without root.
  test.skip(process.getuid?.() !== 0 && process.env.CI !== 'true', 'needs root to create the SSH user and run sshd on loopback');
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

    // Remote Transporters reach PostgreSQL and Redis over TLS only, with logins of their own: the appliance
    // under test runs both with TLS and a CA (e2e/fixtures/appliance.ts), as an appliance does once
    // VAULTLINE_TRANSPORTER_TLS_CA is set. The deploy copies the bundle, starts it as the SSH user, and waits
    // for its first heartbeat, which it can only send over verify-full PostgreSQL and rediss://.
    expect(transporterLogins()).toEqual({ pg: [], redis: [] });
    await row.getByRole('button', { name: 'Deploy' }).click();
    const outcome = section.getByTestId('remote-outcome');
    await expect(outcome).toContainText('installed version', { timeout: 240_000 });
    await expect(outcome).toContainText('a supervised background process');
    await expect(outcome).not.toContainText('no heartbeat came');
    await expect(row.locator('.pill')).toHaveText('online', { timeout: 30_000 });
    await expect(row).toContainText(`in ${ssh.home}/.vaultline-transporter`);
    // It is listed with the appliance's own Transporter, online, under the name given.
    await expect(page.getByTestId('transporter-row').filter({ hasText: 'e2e remote' })).toContainText('online');
    await page.screenshot({ path: shot('remote-deployed'), fullPage: true });
    // Its own logins, one on each service, and nothing else.
    const logins = transporterLogins();
    expect(logins.pg).toHaveLength(1);
    expect(logins.redis).toEqual(logins.pg);

    await row.getByRole('button', { name: 'Remove' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove e2e remote?' });
    await expect(dialog).toContainText('its own database and Redis logins (revoked by the Director) and its private key');
    await dialog.getByLabel('Your password, to confirm').fill(ADMIN_PASSWORD);
    await dialog.getByRole('button', { name: 'Remove', exact: true }).click();
    await expect(section.getByRole('status').filter({ hasText: 'e2e remote removed' })).toBeVisible({ timeout: 60_000 });
    await expect(row).toHaveCount(0);
    // Its logins are revoked on both services.
    expect(transporterLogins()).toEqual({ pg: [], redis: [] });
  } finally {
    await ssh.stop();
  }
});
