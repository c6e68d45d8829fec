/**
 * The libvirt domain XML of a restore to KVM, checked against libvirt's own schema with
 * `virt-xml-validate` (Debian: libvirt-clients) for BIOS/UEFI, Linux/Windows, 1–3 disks and mapped
 * NICs, and read back with xmllint-free parsing of what matters (names, escaping, devices).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KvmRestoreError, planKvmRestore, type NetworkMap } from '../src/hardware.ts';
import { libvirtDomainXml, sdName, type ImageFormat } from '../src/libvirt.ts';
import { manifestOf, recordedVm, type FixtureOptions } from './restore-kvm-fixtures.ts';

// virt-xml-validate (libvirt-clients) runs xmllint (libxml2-utils) underneath.
const hasValidator = spawnSync('virt-xml-validate', ['--help']).error === undefined && spawnSync('xmllint', ['--version']).error === undefined;
// Off CI a machine without them skips the schema checks; on CI (`npm test` installs both) they always run, and fail if missing.
const skipSchema = !hasValidator && process.env.CI !== 'true';
const dir = mkdtempSync(path.join(os.tmpdir(), 'vl-libvirt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function domainFor(o: FixtureOptions, format: ImageFormat = 'qcow2', networks: NetworkMap = { map: { 'VM Network': { network: 'default' }, DMZ: { bridge: 'br-dmz' } } }) {
  const plan = planKvmRestore(manifestOf(recordedVm(o)));
  const xml = libvirtDomainXml(plan, { disks: plan.disks.map((d) => ({ path: `/var/lib/libvirt/images/app01-${d.index}.${format}`, format })), networks });
  return { plan, xml };
}

/** Runs virt-xml-validate; the result carries its output so a failure shows why. */
function validate(xml: string, name: string): { ok: boolean; out: string } {
  const file = path.join(dir, `${name}.xml`);
  writeFileSync(file, xml);
  const r = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const cases: Array<[string, FixtureOptions, ImageFormat]> = [
  ['linux-bios-1disk', { guestId: 'ubuntu64Guest', firmware: 'bios' }, 'qcow2'],
  ['linux-efi-3disks', { guestId: 'rhel9_64Guest', firmware: 'efi', disks: [['pvscsi', 0, 0, 1 * 2 ** 30], ['pvscsi', 0, 1, 2 * 2 ** 30], ['pvscsi', 1, 0, 3 * 2 ** 30]], nics: [{ networkName: 'VM Network' }, { networkName: 'DMZ', macAddress: '00:50:56:AA:BB:02' }] }, 'raw'],
  ['windows-efi-2disks', { guestId: 'windows2019srv_64Guest', guestFullName: 'Microsoft Windows Server 2019 (64-bit)', firmware: 'efi', disks: [['lsisas', 0, 0, 40 * 2 ** 30], ['lsisas', 0, 1, 10 * 2 ** 30]] }, 'qcow2'],
  ['windows-bios-1disk', { guestId: 'windows9_64Guest', firmware: 'bios', disks: [['sata', 0, 0, 32 * 2 ** 30]], nics: [] }, 'raw'],
  ['unknown-bios-2disks', { guestId: 'freebsd13_64Guest', guestFullName: 'FreeBSD 13', disks: [['lsilogic', 0, 0, 1 * 2 ** 30], ['lsilogic', 0, 1, 1 * 2 ** 30]] }, 'qcow2'],
];

describe.skipIf(skipSchema)('virt-xml-validate accepts the domain', () => {
  it('rejects a broken domain (the validator really validates)', () => {
    const { xml } = domainFor({});
    expect(validate(xml.replace('<vcpu placement="static">4</vcpu>', '<vcpu placement="static">four</vcpu>'), 'broken').ok).toBe(false);
  });

  for (const [name, o, format] of cases) {
    it(name, () => {
      const { xml, plan } = domainFor(o, format);
      const v = validate(xml, name);
      expect(v.out).toMatch(/validates/);
      expect(v.ok).toBe(true);
      // What the plan decided is what the domain says.
      expect(xml.match(/<disk type="file" device="disk">/g)?.length).toBe(plan.disks.length);
      expect(xml.match(new RegExp(`driver name="qemu" type="${format}"`, 'g'))?.length).toBe(plan.disks.length);
      expect(xml.match(new RegExp(`bus="${plan.bus === 'virtio-scsi' ? 'scsi' : 'sata'}"/>`, 'g'))?.length).toBe(plan.disks.length);
      expect(xml.match(/<boot order="1"\/>/g)?.length).toBe(1);
      expect(xml.includes('<os firmware="efi">')).toBe(o.firmware === 'efi');
    });
  }
});

describe('domain contents', () => {
  it('Linux: virtio-scsi controller, virtio NICs, sockets × cores, memory, recorded UUID and MAC', () => {
    const { xml } = domainFor({ numCpu: 8, numCoresPerSocket: 4, memoryMiB: 6144 });
    expect(xml).toContain('<controller type="scsi" index="0" model="virtio-scsi"/>');
    expect(xml).toContain('<topology sockets="2" dies="1" cores="4" threads="1"/>');
    expect(xml).toContain('<vcpu placement="static">8</vcpu>');
    expect(xml).toContain('<memory unit="MiB">6144</memory>');
    expect(xml).toContain('<uuid>4212a1b2-c3d4-e5f6-0718-293a4b5c6d7e</uuid>');
    expect(xml).toContain('<mac address="00:50:56:aa:bb:01"/>');
    expect(xml).toContain('<source network="default"/>');
    expect(xml).toContain('<model type="virtio"/>');
    expect(xml).toContain('<clock offset="utc"/>');
    expect(xml).toMatch(/<serial type="pty">[\s\S]*<console type="pty">[\s\S]*<graphics type="vnc" port="-1" autoport="yes" listen="127.0.0.1"\/>/);
  });

  it('Windows: SATA disks, e1000e NIC, local-time clock, Hyper-V enlightenments', () => {
    const { xml, plan } = domainFor({ guestId: 'windows2019srv_64Guest', nics: [{ networkName: 'DMZ' }] });
    expect(plan.bus).toBe('sata');
    expect(xml).toContain('<controller type="sata" index="0"/>');
    expect(xml).not.toContain('virtio');
    expect(xml).toContain('<model type="e1000e"/>');
    expect(xml).toContain('<interface type="bridge">');
    expect(xml).toContain('<source bridge="br-dmz"/>');
    expect(xml).toContain('<clock offset="localtime"/>');
    expect(xml).toContain('<hyperv mode="custom">');
  });

  it('keeps the boot disk first whatever the recorded order, on consecutive units', () => {
    const { xml, plan } = domainFor({ disks: [['pvscsi', 1, 0, 3 * 2 ** 30], ['pvscsi', 0, 1, 2 * 2 ** 30], ['pvscsi', 0, 0, 1 * 2 ** 30]] });
    expect(plan.disks.map((d) => d.capacityBytes)).toEqual([1 * 2 ** 30, 2 * 2 ** 30, 3 * 2 ** 30]);
    expect(plan.disks.map((d) => d.diskKey)).toEqual(['2002', '2001', '2000']);
    const targets = [...xml.matchAll(/<target dev="(sd\w+)" bus="scsi"\/>/g)].map((m) => m[1]);
    expect(targets).toEqual(['sda', 'sdb', 'sdc']);
    const first = xml.indexOf('app01-0.qcow2');
    expect(first).toBeGreaterThan(0);
    expect(xml.indexOf('<boot order="1"/>')).toBeGreaterThan(first);
    expect(xml.indexOf('<boot order="1"/>')).toBeLessThan(xml.indexOf('app01-1.qcow2'));
  });

  it('names the unmapped networks in one error, or uses the declared default', () => {
    const o = { nics: [{ networkName: 'VM Network' }, { networkName: 'Backup LAN' }, { networkName: 'Storage' }] };
    expect(() => domainFor(o, 'raw', { map: { 'VM Network': { network: 'default' } } })).toThrow(KvmRestoreError);
    expect(() => domainFor(o, 'raw', { map: { 'VM Network': { network: 'default' } } })).toThrow(/"Backup LAN", "Storage"/);
    const { xml } = domainFor(o, 'raw', { map: { 'VM Network': { network: 'default' } }, default: { bridge: 'br0' } });
    expect(xml.match(/<source bridge="br0"\/>/g)?.length).toBe(2);
    expect(xml.match(/<source network="default"\/>/g)?.length).toBe(1);
  });

  it.skipIf(skipSchema)('escapes odd VM names and paths (<, &, quotes) and the result still validates', () => {
    const name = `a<b & "c" 'd'/e>`;
    const plan = planKvmRestore(manifestOf(recordedVm({ name })));
    const xml = libvirtDomainXml(plan, { disks: [{ path: `/srv/vm's & <x>/disk "0".raw`, format: 'raw' }], networks: { map: {}, default: { network: `n"&'<` } } });
    expect(xml).toContain(`<name>a&lt;b &amp; "c" 'd'-e&gt;</name>`);
    expect(xml).toContain(`<source file="/srv/vm&apos;s &amp; &lt;x&gt;/disk &quot;0&quot;.raw"/>`);
    expect(xml).toContain(`<source network="n&quot;&amp;&apos;&lt;"/>`);
    expect(xml).not.toMatch(/<[^>]*<b/);
    const v = validate(xml, 'odd');
    expect(v.out).toMatch(/validates/);
    // xmllint (libxml2, a dependency of libvirt-clients) reads the name back unescaped.
    const back = execFileSync('xmllint', ['--xpath', 'string(/domain/name)', path.join(dir, 'odd.xml')], { encoding: 'utf8' });
    expect(back.trimEnd()).toBe(`a<b & "c" 'd'-e>`);
  });

  it('sd names go on after sdz', () => {
    expect([0, 1, 25, 26, 27, 51, 52].map(sdName)).toEqual(['sda', 'sdb', 'sdz', 'sdaa', 'sdab', 'sdaz', 'sdba']);
  });
});
