import { expect, test } from '@playwright/test';
import { signIn } from '../fixtures/session.ts';

// A vCenter may report a VM without its guest OS (VMware Tools never ran) or on a host it does not list: the console
// says so in words, never with the vSphere managed-object reference (vm-42, host-17) an operator cannot read.
// The Director's answers are changed on their way to the page: the lab's VMs all report both.

const VM = 'db-01';
type Vm = { name: string; moref: string; guestId?: string; host?: string };

test('the Overview inventory says "unknown guest OS" for a VM that does not report one, not its MoRef', async ({ page }) => {
  let moref = '';
  await page.route(/\/api\/vcenters\/[^/]+\/vms$/, async (route) => {
    const res = await route.fetch();
    const vms = (await res.json()) as Vm[];
    const vm = vms.find((v) => v.name === VM);
    expect(vm?.guestId, `${VM} reports its guest OS in the lab`).toBeTruthy();
    moref = vm!.moref;
    delete vm!.guestId;
    await route.fulfill({ response: res, json: vms });
  });
  await signIn(page);
  const row = page.getByTestId('inventory').getByTestId('vm-row').filter({ hasText: VM });
  await expect(row).toContainText('unknown guest OS');
  expect(moref).not.toBe('');
  await expect(row).not.toContainText(moref);
});

test('the job wizard’s sources say "unknown guest OS" and "host not reported", not MoRefs', async ({ page }) => {
  let moref = '';
  await page.route(/\/api\/vcenters\/[^/]+\/inventory$/, async (route) => {
    const res = await route.fetch();
    const inv = (await res.json()) as { vms: Vm[] };
    const vm = inv.vms.find((v) => v.name === VM);
    expect(vm?.guestId && vm.host, `${VM} reports its guest OS and host in the lab`).toBeTruthy();
    moref = vm!.moref;
    delete vm!.guestId;
    // A host the inventory does not list (its name unknown).
    vm!.host = 'host-99999';
    await route.fulfill({ response: res, json: inv });
  });
  await signIn(page);
  await page.goto(`${new URL(page.url()).origin}/jobs/new`);
  await page.getByLabel('Search VMs').fill(VM);
  const item = page.getByTestId('pick-vm').filter({ hasText: VM });
  await expect(item).toContainText('unknown guest OS · host not reported');
  expect(moref).not.toBe('');
  await expect(item).not.toContainText(moref);
  await expect(item).not.toContainText('host-99999');
  // The other VMs still show their guest OS and host by name.
  await page.getByLabel('Search VMs').fill('web-01');
  await expect(page.getByTestId('pick-vm').filter({ hasText: 'web-01' })).not.toContainText(/unknown guest OS|host not reported/);
});
