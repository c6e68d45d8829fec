import { expect, test } from '@playwright/test';
import { totpCode, TOTP_STEP_SECONDS } from '../../apps/director/src/auth/totp.ts';
import { ADMIN_PASSWORD, shot, signIn, signOut, url } from '../fixtures/session.ts';

// Last of all: while it runs, the admin's sign-in needs a code (it is turned off again at the end).
test('an admin turns on two-factor sign-in, signs in with a code, and turns it off with password and code', async ({ page }) => {
  // A code works once: each call gives the code of a later 30 s step than the last, waiting when needed.
  let lastStep = 0;
  const nextCode = async (secret: string) => {
    for (;;) {
      const now = Math.floor(Date.now() / 1000 / TOTP_STEP_SECONDS);
      const step = [now, now + 1].find((s) => s > lastStep);
      if (step !== undefined) {
        lastStep = step;
        return totpCode(secret, step * TOTP_STEP_SECONDS * 1000);
      }
      await page.waitForTimeout(1000);
    }
  };

  await signIn(page);
  await page.getByRole('button', { name: /account menu/ }).click();
  await page.getByRole('menuitem', { name: 'Change password' }).click();
  const section = page.getByTestId('two-factor');
  await expect(section).toContainText('Off.');
  await section.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
  const secret = (await section.getByTestId('totp-secret').textContent())!.replace(/\s/g, '');
  expect(secret).toMatch(/^[A-Z2-7]{32}$/);
  await expect(section).toContainText(`otpauth://totp/Vaultline:admin?secret=${secret}`);
  await page.screenshot({ path: shot('two-factor-enrol'), fullPage: true });
  await section.getByLabel('Code from the app').fill(await nextCode(secret));
  await section.getByRole('button', { name: 'Turn on' }).click();
  await expect(section.getByRole('status')).toContainText('Two-factor sign-in is on');
  await expect(section.getByTestId('totp-secret')).toHaveCount(0);

  try {
    await signOut(page);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The password alone opens nothing: the code is asked next.
    await expect(page.getByLabel('Code')).toBeVisible();
    expect((await page.request.get(`${url()}/api/auth/me`)).status()).toBe(401);
    await page.getByLabel('Code').fill('000000');
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page.getByRole('alert')).toContainText('wrong or already used code');
    await page.getByLabel('Code').fill(await nextCode(secret));
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  } finally {
    // Whatever happened above, the admin signs in without a code again for later runs.
    await page.getByRole('button', { name: /account menu/ }).click();
    await page.getByRole('menuitem', { name: 'Change password' }).click();
    await section.getByLabel('Your password').fill(ADMIN_PASSWORD);
    await section.getByLabel('Code from the app').fill(await nextCode(secret));
    await section.getByRole('button', { name: 'Turn off' }).click();
    await expect(section.getByRole('status')).toContainText('Two-factor sign-in is off');
  }
  await signOut(page);
  await signIn(page);
});
