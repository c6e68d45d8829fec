/**
 * The inventory cache over the real connector and the lab vCenter: a copy is answered while young, callers
 * share one read, an old copy is refreshed, a vCenter that stops answering is shown as it last answered
 * (dated), and a changed connection never answers from another's copy. The connector is the product's own,
 * wrapped only to count the reads it makes.
 */
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InventoryCache } from '../src/services/inventory-cache.ts';
import type { VCenterConnection, VCenterConnector } from '../src/services/vcenter-connector.ts';
import { vsphereConnector } from '../src/services/vsphere-connector.ts';

describe('InventoryCache (lab vCenter)', () => {
  let lab: Lab;
  let conn: VCenterConnection;
  let reads = 0;
  const real = vsphereConnector();
  const counting: VCenterConnector = {
    ...real,
    inventory: (c) => {
      reads++;
      return real.inventory(c);
    },
  };
  let clock = Date.parse('2026-12-06T12:00:00Z');
  const cache = () => new InventoryCache(counting, { maxAgeMs: 60_000, staleWaitMs: 3_000, firstWaitMs: 5_000, now: () => clock });

  beforeAll(async () => {
    lab = await startLab({ port: 0 });
    await lab.createVm({ name: 'app01', disks: [{ capacityBytes: 1 << 20 }] });
    conn = { url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, allowHttp: false };
  });
  afterAll(async () => {
    await lab?.stop().catch(() => undefined);
  });

  it('answers a young copy without reading, shares one read between callers, and refreshes an old copy', async () => {
    const c = cache();
    reads = 0;
    const [a, b] = await Promise.all([c.listVms(conn, 'vc'), c.listVms(conn, 'vc')]);
    expect(reads).toBe(1);
    expect(a.vms.map((v) => v.name)).toContain('app01');
    expect(b.vms).toBe(a.vms);
    expect(a.problem).toBeNull();

    await lab.createVm({ name: 'db01', disks: [{ capacityBytes: 1 << 20 }] });
    clock += 59_000;
    const young = await c.listVms(conn, 'vc');
    expect(reads).toBe(1);
    expect(young.vms.map((v) => v.name)).not.toContain('db01');
    expect(young.at).toEqual(a.at);

    clock += 2_000;
    const renewed = await c.listVms(conn, 'vc');
    expect(reads).toBe(2);
    expect(renewed.vms.map((v) => v.name)).toContain('db01');
    expect(renewed.at.getTime()).toBe(clock);

    // The present, when asked for, whatever the copy's age.
    await c.listVms(conn, 'vc', { maxAgeMs: 0 });
    expect(reads).toBe(3);
  });

  it('never answers a changed connection from another copy: a wrong password is refused, not served the old list', async () => {
    const c = cache();
    await c.listVms(conn, 'vc');
    await expect(c.listVms({ ...conn, password: 'not-the-password' }, 'vc')).rejects.toThrow(/login|password|incorrect|denied/i);
  });

  it('a caller asking for the present gets a read of its own, not one already under way', async () => {
    const c = cache();
    reads = 0;
    const under = c.listVms(conn, 'vc');
    const present = c.listVms(conn, 'vc', { maxAgeMs: 0 });
    await Promise.all([under, present]);
    expect(reads).toBe(2);
  });

  it('shows a vCenter that stops answering as it last answered, dated; without a copy it is an error', async () => {
    const c = cache();
    const first = await c.listVms(conn, 'vc');
    await lab.stop();
    clock += 120_000;
    const old = await c.listVms(conn, 'vc');
    expect(old.vms).toBe(first.vms);
    expect(old.at).toEqual(first.at);
    expect(old.problem).toMatch(/ECONNREFUSED|connect|answer/i);
    await expect(cache().listVms(conn, 'vc')).rejects.toThrow();
  });
});
