/**
 * PropertyCollector paging against the lab vCenter, which pages as vCenter does (at most maxObjects per
 * page, and never more than its own cap of 100 however many were asked for; the rest behind a token).
 * An inventory larger than one page comes back whole through ContinueRetrievePropertiesEx, and tokens
 * behave as vSphere documents them: used once, cancellable, good only in the session that got them.
 */
import https from 'node:https';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgument, VSphereClient } from '../src/index.ts';
import { retrieveProperties, specSetXml, withContainerView } from '../src/property.ts';
import { el, join, ref, text, val, type MoRef } from '../src/soap/xml.ts';

interface Paging {
  pages: number;
  continues: number;
  cancels: number;
  open: number;
}

const VMS = 230;
let lab: Lab;
let client: VSphereClient;

const connect = () => VSphereClient.connect({ url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256, keepAliveMs: 0 });
/** The lab's paging counters (GET /lab/paging, ?reset=1 to start counting again). */
async function paging(reset = false): Promise<Paging> {
  const res = await fetchLab(new URL(`/lab/paging${reset ? '?reset=1' : ''}`, lab.url));
  return JSON.parse(res) as Paging;
}
const fetchLab = (url: URL) =>
  new Promise<string>((resolve, reject) => {
    https
      .get(url, { ca: lab.certPem }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url.pathname}: ${res.statusCode} ${body}`))));
      })
      .on('error', reject);
  });

beforeAll(async () => {
  lab = await startLab({});
  // More VMs than two of the lab's pages hold, without disks (only their count matters here).
  for (let i = 0; i < VMS; i += 10) {
    await Promise.all(Array.from({ length: Math.min(10, VMS - i) }, (_, k) => lab.createVm({ name: `paged-${String(i + k).padStart(3, '0')}`, disks: [] })));
  }
  client = await connect();
}, 300_000);
afterAll(async () => {
  await client?.close();
  await lab?.stop();
});

/** Every VM's name through a container view on the root folder, `maxObjects` per page asked for. */
async function vmNames(c: VSphereClient, maxObjects?: number): Promise<string[]> {
  const sc = c.serviceContent;
  const objects = await withContainerView(c.soap, sc.viewManager, sc.rootFolder, ['VirtualMachine'], (view) =>
    retrieveProperties(c.soap, sc.propertyCollector, { view, propSets: [{ type: 'VirtualMachine', paths: ['name'] }], ...(maxObjects ? { maxObjects } : {}) }),
  );
  return objects.map((o) => o.props.get('name')!.text);
}

/** A first page of VM names asked for raw, returning the token it carries. */
async function firstPageToken(c: VSphereClient, view: MoRef): Promise<string> {
  const sc = c.serviceContent;
  const body = join([
    ref('_this', sc.propertyCollector),
    specSetXml({ view, propSets: [{ type: 'VirtualMachine', paths: ['name'] }] }),
    el('options', val('maxObjects', 50)),
  ]);
  const r = await c.soap.returnval('RetrievePropertiesEx', body);
  const token = r ? text(r, 'token') : undefined;
  expect(token, 'a first page of 50 out of more than 200 VMs carries a token').toBeTruthy();
  return token!;
}

describe('lab: PropertyCollector paging', () => {
  it('the inventory of more VMs than a page holds comes back whole, page by page, with nothing left open', async () => {
    await paging(true);
    const inv = await client.inventory.all();
    const names = inv.vms.map((v) => v.name).filter((n) => n.startsWith('paged-'));
    expect(names.sort()).toEqual(Array.from({ length: VMS }, (_, i) => `paged-${String(i).padStart(3, '0')}`));
    const p = await paging();
    // The client asks for 200 VMs a page; the lab's cap gives 100: at least two continues for the VMs alone.
    expect(p.continues).toBeGreaterThanOrEqual(2);
    expect(p.open).toBe(0);
  });

  it('pages hold what maxObjects asks for: 7 a page means one continue per further 7 objects', async () => {
    const all = await vmNames(client);
    await paging(true);
    const paged = await vmNames(client, 7);
    expect(paged).toEqual(all);
    const p = await paging();
    expect(p.continues).toBe(Math.ceil(all.length / 7) - 1);
    expect(p.pages).toBe(Math.ceil(all.length / 7));
    expect(p.open).toBe(0);
  });

  it('a token is used once; a cancelled one is gone; another session cannot use it (InvalidArgument)', async () => {
    const sc = client.serviceContent;
    const other = await connect();
    try {
      await withContainerView(client.soap, sc.viewManager, sc.rootFolder, ['VirtualMachine'], async (view) => {
        const cont = (c: VSphereClient, token: string) => c.soap.returnval('ContinueRetrievePropertiesEx', join([ref('_this', c.serviceContent.propertyCollector), val('token', token)]));
        const cancel = (c: VSphereClient, token: string) => c.soap.call('CancelRetrievePropertiesEx', join([ref('_this', c.serviceContent.propertyCollector), val('token', token)]));

        const used = await firstPageToken(client, view);
        await expect(cont(other, used)).rejects.toBeInstanceOf(InvalidArgument);
        const next = await cont(client, used);
        expect(next && text(next, 'token'), 'the second page of 50 carries a token too').toBeTruthy();
        await expect(cont(client, used)).rejects.toBeInstanceOf(InvalidArgument);
        await cancel(client, text(next!, 'token')!);

        const cancelled = await firstPageToken(client, view);
        await expect(cancel(other, cancelled)).rejects.toBeInstanceOf(InvalidArgument);
        await cancel(client, cancelled);
        await expect(cont(client, cancelled)).rejects.toBeInstanceOf(InvalidArgument);
      });
      expect((await paging()).open).toBe(0);
    } finally {
      await other.close();
    }
  });
});
