// Transporter-to-Transporter transfer in the console: a second Transporter serves a folder as a repository; the admin
// sees it on the Transporters page, adds it as a repository "On a Transporter" (encrypted: the serving Transporter
// never gets the passphrase), and a backup into it succeeds and is listed there.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { connectLab } from '@vaultline/vsphere-lab';
import { startExtraTransporter } from '../fixtures/appliance.ts';
import { labState, nav, shot, signIn, url } from '../fixtures/session.ts';

const VM = 'e2e-t2t-01';
const SIDE = 'e2e repository side';
const MiB = 1024 * 1024;

let folder = '';
let side: { stop(): Promise<void> } | null = null;
test.beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'vaultline-e2e-served-'));
  side = await startExtraTransporter(SIDE, { VAULTLINE_SERVE_REPOSITORIES: `e2e-served=${folder}`, VAULTLINE_SERVE_ADDRESS: '127.0.0.1:0' });
});
test.afterAll(async () => {
  await side?.stop();
  if (folder) await rm(folder, { recursive: true, force: true });
});

test('a repository served by another Transporter is added from the console and a backup goes into it over mutual TLS', async ({ page }) => {
  test.setTimeout(240_000);
  const lab = connectLab(labState());
  const vm = await lab.createVm({ name: VM, disks: [{ capacityBytes: 48 * MiB }], cbt: true, powerOn: true });
  await lab.guestWrite(VM, 0, [{ offset: 0, length: 16 * MiB, pattern: 'text', seed: 5 }]);

  await signIn(page);
  await nav(page, 'Transporters');
  // Its certificate is issued by the Director within seconds of its request; then it records where it serves.
  const row = page.getByTestId('transporter-row').filter({ hasText: SIDE });
  await expect(row.getByTestId('transporter-serves')).toContainText(/Serves e2e-served to other Transporters on 127\.0\.0\.1:\d+/, { timeout: 60_000 });

  await nav(page, 'Repositories');
  await page.getByRole('button', { name: 'Add repository' }).click();
  const form = page.getByRole('form', { name: 'Add a repository' });
  await form.getByRole('radio', { name: 'On a Transporter' }).check();
  await form.getByLabel('Name').fill('e2e via a Transporter');
  await form.getByLabel('Served repository').selectOption({ label: (await form.getByRole('option', { name: new RegExp(`^e2e-served on ${SIDE}`) }).textContent())! });
  await form.getByRole('checkbox', { name: /Encrypt with a passphrase/ }).check();
  await form.getByLabel(/^Passphrase \(at least/).fill('e2e served passphrase');
  await form.getByLabel('Passphrase again').fill('e2e served passphrase');
  await page.screenshot({ path: shot('add-repository-on-a-transporter'), fullPage: true });
  await form.getByRole('button', { name: 'Add repository' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Repository e2e via a Transporter added.' })).toBeVisible({ timeout: 30_000 });

  const [vc] = (await (await page.request.get(`${url()}/api/vcenters`)).json()) as { id: string }[];
  const repo = ((await (await page.request.get(`${url()}/api/repositories`)).json()) as { id: string; name: string; kind: string }[]).find((r) => r.name === 'e2e via a Transporter')!;
  expect(repo.kind).toBe('transporter');
  const job = await page.request.post(`${url()}/api/jobs`, { data: { name: `e2e ${VM}`, vcenterId: vc!.id, repositoryId: repo.id, sources: [{ moref: vm.moref, name: VM, instanceUuid: vm.instanceUuid }] } });
  expect(job.status(), await job.text()).toBe(201);
  const run = (await (await page.request.post(`${url()}/api/jobs/${((await job.json()) as { id: string }).id}/run`)).json()) as { id: string };
  await page.goto(`${url()}/runs/${run.id}`);
  const status = page.getByTestId('run-status').first();
  await expect(status).not.toHaveText(/^(queued|running)$/, { timeout: 120_000 });
  const ended = (await status.textContent()) ?? '';
  expect(ended, ended === 'succeeded' ? '' : `the run ended ${ended}; its log:\n${await page.getByTestId('run-log').innerText().catch(() => '(no log)')}`).toBe('succeeded');

  await nav(page, 'Repositories');
  await page.getByTestId('repository-row').filter({ hasText: 'e2e via a Transporter' }).getByRole('link', { name: 'e2e via a Transporter' }).click();
  await expect(page.getByTestId('vm-points').filter({ hasText: VM }).getByTestId('point-row')).toHaveCount(1);
  await page.screenshot({ path: shot('repository-on-a-transporter'), fullPage: true });
  // What the serving Transporter keeps: the repository's files (packs sealed by the Transporter that read the VM).
  expect(await readdir(folder)).toEqual(expect.arrayContaining(['config', 'packs', 'snapshots']));
});
