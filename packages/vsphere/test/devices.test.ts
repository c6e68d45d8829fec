import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  attachDiskChange,
  ClientSafetyError,
  configSpecXml,
  controllerChange,
  createVmConfig,
  detachDiskChange,
  deviceChangeXml,
  HotAddApi,
  newDiskChange,
  nicChange,
  parseDevices,
  SoapClient,
  type DeviceChange,
} from '../src/index.ts';
import { parseXml } from '../src/soap/xml.ts';
import { envelope, fixture } from './fixture-server.ts';

const SRC = path.join(import.meta.dirname, '..', 'src');
const sources = (dir: string): string[] =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));

function appDevices() {
  const doc = parseXml(envelope(fixture('vm-properties-page1.xml')));
  const objects = doc.children[0]!.children[0]!.children[0]!.children.find((c) => c.name === 'objects')!;
  const val = objects.children.find((p) => p.name === 'propSet' && p.children[0]!.text === 'config.hardware.device')!.children[1]!;
  return parseDevices(val);
}

describe('detach can never destroy disk files', () => {
  it('every Remove device change the client can build serialises without any fileOperation', () => {
    const disks = appDevices().disks;
    expect(disks.length).toBeGreaterThan(0);
    for (const d of disks) {
      const xml = deviceChangeXml(detachDiskChange(d));
      expect(xml).toContain('<operation>remove</operation>');
      expect(xml).not.toContain('fileOperation');
      expect(xml).not.toContain('destroy');
    }
    // the same through a whole ReconfigVM spec, as sent by hotadd.detach()
    const spec = configSpecXml('spec', { deviceChange: disks.map(detachDiskChange) });
    expect(spec).not.toMatch(/fileOperation|destroy/);
  });

  it('a destroy smuggled into a Remove (or Edit/Add) at runtime is dropped by the serializer', () => {
    const base = detachDiskChange(appDevices().disks[0]!);
    for (const operation of ['remove', 'edit', 'add'] as const) {
      const smuggled = { ...base, operation, fileOperation: 'destroy' } as unknown as DeviceChange;
      const xml = deviceChangeXml(smuggled);
      expect(xml).not.toContain('destroy');
    }
    // an unknown operation string is treated as remove, still without file operation
    const weird = { operation: 'destroy', fileOperation: 'destroy', device: base.device } as unknown as DeviceChange;
    expect(deviceChangeXml(weird)).toBe(deviceChangeXml(base));
  });

  it('the only file operation any builder emits is create, and only for new disks', () => {
    const all: DeviceChange[] = [
      attachDiskChange({ key: -1, fileName: '[ds] a/a.vmdk', diskMode: 'independent_nonpersistent', controllerKey: 1000, unitNumber: 2 }),
      newDiskChange({ key: -2, fileName: '[ds]', controllerKey: 1000, unitNumber: 3, capacityBytes: 1 << 30 }),
      controllerChange({ key: -3, kind: 'pvscsi', busNumber: 1 }),
      nicChange({ key: -4, type: 'vmxnet3', networkName: 'VM Network' }),
      ...appDevices().disks.map(detachDiskChange),
    ];
    const ops = all.map(deviceChangeXml).flatMap((x) => [...x.matchAll(/<fileOperation>(\w+)<\/fileOperation>/g)].map((m) => m[1]));
    expect(ops).toEqual(['create']);
    expect(deviceChangeXml(all[0]!)).not.toContain('fileOperation'); // attaching an existing disk creates nothing
  });

  it('no source file of the client contains a destroy file operation', () => {
    for (const f of sources(SRC)) {
      // code only: comments may explain the rule
      const text = fs.readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      expect(text, f).not.toMatch(/destroy['"`]/);
      expect(text, f).not.toMatch(/fileOperation['"]?\s*[:=]\s*['"]destroy/);
      expect(text, f).not.toMatch(/val\(\s*['"]fileOperation['"]\s*,\s*['"]destroy/);
    }
  });

  it('the SOAP transport refuses any request that carries fileOperation=destroy, before sending it', async () => {
    const soap = new SoapClient({ url: 'https://127.0.0.1:1/sdk', timeoutMs: 1000 });
    const body = '<_this type="VirtualMachine">vm-1</_this><spec><deviceChange><operation>remove</operation><fileOperation>destroy</fileOperation></deviceChange></spec>';
    const err = await soap.call('ReconfigVM_Task', body as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientSafetyError);
    expect((err as Error).message).toMatch(/refusing to send ReconfigVM_Task with fileOperation=destroy/);
    await soap.close();
  });
});

describe('HotAdd slot selection', () => {
  it('prefers pvscsi, skips used units and unit 7, never IDE/SATA/NVMe', () => {
    const devs = appDevices();
    const s = HotAddApi.chooseSlot(devs);
    expect(s.controller.kind).toBe('pvscsi');
    expect(s.unitNumber).toBe(2); // 0 and 1 are used
    expect(() => HotAddApi.chooseSlot(devs, { controllerKey: 31000 })).toThrow(/nvme; HotAdd needs a SCSI controller/);
    expect(() => HotAddApi.chooseSlot(devs, { controllerKey: 200 })).toThrow(/ide; HotAdd needs a SCSI controller/);
  });

  it('fills a controller up to 15 disks (unit 7 reserved), then moves to the next SCSI controller, then refuses', () => {
    const devs = appDevices();
    const pv = devs.controllers.find((c) => c.kind === 'pvscsi')!;
    const used = new Set<number>();
    for (let u = 0; u < 16; u++) if (u !== 7 && u !== 15) used.add(u);
    devs.all.push(...[...used].map((u) => ({ key: 5000 + u, type: 'VirtualDisk', controllerKey: pv.key, unitNumber: u })));
    expect(HotAddApi.chooseSlot(devs)).toMatchObject({ controller: { key: pv.key }, unitNumber: 15 });
    devs.all.push({ key: 6000, type: 'VirtualDisk', controllerKey: pv.key, unitNumber: 15 });
    expect(HotAddApi.chooseSlot(devs)).toMatchObject({ controller: { kind: 'lsisas' }, unitNumber: 1 });
    const sas = devs.controllers.find((c) => c.kind === 'lsisas')!;
    for (let u = 1; u < 16; u++) if (u !== 7) devs.all.push({ key: 7000 + u, type: 'VirtualDisk', controllerKey: sas.key, unitNumber: u });
    expect(() => HotAddApi.chooseSlot(devs)).toThrow(/no free unit on any SCSI controller/);
  });

  it('a VM with only IDE/SATA controllers cannot be used for HotAdd', () => {
    const devs = appDevices();
    devs.controllers = devs.controllers.filter((c) => c.kind === 'ide' || c.kind === 'nvme');
    expect(() => HotAddApi.chooseSlot(devs)).toThrow(/no SCSI controller; HotAdd cannot use IDE, SATA or NVMe/);
  });
});

describe('CreateVM spec', () => {
  it('builds controllers, new disks (fileOperation=create, thin/thick), NICs and the restore marker in WSDL order', () => {
    const cfg = createVmConfig({
      name: 'restored <app01>',
      restoreId: 'rs-1',
      folder: 'group-v3',
      resourcePool: 'resgroup-8',
      datastore: 'ds1',
      guestId: 'rhel9_64Guest',
      cpus: 2,
      memoryMiB: 2048,
      controllers: [{ kind: 'pvscsi' }, { kind: 'lsilogic' }],
      disks: [
        { controller: 0, capacityBytes: 8 << 20 },
        { controller: 0, capacityBytes: 4 << 20, thin: false, eagerlyScrub: true },
        { controller: 1, capacityBytes: 1 << 20, datastore: 'ds2' },
      ],
      nics: [{ type: 'vmxnet3', networkName: 'VM Network', network: 'network-7' }],
    });
    const xml = configSpecXml('config', cfg);
    expect(xml).toContain('<name>restored &lt;app01&gt;</name>');
    expect(xml.indexOf('<guestId>')).toBeLessThan(xml.indexOf('<files>'));
    expect(xml.indexOf('<memoryMB>')).toBeLessThan(xml.indexOf('<deviceChange'));
    expect(xml.indexOf('<deviceChange')).toBeLessThan(xml.indexOf('<extraConfig'));
    expect([...xml.matchAll(/<fileOperation>create<\/fileOperation>/g)]).toHaveLength(3);
    expect(xml).toContain('<fileName>[ds2]</fileName>');
    expect(xml).toContain('<thinProvisioned>false</thinProvisioned><eagerlyScrub>true</eagerlyScrub>');
    expect(xml).toContain('<key>vaultline.restore</key><value xsi:type="xsd:string">rs-1</value>');
    expect(xml).toMatch(/<controllerKey>-101<\/controllerKey><unitNumber>0<\/unitNumber>/);
    expect(() => parseXml(`<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="x">${xml}</r>`)).not.toThrow();
  });
});

describe('restore spec from a hardware description', () => {
  it('maps controllers by kind and bus, keeps units, sizes, provisioning and modes, and NICs through the network map', async () => {
    const { createSpecFromHardware } = await import('../src/index.ts');
    const devs = appDevices();
    const spec = createSpecFromHardware(
      { name: 'app01', guestId: 'rhel9_64Guest', numCpu: 4, memoryMiB: 8192, firmware: 'efi', ...devs },
      { name: 'app01-restored', restoreId: 'rs-1', folder: 'group-v3', resourcePool: 'resgroup-8', datastore: 'ds9', networkMap: { 'VM Network': { name: 'Restore LAN', moref: 'network-99' } }, skipDiskKeys: [2016] },
    );
    expect(spec.controllers).toEqual([
      { kind: 'pvscsi', busNumber: 0 },
      { kind: 'lsisas', busNumber: 1 },
      { kind: 'nvme', busNumber: 0 },
    ]);
    expect(spec.disks).toEqual([
      expect.objectContaining({ controller: 0, unitNumber: 0, capacityBytes: 17179869184, thin: true, diskMode: 'persistent' }),
      expect.objectContaining({ controller: 0, unitNumber: 1, capacityBytes: 1073741824, thin: false, eagerlyScrub: true, diskMode: 'independent_persistent' }),
      expect.objectContaining({ controller: 2, unitNumber: 0, capacityBytes: 2147483648 }),
    ]);
    expect(spec.nics).toEqual([{ type: 'vmxnet3', networkName: 'Restore LAN', network: 'network-99' }]);
    expect(spec).toMatchObject({ cpus: 4, memoryMiB: 8192, firmware: 'efi', guestId: 'rhel9_64Guest' });
    const xml = configSpecXml('config', createVmConfig(spec));
    expect([...xml.matchAll(/<fileOperation>create<\/fileOperation>/g)]).toHaveLength(3);
    expect(xml).toContain('<device xsi:type="VirtualNVMEController"><key>-102</key><busNumber>0</busNumber></device>');
  });
});

describe('changed areas', () => {
  it('normalizeAreas sorts, clips to the capacity and merges overlapping and adjacent areas', async () => {
    const { normalizeAreas } = await import('../src/index.ts');
    expect(
      normalizeAreas(
        [
          { start: 100, length: 50 },
          { start: 0, length: 10 },
          { start: 10, length: 5 },
          { start: 120, length: 100 },
          { start: 990, length: 100 },
          { start: 2000, length: 1 },
        ],
        1000,
      ),
    ).toEqual([
      { start: 0, length: 15 },
      { start: 100, length: 120 },
      { start: 990, length: 10 },
    ]);
  });
});
