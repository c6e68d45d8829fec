import { describe, expect, it } from 'vitest';
import type { VmDisk } from '../src/backup/ports.ts';
import type { DiskFacts, TransporterFacts } from '../src/backup/transport-select.ts';
import { TransportUnavailable } from '../src/errors.ts';
import { chooseWriteTransport, SAN_WRITE_REASON } from '../src/restore/write-transport.ts';

const disk = (over: Partial<VmDisk> = {}): VmDisk => ({ key: 2000, label: 'Hard disk 1', capacityBytes: 1 << 30, fileName: '', datastore: 'ds1', controller: 'pvscsi', ...over });
// Even a visible LUN is never written.
const facts = (over: Partial<DiskFacts> = {}): DiskFacts => ({ disk: disk(), datastoreType: 'VMFS', naaIds: ['naa.6000c2901'], visibleLun: 'naa.6000c2901', ...over });
const transporter = (over: Partial<TransporterFacts> = {}): TransporterFacts => ({
  blockDevices: true,
  proxyVm: { moref: 'vm-9', name: 'vaultline-proxy', freeScsiUnits: 10, host: 'host-1' },
  datastoreHosts: new Map([['ds1', ['host-1', 'host-2']]]),
  networkTransport: 'nbdssl',
  ...over,
});
const allow = { failoverToNetwork: true };

describe('write transport of a restore', () => {
  it('automatic: never SAN, even with the LUN visible; HotAdd when the backup-side checks pass', () => {
    expect(chooseWriteTransport('automatic', facts(), transporter(), allow)).toEqual({
      transport: 'hotadd',
      reasons: [SAN_WRITE_REASON, 'HotAdd: attach the new disk to proxy VM vaultline-proxy and write it there'],
    });
  });

  it('automatic: the network for an IDE disk, a Transporter without block devices, no free unit, or a proxy host that cannot see the datastore', () => {
    const net = (f: DiskFacts, t: TransporterFacts) => chooseWriteTransport('automatic', f, t, allow);
    expect(net(facts({ disk: disk({ controller: 'ide' }) }), transporter())).toEqual({
      transport: 'nbdssl',
      reasons: [SAN_WRITE_REASON, 'HotAdd: disk on IDE controller', "NBDSSL: write over the datastore's HTTPS interface"],
    });
    expect(net(facts(), transporter({ blockDevices: false })).reasons[1]).toBe('HotAdd: this Transporter has no block device access (needs root and /dev)');
    expect(net(facts(), transporter({ proxyVm: { moref: 'vm-9', name: 'p', freeScsiUnits: 0, host: 'host-1' } })).reasons[1]).toBe("HotAdd: proxy VM p has no free SCSI unit (15 per controller, unit 7 is the controller's)");
    expect(net(facts(), transporter({ proxyVm: { moref: 'vm-9', name: 'p', freeScsiUnits: 3, host: 'host-7' } })).reasons[1]).toBe('HotAdd: proxy VM p runs on a host that cannot see datastore ds1');
    expect(net(facts(), transporter({ networkTransport: 'nbd', proxyVm: null }))).toEqual({
      transport: 'nbd',
      reasons: [SAN_WRITE_REASON, 'HotAdd: this Transporter does not know which VM it runs in', "NBD: write over the datastore's HTTP interface"],
    });
  });

  it('manual san is refused with the reason', () => {
    expect(() => chooseWriteTransport('san', facts(), transporter(), allow)).toThrow(TransportUnavailable);
    expect(() => chooseWriteTransport('san', facts(), transporter(), allow)).toThrow(`${SAN_WRITE_REASON}; choose automatic, hotadd, nbdssl or nbd`);
  });

  it('manual hotadd: used when possible; otherwise the network with the reason, or refused when failover is off', () => {
    expect(chooseWriteTransport('hotadd', facts(), transporter(), allow)).toEqual({ transport: 'hotadd', reasons: ['HOTADD: chosen manually'] });
    expect(chooseWriteTransport('hotadd', facts({ disk: disk({ controller: 'sata' }) }), transporter(), allow)).toEqual({
      transport: 'nbdssl',
      reasons: ['HOTADD: chosen manually, but HotAdd: disk on SATA controller', "NBDSSL: write over the datastore's HTTPS interface instead (failover to the network is allowed)"],
    });
    expect(() => chooseWriteTransport('hotadd', facts({ disk: disk({ controller: 'sata' }) }), transporter(), { failoverToNetwork: false })).toThrow(
      'HotAdd: disk on SATA controller (transport is manual: hotadd, and failover to the network is off)',
    );
  });

  it('manual network modes: NBDSSL needs HTTPS; NBD says when the interface is HTTPS anyway', () => {
    expect(() => chooseWriteTransport('nbdssl', facts(), transporter({ networkTransport: 'nbd' }), allow)).toThrow('NBDSSL: the vCenter is configured over plain HTTP');
    expect(chooseWriteTransport('nbdssl', facts(), transporter(), allow)).toEqual({ transport: 'nbdssl', reasons: ['NBDSSL: chosen manually'] });
    expect(chooseWriteTransport('nbd', facts(), transporter({ networkTransport: 'nbd' }), allow)).toEqual({ transport: 'nbd', reasons: ['NBD: chosen manually'] });
    expect(chooseWriteTransport('nbd', facts(), transporter(), allow).reasons[0]).toMatch(/^NBD: chosen manually \(this vCenter's datastore interface is HTTPS only/);
  });

  it('vSAN and vVols: HotAdd writes there; the network cannot (it uploads a flat file, which object datastores do not have), so it is refused with the reason instead of chosen', () => {
    for (const [type, what] of [['vsan', 'vSAN'], ['VVOL', 'a vVol datastore']] as const) {
      const problem = `network: datastore ds1 is ${what}, whose disks are objects: a network restore uploads a flat file, which such a datastore does not have (HotAdd can write there)`;
      expect(chooseWriteTransport('automatic', facts({ datastoreType: type }), transporter(), allow).transport).toBe('hotadd');
      expect(() => chooseWriteTransport('automatic', facts({ datastoreType: type, disk: disk({ controller: 'ide' }) }), transporter(), allow)).toThrow(
        `${SAN_WRITE_REASON}; HotAdd: disk on IDE controller; ${problem}`,
      );
      expect(() => chooseWriteTransport('hotadd', facts({ datastoreType: type }), transporter({ blockDevices: false }), allow)).toThrow(problem);
      for (const mode of ['nbdssl', 'nbd'] as const) expect(() => chooseWriteTransport(mode, facts({ datastoreType: type }), transporter(), allow)).toThrow(TransportUnavailable);
      expect(() => chooseWriteTransport('nbd', facts({ datastoreType: type }), transporter(), allow)).toThrow(problem);
    }
  });
});
