/**
 * Transport selection, checked before the snapshot is taken. Automatic mode
 * tries Direct SAN, then HotAdd, then the network, and records for every disk
 * why each better mode was skipped. Manual mode uses the chosen mode or fails
 * with the reason. Pure: every fact is gathered by the caller.
 */
import type { Transport, TransportMode } from '@vaultline/contracts';
import { TransportUnavailable } from '../errors.ts';
import type { TransportChoice, VmDisk } from './ports.ts';

export interface DiskFacts {
  disk: VmDisk;
  datastoreType: string;
  naaIds: string[];
  /** The NAA id visible as a local block device, if any. */
  visibleLun: string | null;
  /** Why that LUN's datastore cannot be read here (found before the snapshot), if it cannot. */
  lunProblem?: string | null;
}

/** Datastore types whose disks are never on a LUN this Transporter could read: vSAN objects and vVols. */
export const SAN_NEVER = /^(vsan|vvol)$/i;

export interface TransporterFacts {
  blockDevices: boolean;
  /** The Transporter's own VM in this vCenter, if it runs in one. */
  proxyVm: { moref: string; name: string; freeScsiUnits: number; host?: string; /** Units already promised to other disks of the same VM (chooseTransports). */ promisedScsiUnits?: number } | null;
  proxyVmUuid?: string;
  /** Set when the connection is to a standalone ESXi host, not a vCenter: what it is ("VMware ESXi 8.0.2 …"). */
  standaloneHost?: string;
  /** Hosts that mount each datastore, for the HotAdd visibility check. */
  datastoreHosts: Map<string, string[]>;
  /** The vCenter speaks HTTPS (NBDSSL) or only HTTP (NBD). */
  networkTransport: 'nbdssl' | 'nbd';
}

const SCSI = new Set(['pvscsi', 'lsilogic', 'lsisas', 'buslogic']);

export function sanProblem(f: DiskFacts, t: TransporterFacts): string | null {
  if (SAN_NEVER.test(f.datastoreType)) return `SAN: datastore ${f.disk.datastore} is ${/vsan/i.test(f.datastoreType) ? 'vSAN' : 'a vVol datastore'}, whose disks are not on a LUN (Direct SAN reads VMFS on Fibre Channel or iSCSI LUNs only)`;
  if (!t.blockDevices) return 'SAN: this Transporter has no block device access (needs root and /dev)';
  if (f.naaIds.length === 0) return `SAN: datastore ${f.disk.datastore} (${f.datastoreType}) has no LUN`;
  if (!f.visibleLun) return `SAN: LUN ${f.naaIds.join(', ')} not visible on this Transporter`;
  if (f.lunProblem) return `SAN: LUN ${f.visibleLun} is visible, but ${f.lunProblem}`;
  return null;
}

export function hotaddProblem(f: DiskFacts, t: TransporterFacts, unitsWanted = 1): string | null {
  if (!SCSI.has(f.disk.controller)) return `HotAdd: disk on ${f.disk.controller.toUpperCase()} controller`;
  if (!t.blockDevices) return 'HotAdd: this Transporter has no block device access (needs root and /dev)';
  if (!t.proxyVm) {
    if (t.standaloneHost && t.proxyVmUuid) {
      return `HotAdd: this is a standalone ESXi host (${t.standaloneHost}), and this Transporter's VM (BIOS UUID ${t.proxyVmUuid}) does not run on it: without a vCenter, HotAdd needs the Transporter's VM on the same host as the disks`;
    }
    return t.proxyVmUuid
      ? `HotAdd: no VM with BIOS UUID ${t.proxyVmUuid} (this Transporter's VM) in this vCenter`
      : 'HotAdd: this Transporter does not know which VM it runs in';
  }
  if (t.proxyVm.freeScsiUnits < unitsWanted) {
    const promised = t.proxyVm.promisedScsiUnits ?? 0;
    return promised > 0
      ? `HotAdd: proxy VM ${t.proxyVm.name} has no free SCSI unit left (its ${promised + t.proxyVm.freeScsiUnits} free units go to this VM's other disks; 15 per controller, unit 7 is the controller's)`
      : `HotAdd: proxy VM ${t.proxyVm.name} has no free SCSI unit (15 per controller, unit 7 is the controller's)`;
  }
  const hosts = t.datastoreHosts.get(f.disk.datastore);
  if (t.proxyVm.host && hosts && hosts.length > 0 && !hosts.includes(t.proxyVm.host)) {
    return `HotAdd: proxy VM ${t.proxyVm.name} runs on a host that cannot see datastore ${f.disk.datastore}`;
  }
  return null;
}

export function chooseTransport(mode: TransportMode, f: DiskFacts, t: TransporterFacts): TransportChoice {
  const network = t.networkTransport;
  if (mode === 'automatic') {
    const reasons: string[] = [];
    const san = sanProblem(f, t);
    if (!san) return { transport: 'san', reasons: [`SAN: LUN ${f.visibleLun} visible on this Transporter`] };
    reasons.push(san);
    const hot = hotaddProblem(f, t);
    if (!hot) return { transport: 'hotadd', reasons: [...reasons, `HotAdd: attach to proxy VM ${t.proxyVm!.name}`] };
    reasons.push(hot);
    const proto = network === 'nbdssl' ? 'HTTPS' : 'HTTP';
    const how = SAN_NEVER.test(f.datastoreType)
      ? `network copy of the snapshot's export lease over the vCenter's ${proto} interface (the datastore's disks are objects, with no file to fetch)`
      : `network copy over the datastore's ${proto} interface`;
    return { transport: network, reasons: [...reasons, `${network === 'nbdssl' ? 'NBDSSL' : 'NBD'}: ${how}`] };
  }
  const problem: Record<Transport, () => string | null> = {
    san: () => sanProblem(f, t),
    hotadd: () => hotaddProblem(f, t),
    nbdssl: () => (network === 'nbdssl' ? null : 'NBDSSL: the vCenter is configured over plain HTTP'),
    nbd: () => null,
  };
  const p = problem[mode]();
  if (p) throw new TransportUnavailable(`${p} (transport mode is manual: ${mode})`);
  return { transport: mode, reasons: [`${mode.toUpperCase()}: chosen manually`] };
}

/**
 * The transport of every disk of one VM, in order. The disks are attached at the same time, so HotAdd units
 * are counted across them: once the proxy VM's free SCSI units are promised, the next disk cannot HotAdd
 * (automatic mode moves it to the network, saying why; manual hotadd refuses it). Each entry is the choice,
 * or the TransportUnavailable that refused that disk. `choose` decides one disk (backup: chooseTransport;
 * restore: chooseWriteTransport).
 */
export function chooseInTurn(facts: readonly DiskFacts[], t: TransporterFacts, choose: (f: DiskFacts, t: TransporterFacts) => TransportChoice): (TransportChoice | TransportUnavailable)[] {
  let promised = 0;
  return facts.map((f) => {
    const now: TransporterFacts = t.proxyVm ? { ...t, proxyVm: { ...t.proxyVm, freeScsiUnits: t.proxyVm.freeScsiUnits - promised, promisedScsiUnits: promised } } : t;
    try {
      const choice = choose(f, now);
      if (choice.transport === 'hotadd') promised++;
      return choice;
    } catch (err) {
      if (err instanceof TransportUnavailable) return err;
      throw err;
    }
  });
}

export const chooseTransports = (mode: TransportMode, facts: readonly DiskFacts[], t: TransporterFacts) => chooseInTurn(facts, t, (f, now) => chooseTransport(mode, f, now));
