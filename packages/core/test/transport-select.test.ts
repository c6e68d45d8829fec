import { describe, expect, it } from 'vitest';
import { chooseTransport, chooseTransports, type DiskFacts, type TransporterFacts } from '../src/backup/transport-select.ts';
import { TransportUnavailable } from '../src/errors.ts';
import type { VmDisk } from '../src/backup/ports.ts';

const disk = (over: Partial<VmDisk> = {}): VmDisk => ({ key: 2000, label: 'Hard disk 1', capacityBytes: 1 << 30, fileName: '[ds1] vm/vm.vmdk', datastore: 'ds1', controller: 'pvscsi', ...over });
const facts = (over: Partial<DiskFacts> = {}): DiskFacts => ({ disk: disk(), datastoreType: 'VMFS', naaIds: ['naa.6000c2901'], visibleLun: null, ...over });
const transporter = (over: Partial<TransporterFacts> = {}): TransporterFacts => ({
  blockDevices: true,
  proxyVm: { moref: 'vm-9', name: 'vaultline-proxy', freeScsiUnits: 10, host: 'host-1' },
  datastoreHosts: new Map([['ds1', ['host-1', 'host-2']]]),
  networkTransport: 'nbdssl',
  ...over,
});

describe('automatic transport selection', () => {
  it('prefers SAN when the LUN is visible', () => {
    const c = chooseTransport('automatic', facts({ visibleLun: 'naa.6000c2901' }), transporter());
    expect(c.transport).toBe('san');
    expect(c.reasons[0]).toContain('naa.6000c2901');
  });

  it('falls back to HotAdd and says why SAN was skipped', () => {
    const c = chooseTransport('automatic', facts(), transporter());
    expect(c).toEqual({ transport: 'hotadd', reasons: ['SAN: LUN naa.6000c2901 not visible on this Transporter', 'HotAdd: attach to proxy VM vaultline-proxy'] });
  });

  it('skips SAN for a visible LUN whose datastore cannot be read here (found before the snapshot), saying why; manual SAN is refused with it', () => {
    const unreadable = facts({ visibleLun: 'naa.6000c2901', lunProblem: 'partition 1 of LUN naa.6000c2901 (GPT at 1 MiB) is VMFS6, but vmfs6-fuse is not installed (apt-get install vmfs6-tools)' });
    expect(chooseTransport('automatic', unreadable, transporter())).toEqual({
      transport: 'hotadd',
      reasons: ['SAN: LUN naa.6000c2901 is visible, but partition 1 of LUN naa.6000c2901 (GPT at 1 MiB) is VMFS6, but vmfs6-fuse is not installed (apt-get install vmfs6-tools)', 'HotAdd: attach to proxy VM vaultline-proxy'],
    });
    expect(() => chooseTransport('san', unreadable, transporter())).toThrow(/^SAN: LUN naa\.6000c2901 is visible, but .*vmfs6-fuse is not installed.* \(transport mode is manual: san\)$/);
  });

  it('never uses SAN for vSAN or vVol datastores (their disks are not on a LUN), even with a LUN id visible', () => {
    for (const [type, what] of [['vsan', 'vSAN'], ['VVOL', 'a vVol datastore']] as const) {
      const c = chooseTransport('automatic', facts({ datastoreType: type, visibleLun: 'naa.6000c2901' }), transporter());
      expect(c.transport).toBe('hotadd');
      expect(c.reasons[0]).toBe(`SAN: datastore ds1 is ${what}, whose disks are not on a LUN (Direct SAN reads VMFS on Fibre Channel or iSCSI LUNs only)`);
    }
  });

  it('on vSAN and vVols the network reads the snapshot\'s export lease, and says so', () => {
    for (const type of ['vsan', 'VVOL']) {
      const c = chooseTransport('automatic', facts({ datastoreType: type, disk: disk({ controller: 'ide' }) }), transporter());
      expect(c.transport).toBe('nbdssl');
      expect(c.reasons.at(-1)).toBe("NBDSSL: network copy of the snapshot's export lease over the vCenter's HTTPS interface (the datastore's disks are objects, with no file to fetch)");
    }
  });

  it('uses the network for an IDE disk, with both reasons', () => {
    const c = chooseTransport('automatic', facts({ disk: disk({ controller: 'ide' }) }), transporter());
    expect(c.transport).toBe('nbdssl');
    expect(c.reasons).toContain('HotAdd: disk on IDE controller');
    expect(c.reasons[0]).toMatch(/^SAN: LUN naa/);
  });

  it('explains a NFS datastore, a missing proxy VM and a host that cannot see the datastore', () => {
    expect(chooseTransport('automatic', facts({ naaIds: [], datastoreType: 'NFS' }), transporter({ proxyVm: null, proxyVmUuid: '4210-aa' })).reasons).toEqual([
      'SAN: datastore ds1 (NFS) has no LUN',
      'HotAdd: no VM with BIOS UUID 4210-aa (this Transporter\'s VM) in this vCenter',
      "NBDSSL: network copy over the datastore's HTTPS interface",
    ]);
    const far = transporter({ proxyVm: { moref: 'vm-9', name: 'p', freeScsiUnits: 3, host: 'host-7' } });
    expect(chooseTransport('automatic', facts(), far).reasons[1]).toBe('HotAdd: proxy VM p runs on a host that cannot see datastore ds1');
  });
});

describe('manual transport selection', () => {
  it('uses the chosen mode when possible', () => {
    expect(chooseTransport('hotadd', facts(), transporter()).transport).toBe('hotadd');
    expect(chooseTransport('nbd', facts(), transporter()).transport).toBe('nbd');
  });

  it('fails clearly when the chosen mode cannot work', () => {
    expect(() => chooseTransport('san', facts(), transporter())).toThrow(TransportUnavailable);
    expect(() => chooseTransport('hotadd', facts({ disk: disk({ controller: 'ide' }) }), transporter())).toThrow('HotAdd: disk on IDE controller (transport mode is manual: hotadd)');
    expect(() => chooseTransport('nbdssl', facts(), transporter({ networkTransport: 'nbd' }))).toThrow(/plain HTTP/);
  });
});

describe('proxy VM identity', () => {
  it('counts HotAdd units across the disks of one VM: once the free units are promised, automatic sends the next disks over the network saying why, manual hotadd refuses them', () => {
    const three = [1, 2, 3].map((n) => facts({ disk: disk({ key: 2000 + n, label: `Hard disk ${n}` }) }));
    const two = transporter({ proxyVm: { moref: 'vm-9', name: 'proxy', freeScsiUnits: 2, host: 'host-1' } });
    const auto = chooseTransports('automatic', three, two);
    expect(auto.map((c) => (c instanceof TransportUnavailable ? 'refused' : c.transport))).toEqual(['hotadd', 'hotadd', 'nbdssl']);
    expect((auto[2] as { reasons: string[] }).reasons).toContain(
      "HotAdd: proxy VM proxy has no free SCSI unit left (its 2 free units go to this VM's other disks; 15 per controller, unit 7 is the controller's)",
    );
    const manual = chooseTransports('hotadd', three, two);
    expect(manual.slice(0, 2).map((c) => (c as { transport: string }).transport)).toEqual(['hotadd', 'hotadd']);
    expect(manual[2]).toBeInstanceOf(TransportUnavailable);
    expect((manual[2] as Error).message).toMatch(/no free SCSI unit left .*\(transport mode is manual: hotadd\)$/);
    // A disk that does not HotAdd (IDE) promises nothing.
    const mixed = chooseTransports('automatic', [facts({ disk: disk({ controller: 'ide' }) }), ...three.slice(0, 2)], two);
    expect(mixed.map((c) => (c as { transport: string }).transport)).toEqual(['nbdssl', 'hotadd', 'hotadd']);
  });
});
