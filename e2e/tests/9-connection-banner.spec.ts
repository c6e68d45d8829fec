import { expect, test, type WebSocketRoute } from '@playwright/test';
import { nav, signIn } from '../fixtures/session.ts';

// The Director made unreachable from the page's point of view only (the appliance keeps running): its API requests
// and socket.io's HTTP requests fail, and its WebSocket is closed by the route in between.

test('a banner says when live updates stop and when the Director stops answering, and goes away when it is back', async ({ page }) => {
  test.setTimeout(120_000);
  let socketDown = false;
  const sockets: WebSocketRoute[] = [];
  await page.routeWebSocket(/\/socket\.io\//, (ws) => {
    if (socketDown) return void ws.close();
    ws.connectToServer();
    sockets.push(ws);
  });
  await signIn(page);
  await nav(page, 'Jobs');
  const banner = page.getByTestId('connection-banner');
  await expect(banner).toHaveCount(0);

  // The socket drops and cannot reconnect (the WebSocket closed; socket.io's polling fallback refused), the API still answers.
  socketDown = true;
  await page.route('**/socket.io/**', (r) => r.abort('internetdisconnected'));
  for (const ws of sockets.splice(0)) await ws.close();
  await expect(banner).toBeVisible();
  await expect(banner).toHaveRole('alert');
  await expect(banner).toHaveText('Live updates have stopped: the connection to the Director is down. Reconnecting… Until then, progress and states on this page are not updated.');
  // Back: socket.io reconnects on its own (within its back-off, at most about 7.5 s) and the banner goes.
  socketDown = false;
  await page.unroute('**/socket.io/**');
  await expect(banner).toHaveCount(0, { timeout: 20_000 });

  // The API no longer answers: the next request (opening another page) fails and the banner says so.
  await page.route('**/api/**', (r) => r.abort('internetdisconnected'));
  await nav(page, 'Runs');
  await expect(banner).toBeVisible();
  await expect(banner).toContainText('The Director is not answering.');
  await expect(banner).toContainText('the console keeps trying and this notice goes away when the Director answers again');
  await expect(page.getByRole('alert').filter({ hasText: 'Cannot load runs: The Director is not answering (no connection).' })).toBeVisible();
  // Back: the banner's health probe (every 5 s) finds it and the banner goes, on a page that does not poll.
  await page.unroute('**/api/**');
  await expect(banner).toHaveCount(0, { timeout: 20_000 });
});

test('a read the Director does not answer gives up after 15 s and says so', async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  // The runs list is asked for and never answered (the request hangs); the console's own timeout ends it (and its one retry).
  await page.route(/\/api\/runs(\?|$)/, () => undefined);
  const started = Date.now();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs', exact: true }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'Cannot load runs: The Director did not answer within 15 s.' })).toBeVisible({ timeout: 60_000 });
  expect(Date.now() - started, 'not before its 15 s').toBeGreaterThanOrEqual(15_000);
  await expect(page.getByTestId('connection-banner')).toContainText('The Director is not answering.');
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  await expect(page.getByTestId('connection-banner')).toHaveCount(0, { timeout: 20_000 });
});
