/**
 * How a restore writes each disk, decided before anything is created and
 * recorded with reasons like the backup side: automatic = SAN → HotAdd →
 * network. SAN is never used for writes: writing into a VMFS LUN needs VDDK's
 * private block-allocation lease (AllocateBlock/ClearLazyZero), which
 * Vaultline does not have, so automatic records why and moves on, and a manual
 * `san` is refused. HotAdd uses the backup side's checks (SCSI disk, block
 * devices, proxy VM with a free SCSI unit, datastore visible from its host).
 * Pure: every fact is gathered by the caller.
 */
import type { TransportMode } from '@vaultline/contracts';
import type { TransportChoice } from '../backup/ports.ts';
import { hotaddProblem, SAN_NEVER, type DiskFacts, type TransporterFacts } from '../backup/transport-select.ts';
import { TransportUnavailable } from '../errors.ts';

export const SAN_WRITE_REASON = "SAN: never used to write a restore: writing into a VMFS LUN needs VDDK's private block-allocation lease, which Vaultline does not have";

const networkReason = (t: TransporterFacts) =>
  t.networkTransport === 'nbdssl' ? "NBDSSL: write over the datastore's HTTPS interface" : "NBD: write over the datastore's HTTP interface";

/**
 * Why the network cannot write this disk, or null. A network restore uploads the disk's flat extent through
 * the datastore interface (/folder); a vSAN or vVol datastore keeps disks as objects and has no flat file to
 * write (HotAdd writes them through the proxy VM).
 */
export function networkWriteProblem(f: DiskFacts): string | null {
  if (!SAN_NEVER.test(f.datastoreType)) return null;
  return `network: datastore ${f.disk.datastore} is ${/vsan/i.test(f.datastoreType) ? 'vSAN' : 'a vVol datastore'}, whose disks are objects: a network restore uploads a flat file, which such a datastore does not have (HotAdd can write there)`;
}

export function chooseWriteTransport(mode: TransportMode, f: DiskFacts, t: TransporterFacts, opts: { failoverToNetwork: boolean }): TransportChoice {
  const choice = chooseByMode(mode, f, t, opts);
  if (choice.transport === 'nbd' || choice.transport === 'nbdssl') {
    const problem = networkWriteProblem(f);
    if (problem) throw new TransportUnavailable(`${choice.reasons.filter((r) => !/^NBD/.test(r)).concat(problem).join('; ')}`);
  }
  return choice;
}

function chooseByMode(mode: TransportMode, f: DiskFacts, t: TransporterFacts, opts: { failoverToNetwork: boolean }): TransportChoice {
  const network = t.networkTransport;
  switch (mode) {
    case 'san':
      throw new TransportUnavailable(`${SAN_WRITE_REASON}; choose automatic, hotadd, nbdssl or nbd`);
    case 'automatic': {
      const hot = hotaddProblem(f, t);
      if (!hot) return { transport: 'hotadd', reasons: [SAN_WRITE_REASON, `HotAdd: attach the new disk to proxy VM ${t.proxyVm!.name} and write it there`] };
      return { transport: network, reasons: [SAN_WRITE_REASON, hot, networkReason(t)] };
    }
    case 'hotadd': {
      const hot = hotaddProblem(f, t);
      if (!hot) return { transport: 'hotadd', reasons: ['HOTADD: chosen manually'] };
      if (!opts.failoverToNetwork) throw new TransportUnavailable(`${hot} (transport is manual: hotadd, and failover to the network is off)`);
      return { transport: network, reasons: [`HOTADD: chosen manually, but ${hot}`, `${networkReason(t)} instead (failover to the network is allowed)`] };
    }
    case 'nbdssl':
      if (network !== 'nbdssl') throw new TransportUnavailable('NBDSSL: the vCenter is configured over plain HTTP (transport is manual: nbdssl)');
      return { transport: 'nbdssl', reasons: ['NBDSSL: chosen manually'] };
    case 'nbd':
      return {
        transport: 'nbd',
        reasons: [network === 'nbdssl' ? "NBD: chosen manually (this vCenter's datastore interface is HTTPS only, so the copy is encrypted anyway)" : 'NBD: chosen manually'],
      };
  }
}
