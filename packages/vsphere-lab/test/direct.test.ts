import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import https from 'node:https';
import type tls from 'node:tls';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest, SoapClient, SoapFault, tag, tags } from '../src/soap.ts';
import { MiB } from './helpers.ts';

const isRoot = process.getuid?.() === 0;

/** A GET on a lab host, trusting any certificate (the test checks the presented one itself). */
function hostGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; thumbprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { headers, rejectUnauthorized: false, agent: false }, (res) => {
      const cert = (res.socket as tls.TLSSocket).getPeerCertificate();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), thumbprint: cert.fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

// Root only: each host listens on port 443 of a loopback address (with CI=true, vitest.config.ts refuses a run
// that is not root, so this cannot skip there).
describe.runIf(isRoot)('hosts reachable directly, with vCenter service tickets', () => {
  let lab: Lab;
  let soap: SoapClient;
  let names: string[] = [];
  beforeAll(async () => {
    lab = await startLab({ directHosts: true });
    soap = await lab.soap();
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const ticket = async (url: string, method = 'httpGet') => {
    const xml = await soap.call(
      `<AcquireGenericServiceTicket><_this type="SessionManager">SessionManager</_this><spec xsi:type="SessionManagerHttpServiceRequestSpec"><method>${method}</method><url>${url.replace(/&/g, '&amp;')}</url></spec></AcquireGenericServiceTicket>`,
    );
    return { id: tag(xml, 'id')!, hostName: tag(xml, 'hostName'), sslThumbprint: tag(xml, 'sslThumbprint') };
  };

  it('each host is named by its own loopback address and serves /folder there to one request per ticket, for the URL it was issued for', async () => {
    const inventory = JSON.parse((await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem })).body.toString()) as { hosts: string[] };
    names = [];
    for (const h of inventory.hosts) names.push(...tags(await soap.retrieve('HostSystem', h, ['name']), 'val'));
    expect(names).toHaveLength(2);
    for (const n of names) expect(n).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect(new Set(names).size).toBe(2);

    const vm = await lab.createVm({ name: 'direct01', disks: [{ capacityBytes: 8 * MiB }] });
    await lab.guestWrite('direct01', 0, [{ offset: MiB, length: MiB, pattern: 'random', seed: 1 }]);
    const url = `https://${names[0]}/folder/direct01/direct01-flat.vmdk?dcPath=ha-datacenter&dsName=datastore1`;
    const t = await ticket(url);
    expect(t.hostName).toBe(names[0]);
    expect(t.sslThumbprint).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    const got = await hostGet(url, { cookie: `vmware_cgi_ticket=${t.id}`, range: `bytes=${MiB}-${2 * MiB - 1}` });
    expect(got.status).toBe(206);
    expect(got.thumbprint).toBe(t.sslThumbprint);
    const local = (await import('node:fs')).readFileSync(vm.disks[0]!.flatPath).subarray(MiB, 2 * MiB);
    expect(got.body.equals(local)).toBe(true);
    // Single use; only for its URL; never without one.
    expect((await hostGet(url, { cookie: `vmware_cgi_ticket=${t.id}` })).status).toBe(401);
    const other = await ticket(url.replace('direct01-flat', 'direct01'));
    expect((await hostGet(url, { cookie: `vmware_cgi_ticket=${other.id}` })).status).toBe(401);
    expect((await hostGet(url)).status).toBe(401);
    // A host's datacenter is ha-datacenter.
    const wrongDc = url.replace('ha-datacenter', 'DC0');
    expect((await hostGet(wrongDc, { cookie: `vmware_cgi_ticket=${(await ticket(wrongDc)).id}` })).status).toBe(404);
  });

  it('a ticket for a host is only issued to a signed-in session', async () => {
    expect(names[0]).toMatch(/^127\./);
    const anonymous = new SoapClient(lab.url, lab.certPem);
    await expect(anonymous.call(`<AcquireGenericServiceTicket><_this type="SessionManager">SessionManager</_this><spec xsi:type="SessionManagerHttpServiceRequestSpec"><method>httpGet</method><url>https://${names[0]}/folder/x</url></spec></AcquireGenericServiceTicket>`)).rejects.toBeInstanceOf(SoapFault);
  });
});
