import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest, SoapFault, tag, tags, type SoapClient } from '../src/soap.ts';
import { createSnapshot, MiB, removeSnapshot } from './helpers.ts';

let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab();
  soap = await lab.soap();
});
afterAll(async () => {
  await lab?.stop();
});

function fileBytes(file: string, start: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, start);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

async function rangeGet(url: string, start: number, length: number) {
  return httpRequest(url, { ca: lab.certPem, headers: { Range: `bytes=${start}-${start + length - 1}` } });
}

async function leaseUrls(lease: string): Promise<string[]> {
  const xml = await soap.retrieve('HttpNfcLease', lease, ['info', 'state']);
  expect(xml).toContain('ready');
  const base = new URL(lab.url);
  return tags(xml, 'url').map((u) => u.replace('://*/', `://${base.host}/`));
}

describe('disk data over HTTP', () => {
  it('datastore /folder GET with Range returns 206 and the exact bytes of the flat file', async () => {
    const vm = await lab.createVm({ name: 'range', disks: [{ capacityBytes: 64 * MiB }], cbt: true });
    await lab.guestWrite('range', 0, [{ offset: 1 * MiB, length: 1 * MiB, pattern: 'random', seed: 7 }]);
    const u = new URL(`${new URL(lab.url).origin}/folder/range/range-flat.vmdk`);
    u.searchParams.set('dcPath', lab.datacenter);
    u.searchParams.set('dsName', 'datastore1');
    const res = await rangeGet(u.toString(), 1 * MiB + 4096, 8192);
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes ${1 * MiB + 4096}-${1 * MiB + 4096 + 8191}/${64 * MiB}`);
    expect(res.body.equals(fileBytes(vm.disks[0]!.flatPath, 1 * MiB + 4096, 8192))).toBe(true);
  });

  it('ExportVm on a powered-off VM returns a ready lease whose disk URLs serve the raw disk with Range', async () => {
    const vm = await lab.createVm({ name: 'export-off', disks: [{ capacityBytes: 32 * MiB }, { capacityBytes: 16 * MiB, controller: 'lsilogic' }] });
    await lab.guestWrite('export-off', 1, [{ offset: 5 * MiB, length: 70000, pattern: 'text', seed: 3 }]);
    const xml = await soap.call(`<ExportVm><_this type="VirtualMachine">${vm.moref}</_this></ExportVm>`);
    const lease = tag(xml, 'returnval')!;
    const urls = await leaseUrls(lease);
    expect(urls).toHaveLength(2);
    expect(urls[1]).toMatch(/\/lab-nfc\/.+\/disk-1\.vmdk$/);
    const res = await rangeGet(urls[1]!, 5 * MiB, 70000);
    expect(res.status).toBe(206);
    expect(res.body.equals(fileBytes(vm.disks[1]!.flatPath, 5 * MiB, 70000))).toBe(true);
    const full = await httpRequest(urls[0]!, { ca: lab.certPem });
    expect(full.status).toBe(200);
    expect(full.body.length).toBe(32 * MiB);
    await soap.call(`<HttpNfcLeaseComplete><_this type="HttpNfcLease">${lease}</_this></HttpNfcLeaseComplete>`);
    expect((await httpRequest(urls[0]!, { ca: lab.certPem })).status).toBe(404);
  });

  it('ExportVm on a powered-on VM faults with InvalidPowerState', async () => {
    const vm = await lab.createVm({ name: 'export-on', disks: [{ capacityBytes: 8 * MiB }], powerOn: true });
    await expect(soap.call(`<ExportVm><_this type="VirtualMachine">${vm.moref}</_this></ExportVm>`)).rejects.toSatisfy(
      (e: unknown) => e instanceof SoapFault && e.faultType === 'InvalidPowerState',
    );
  });

  it("ExportSnapshot of a running VM serves the snapshot's frozen bytes, not later guest writes", async () => {
    const vm = await lab.createVm({ name: 'export-snap', disks: [{ capacityBytes: 16 * MiB }], powerOn: true, cbt: true });
    await lab.guestWrite('export-snap', 0, [{ offset: 0, length: 1 * MiB, pattern: 'random', seed: 1 }]);
    const snap = await createSnapshot(soap, vm.moref);
    const frozen = fileBytes((await lab.getVm('export-snap')).disks[0]!.flatPath, 0, 1 * MiB);
    await lab.guestWrite('export-snap', 0, [{ offset: 0, length: 1 * MiB, pattern: 'random', seed: 2 }]);
    const xml = await soap.call(`<ExportSnapshot><_this type="VirtualMachineSnapshot">${snap}</_this></ExportSnapshot>`);
    const [url] = await leaseUrls(tag(xml, 'returnval')!);
    const res = await rangeGet(url!, 0, 1 * MiB);
    expect(res.status).toBe(206);
    expect(res.body.equals(frozen)).toBe(true);
    const now = fileBytes((await lab.getVm('export-snap')).disks[0]!.flatPath, 0, 1 * MiB);
    expect(res.body.equals(now)).toBe(false);
    await removeSnapshot(soap, snap);
  });
});
