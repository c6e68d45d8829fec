import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, test } from '@playwright/test';
import { nav, shot, signIn } from '../fixtures/session.ts';

const SECRET = 'e2e-webhook-signing-secret';

interface Received {
  path: string;
  signature: string | undefined;
  body: string;
}

/** A webhook receiver on loopback: /hook answers 204, anything else 404 with a reason. */
async function receiver() {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url ?? '', signature: req.headers['x-vaultline-signature'] as string | undefined, body: Buffer.concat(chunks).toString('utf8') });
      if (req.url === '/hook') res.writeHead(204).end();
      else res.writeHead(404, { 'content-type': 'text/plain' }).end('no such hook');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { got, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A loopback port that was free a moment ago (nothing listens on it). */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('an admin adds a signed webhook; Send test reaches the loopback receiver, and a wrong URL shows the real error', async ({ page }) => {
  const hook = await receiver();
  try {
    await signIn(page);
    await nav(page, 'Notifications');
    await expect(page.getByText('No notification target yet.')).toBeVisible();
    await page.getByRole('button', { name: 'Add target' }).click();
    const form = page.getByRole('form', { name: 'Add a notification target' });
    await form.getByLabel('Name').fill('e2e hook');
    await form.getByLabel('URL').fill(`${hook.base}/hook`);
    await form.getByLabel(/Signing secret/).fill('too short');
    await form.getByRole('button', { name: 'Add target' }).click();
    await expect(form.getByRole('alert')).toHaveText('A signing secret has at least 16 characters (or leave it empty).');
    await form.getByLabel(/Signing secret/).fill(SECRET);
    await form.getByLabel('Events').selectOption('all');
    await page.screenshot({ path: shot('notification-add'), fullPage: true });
    await form.getByRole('button', { name: 'Add target' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Target e2e hook added.' })).toBeVisible();

    const row = page.getByTestId('target-row').filter({ hasText: 'e2e hook' });
    await expect(row).toContainText('signed (X-Vaultline-Signature)');
    await expect(row.getByLabel('Events for e2e hook')).toHaveValue('all');
    await row.getByRole('button', { name: 'Send test' }).click();
    await expect(page.getByTestId('test-outcome')).toHaveText('Test message delivered to e2e hook.');
    expect(hook.got).toHaveLength(1);
    const sent = hook.got[0]!;
    expect(sent.path).toBe('/hook');
    expect(JSON.parse(sent.body).event).toBe('test');
    expect(sent.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(sent.body).digest('hex')}`);

    // A wrong path on the same receiver, and a port nothing listens on: the Director's own words.
    const closed = await closedPort();
    for (const [name, target, error] of [
      ['e2e wrong path', `${hook.base}/wrong`, `e2e wrong path: ${hook.base} answered HTTP 404: no such hook`],
      ['e2e nowhere', `http://127.0.0.1:${closed}/hook`, `e2e nowhere: cannot reach http://127.0.0.1:${closed}: ECONNREFUSED`],
    ] as const) {
      await page.getByRole('button', { name: 'Add target' }).click();
      await form.getByLabel('Name').fill(name);
      await form.getByLabel('URL').fill(target);
      await form.getByRole('button', { name: 'Add target' }).click();
      const r = page.getByTestId('target-row').filter({ hasText: name });
      await r.getByRole('button', { name: 'Send test' }).click();
      await expect(page.getByRole('alert').filter({ hasText: `Sending to ${name} failed:` })).toHaveText(`Sending to ${name} failed: ${error}`);
    }
    await page.screenshot({ path: shot('notifications'), fullPage: true });

    // Disabling is one switch; deliveries list what was sent (test messages are not recorded there).
    await row.getByRole('switch', { name: 'e2e hook enabled' }).click();
    await expect(row.getByRole('switch', { name: 'e2e hook enabled' })).toHaveAttribute('aria-checked', 'false');
    await row.getByRole('button', { name: 'Deliveries' }).click();
    await expect(page.getByText(/Nothing sent to e2e hook yet|Recent deliveries/).first()).toBeVisible();
  } finally {
    await hook.close();
  }
});
