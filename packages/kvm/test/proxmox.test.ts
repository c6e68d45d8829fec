/**
 * The Proxmox qm configuration and import commands of a restore to KVM, checked line by line against
 * the qm.conf(5)/qm(1) syntax of pve-docs, and the generated script checked by `sh -n`.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { KvmRestoreError, planKvmRestore } from '../src/hardware.ts';
import { diskSize, proxmoxConfig, proxmoxName, proxmoxOsType, type ProxmoxOptions } from '../src/proxmox.ts';
import { manifestOf, recordedVm, type FixtureOptions } from './restore-kvm-fixtures.ts';

const GiB = 2 ** 30;

function configFor(o: FixtureOptions, extra: Partial<ProxmoxOptions> = {}) {
  const plan = planKvmRestore(manifestOf(recordedVm(o)));
  const format = extra.storageType === 'file' ? 'qcow2' : 'raw';
  return proxmoxConfig(plan, {
    vmid: 120,
    storage: 'local-lvm',
    images: plan.disks.map((d) => ({ path: `/var/tmp/restore/disk-${d.index}.${format}`, format })),
    bridges: { map: { 'VM Network': 'vmbr0', DMZ: 'vmbr1' } },
    ...extra,
  });
}

/** The conf as key → value (comment lines left out), failing on a repeated key. */
function parse(conf: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of conf.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-z0-9]+): (.+)$/.exec(line);
    if (!m) throw new Error(`not a qm.conf line: ${JSON.stringify(line)}`);
    if (out.has(m[1]!)) throw new Error(`repeated key ${m[1]}`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}

describe('qm configuration', () => {
  it('Linux on BIOS: seabios, virtio-scsi-pci, scsiN volumes, virtio NIC with the recorded MAC, l26, serial0, topology', () => {
    const c = configFor({ numCpu: 8, numCoresPerSocket: 4, memoryMiB: 6144, disks: [['pvscsi', 0, 0, 20 * GiB], ['pvscsi', 0, 1, 512 * 2 ** 20]] });
    const kv = parse(c.conf);
    expect(Object.fromEntries(kv)).toEqual({
      bios: 'seabios',
      boot: 'order=scsi0',
      cores: '4',
      machine: 'q35',
      memory: '6144',
      name: 'app01',
      net0: 'virtio=00:50:56:AA:BB:01,bridge=vmbr0',
      ostype: 'l26',
      scsi0: 'local-lvm:vm-120-disk-0,size=20G',
      scsi1: 'local-lvm:vm-120-disk-1,size=512M',
      scsihw: 'virtio-scsi-pci',
      serial0: 'socket',
      smbios1: 'uuid=4212a1b2-c3d4-e5f6-0718-293a4b5c6d7e',
      sockets: '2',
    });
    // Proxmox writes keys sorted; so do we.
    const keys = [...kv.keys()];
    expect(keys).toEqual([...keys].sort());
    expect(c.conf.startsWith('#Restored by Vaultline from the VMware VM app01 (Ubuntu Linux (64-bit)).\n')).toBe(true);
    expect(c.importCommands).toEqual([
      'qm disk import 120 /var/tmp/restore/disk-0.raw local-lvm --target-disk scsi0',
      'qm disk import 120 /var/tmp/restore/disk-1.raw local-lvm --target-disk scsi1',
    ]);
    // The base conf is the same VM without its disks (the import adds them).
    const base = parse(c.baseConf);
    expect([...base.keys()].filter((k) => !kv.has(k))).toEqual([]);
    expect([...kv.keys()].filter((k) => !base.has(k))).toEqual(['scsi0', 'scsi1']);
  });

  it('Windows on UEFI: ovmf with an efidisk0 (4m, no pre-enrolled keys), sataN, e1000e, win10; no scsihw', () => {
    const c = configFor({ guestId: 'windows2019srv_64Guest', firmware: 'efi', disks: [['lsisas', 0, 0, 40 * GiB]], nics: [{ networkName: 'DMZ' }] });
    const kv = parse(c.conf);
    expect(kv.get('bios')).toBe('ovmf');
    expect(kv.get('efidisk0')).toBe('local-lvm:vm-120-disk-1,efitype=4m,pre-enrolled-keys=0,size=4M');
    expect(kv.get('sata0')).toBe('local-lvm:vm-120-disk-0,size=40G');
    expect(kv.get('boot')).toBe('order=sata0');
    expect(kv.get('net0')).toBe('e1000e,bridge=vmbr1');
    expect(kv.get('ostype')).toBe('win10');
    expect(kv.has('scsihw')).toBe(false);
    expect(c.importCommands).toEqual(['qm disk import 120 /var/tmp/restore/disk-0.raw local-lvm --target-disk sata0', 'qm set 120 --efidisk0 local-lvm:1,efitype=4m,pre-enrolled-keys=0']);
    expect(parse(c.baseConf).has('efidisk0')).toBe(false);
  });

  it('file storage: <vmid>/vm-<vmid>-disk-N.<format> volumes and --format on import', () => {
    const c = configFor({ firmware: 'efi' }, { storage: 'local', storageType: 'file' });
    const kv = parse(c.conf);
    expect(kv.get('scsi0')).toBe('local:120/vm-120-disk-0.qcow2,size=1G');
    expect(kv.get('efidisk0')).toBe('local:120/vm-120-disk-1.raw,efitype=4m,pre-enrolled-keys=0,size=4M');
    expect(c.importCommands).toEqual(['qm disk import 120 /var/tmp/restore/disk-0.qcow2 local --format qcow2 --target-disk scsi0', 'qm set 120 --efidisk0 local:1,format=raw,efitype=4m,pre-enrolled-keys=0']);
  });

  it('ostype from the guestId', () => {
    const os = (guestId: string) => proxmoxOsType(planKvmRestore(manifestOf(recordedVm({ guestId, guestFullName: '' }))));
    expect(os('debian12_64Guest')).toBe('l26');
    expect(os('otherLinux64Guest')).toBe('l26');
    expect(os('centos7_64Guest')).toBe('l26');
    expect(os('windows9_64Guest')).toBe('win10');
    expect(os('windows11_64Guest')).toBe('win11');
    expect(os('windows2022srvNext_64Guest')).toBe('win11');
    expect(os('windows8Server64Guest')).toBe('win8');
    expect(os('windows7Server64Guest')).toBe('win7');
    expect(os('winNetStandardGuest')).toBe('w2k3');
    expect(os('freebsd13_64Guest')).toBe('other');
  });

  it('names: a DNS name for Proxmox, the original in the description (with % escaped)', () => {
    expect(proxmoxName('SQL Server (prod) #2')).toBe('SQL-Server-prod-2');
    expect(proxmoxName('Überserver_01')).toBe('Uberserver-01');
    expect(proxmoxName('***')).toBe('restored-vm');
    const c = configFor({ name: 'db 100% <prod>\nx' });
    expect(parse(c.conf).get('name')).toBe('db-100-prod-x');
    expect(c.conf.split('\n')[0]).toBe('#Restored by Vaultline from the VMware VM db 100%25 <prod> x (Ubuntu Linux (64-bit)).');
  });

  it('sizes in the largest exact unit', () => {
    expect([GiB * 1024, GiB * 40, 2 ** 20 * 1536, 4096, 1000].map(diskSize)).toEqual(['1T', '40G', '1536M', '4K', '1K']);
  });

  it('refuses an unmapped network (naming it), a bad VMID or storage, and too many SATA disks', () => {
    expect(() => configFor({ nics: [{ networkName: 'Backup LAN' }] })).toThrow(/"Backup LAN"/);
    expect(parse(configFor({ nics: [{ networkName: 'Backup LAN' }] }, { bridges: { map: {}, default: 'vmbr9' } }).conf).get('net0')).toBe('virtio,bridge=vmbr9');
    expect(() => configFor({}, { vmid: 99 })).toThrow(KvmRestoreError);
    expect(() => configFor({}, { storage: 'local lvm; rm -rf /' })).toThrow(/storage ID/);
    const seven = Array.from({ length: 7 }, (_, i) => ['sata', 0, i, GiB] as [string, number, number, number]);
    expect(() => configFor({ guestId: 'windows9_64Guest', disks: seven })).toThrow(/at most 6/);
  });

  it('the script is valid sh, checks the VMID, writes the base conf, then imports', () => {
    const c = configFor({ name: "it's", firmware: 'efi' }, { images: [{ path: "/srv/it's here/disk 0.raw", format: 'raw' }] });
    expect(c.importCommands[0]).toBe(`qm disk import 120 '/srv/it'\\''s here/disk 0.raw' local-lvm --target-disk scsi0`);
    const sh = spawnSync('sh', ['-n'], { input: c.script });
    expect(sh.status).toBe(0);
    expect(c.script).toContain(`cat > /etc/pve/qemu-server/120.conf <<'VAULTLINE_EOF'\n${c.baseConf.trimEnd()}\nVAULTLINE_EOF\n`);
    expect(c.script.indexOf('/etc/pve/nodes/*/qemu-server/120.conf')).toBeLessThan(c.script.indexOf('cat >'));
    expect(c.script.indexOf('cat >')).toBeLessThan(c.script.indexOf('qm disk import'));
    expect(c.script.indexOf('qm disk import')).toBeLessThan(c.script.indexOf('qm set 120 --efidisk0'));
  });
});
