import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest, SoapFault, tag, tags, type SoapClient } from '../src/soap.ts';
import { createSnapshot, MiB, removeSnapshot } from './helpers.ts';

let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab({ objectDatastores: [{ name: 'vsanDatastore', type: 'vsan' }, { name: 'vvolDatastore', type: 'vvol' }] });
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

/** The device URLs' keys of a lease, in order. */
async function leaseKeys(lease: string): Promise<string[]> {
  return tags(await soap.retrieve('HttpNfcLease', lease, ['info']), 'key');
}

/**
 * What an export lease URL serves, read back by an independent reader: the whole answer is saved and
 * `qemu-img convert` turns the streamOptimized VMDK into raw bytes (it follows the footer's grain directory).
 */
async function exportedDisk(url: string): Promise<{ raw: Buffer; stream: Buffer; status: number; contentType: string | undefined }> {
  const res = await httpRequest(url, { ca: lab.certPem, headers: { Range: 'bytes=0-511' } });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-export-'));
  try {
    fs.writeFileSync(path.join(dir, 'disk.vmdk'), res.body);
    execFileSync('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', path.join(dir, 'disk.vmdk'), path.join(dir, 'disk.raw')]);
    return { raw: fs.readFileSync(path.join(dir, 'disk.raw')), stream: res.body, status: res.status, contentType: res.headers['content-type'] as string | undefined };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
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

  it('ExportVm on a powered-off VM returns a ready lease whose disk URLs serve each disk whole as streamOptimized VMDK, Range ignored, keyed by controller and unit', async () => {
    const vm = await lab.createVm({ name: 'export-off', disks: [{ capacityBytes: 32 * MiB }, { capacityBytes: 16 * MiB, controller: 'lsilogic' }] });
    await lab.guestWrite('export-off', 1, [{ offset: 5 * MiB, length: 70000, pattern: 'text', seed: 3 }]);
    await lab.guestWrite('export-off', 0, [{ offset: 0, length: 3 * MiB, pattern: 'random', seed: 4 }, { offset: 20 * MiB, length: 1 * MiB, pattern: 'zeros' }]);
    const xml = await soap.call(`<ExportVm><_this type="VirtualMachine">${vm.moref}</_this></ExportVm>`);
    const lease = tag(xml, 'returnval')!;
    const urls = await leaseUrls(lease);
    expect(urls).toHaveLength(2);
    expect(urls[1]).toMatch(/\/lab-nfc\/.+\/disk-1\.vmdk$/);
    // As vSphere names them: /<vm>/<controller type><bus>:<unit>.
    expect(await leaseKeys(lease)).toEqual([`/${vm.moref}/ParaVirtualSCSIController0:0`, `/${vm.moref}/VirtualLsiLogicController1:0`]);
    for (const [i, size] of [32 * MiB, 16 * MiB].entries()) {
      const got = await exportedDisk(urls[i]!);
      expect(got.status).toBe(200);
      expect(got.contentType).toBe('application/x-vnd.vmware-streamVmdk');
      expect(got.stream.subarray(0, 4).toString('latin1')).toBe('KDMV');
      expect(got.raw.length).toBe(size);
      expect(got.raw.equals(fileBytes(vm.disks[i]!.flatPath, 0, size))).toBe(true);
    }
    // Zero grains are left out: the 16 MiB disk holding 70000 bytes of text streams far less than 1 MiB.
    expect((await exportedDisk(urls[1]!)).stream.length).toBeLessThan(MiB);
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
    const { raw } = await exportedDisk(url!);
    expect(raw.subarray(0, MiB).equals(frozen)).toBe(true);
    const now = fileBytes((await lab.getVm('export-snap')).disks[0]!.flatPath, 0, 1 * MiB);
    expect(raw.subarray(0, MiB).equals(now)).toBe(false);
    await removeSnapshot(soap, snap);
  });
});

describe('object datastores (vSAN-like, vVols-like)', () => {
  for (const [datastore, kind, extent] of [
    ['vsanDatastore', 'vsan', /^RW 32768 VSANSPARSE "vsan:\/\/[0-9a-f]{32}"$/m],
    ['vvolDatastore', 'VVOL', /^RW 32768 VMFS "vvol:\/\/[0-9a-f]{16}\/rfc4122\.[0-9a-f-]{36}"$/m],
  ] as const) {
    it(`${datastore}: reported as ${kind}; the descriptor names the object; /folder has no flat extent to GET or PUT; export leases still serve the disk`, async () => {
      const name = `obj-${kind.toLowerCase()}`;
      const vm = await lab.createVm({ name, disks: [{ capacityBytes: 16 * MiB, datastore }] });
      await lab.guestWrite(name, 0, [{ offset: 2 * MiB, length: 2 * MiB, pattern: 'random', seed: 9 }]);
      const inventory = JSON.parse((await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem })).body.toString()) as { datastores: Record<string, string> };
      expect(tag(await soap.retrieve('Datastore', inventory.datastores[datastore]!, ['summary.type']), 'val')).toBe(kind);
      const folder = (file: string) => {
        const u = new URL(`${new URL(lab.url).origin}/folder/${name}/${file}`);
        u.searchParams.set('dcPath', lab.datacenter);
        u.searchParams.set('dsName', datastore);
        return u.toString();
      };
      const descriptor = await httpRequest(folder(`${name}.vmdk`), { ca: lab.certPem });
      expect(descriptor.status).toBe(200);
      expect(descriptor.body.toString()).toMatch(extent);
      expect((await httpRequest(folder(`${name}-flat.vmdk`), { ca: lab.certPem })).status).toBe(404);
      expect((await httpRequest(folder(`${name}-flat.vmdk`), { ca: lab.certPem, method: 'HEAD' })).status).toBe(404);
      const put = await httpRequest(folder(`${name}-flat.vmdk`), { ca: lab.certPem, method: 'PUT', body: Buffer.alloc(512, 1) });
      expect(put.status).toBe(403);
      expect(fileBytes(vm.disks[0]!.flatPath, 0, 512).equals(Buffer.alloc(512))).toBe(true);

      const xml = await soap.call(`<ExportVm><_this type="VirtualMachine">${vm.moref}</_this></ExportVm>`);
      const lease = tag(xml, 'returnval')!;
      const [url] = await leaseUrls(lease);
      const { raw } = await exportedDisk(url!);
      expect(raw.equals(fileBytes(vm.disks[0]!.flatPath, 0, 16 * MiB))).toBe(true);
      await soap.call(`<HttpNfcLeaseComplete><_this type="HttpNfcLease">${lease}</_this></HttpNfcLeaseComplete>`);
    });
  }
});
