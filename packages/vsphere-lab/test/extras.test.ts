import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, startLab, type Lab } from '../src/index.ts';
import { tag, tags, type SoapClient } from '../src/soap.ts';
import { MiB } from './helpers.ts';

const isRoot = process.getuid?.() === 0;

let lab: Lab;
let soap: SoapClient;

beforeAll(async () => {
  lab = await startLab({ extraDatastores: isRoot ? [{ name: 'tiny', sizeBytes: 8 * MiB }] : [] });
  soap = await lab.soap();
});
afterAll(async () => {
  await lab?.stop();
});

describe('lab options for restore tests (small datastores, NICs, plain HTTP)', () => {
  it.runIf(isRoot)('an extra datastore is a tmpfs of the asked size, reported with that capacity and free space, and unmounted by stop()', async () => {
    const tiny = lab.datastores.find((d) => d.name === 'tiny')!;
    expect(mountsUnder(tiny.path)).toEqual([tiny.path]);
    const inv = JSON.parse((await (await import('../src/soap.ts')).httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem })).body.toString()) as { datastores: Record<string, string> };
    const xml = await soap.retrieve('Datastore', inv.datastores.tiny!, ['summary.capacity', 'summary.freeSpace']);
    const values = tags(xml, 'val').map(Number);
    expect(values).toHaveLength(2);
    for (const v of values) {
      expect(v).toBeGreaterThan(7 * MiB);
      expect(v).toBeLessThanOrEqual(8 * MiB);
    }
  });

  it('each lab is a vCenter of its own: ServiceContent.about.instanceUuid is a random UUID, not govmomi\'s constant one', async () => {
    const other = await startLab({ port: 0 });
    try {
      const uuidOf = async (l: Lab) => tag(await (await l.soap()).call('<RetrieveServiceContent><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>'), 'instanceUuid');
      const [a, b] = [await uuidOf(lab), await uuidOf(other)];
      for (const u of [a, b]) expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(a).not.toBe(b);
      expect(a).not.toBe('dbed6e0c-bd88-4ef6-b594-21283e1c677f');
    } finally {
      await other.stop();
    }
  });

  it('a VM can be created with NICs on named networks; an unknown network is refused before vcsim sees it', async () => {
    const vm = await lab.createVm({ name: 'nics-01', disks: [{ capacityBytes: 1 * MiB }], nics: ['VM Network', 'DC0_DVPG0'] });
    const xml = await soap.retrieve('VirtualMachine', vm.moref, ['config.hardware.device']);
    const names = [...xml.matchAll(/<deviceName>([^<]+)<\/deviceName>/g)].map((m) => m[1]);
    expect(names).toEqual(['VM Network', 'DC0_DVPG0']);
    expect(tag(xml, 'macAddress')).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    await expect(lab.createVm({ name: 'nics-02', disks: [{ capacityBytes: 1 * MiB }], nics: ['No Such Net'] })).rejects.toThrow(/the lab has no network No Such Net \(it has .*VM Network/);
  });

  it('http: true serves the same lab over plain HTTP (SOAP, guest writes, ground truth)', async () => {
    const plain = await startLab({ http: true });
    try {
      expect(plain.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/sdk$/);
      const vm = await plain.createVm({ name: 'plain-01', disks: [{ capacityBytes: 1 * MiB }] });
      await plain.guestWrite('plain-01', 0, [{ offset: 4096, length: 8192, pattern: 'random', seed: 3 }]);
      const flat = fs.readFileSync(vm.disks[0]!.flatPath);
      expect(flat.subarray(4096, 12288).equals(Buffer.alloc(8192))).toBe(false);
      expect(await plain.diskSha256('plain-01', 0)).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await plain.stop();
    }
  });

  it.runIf(isRoot)('stop() leaves no mount behind', async () => {
    const other = await startLab({ extraDatastores: [{ name: 'small', sizeBytes: 4 * MiB }] });
    const dir = other.dir;
    expect(mountsUnder(dir)).toHaveLength(1);
    await other.stop();
    expect(mountsUnder(dir)).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
