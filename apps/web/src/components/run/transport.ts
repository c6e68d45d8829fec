import type { TransportMode } from '@vaultline/contracts';

export const TRANSPORT_LABEL: Record<string, string> = { automatic: 'Automatic', san: 'Direct SAN', hotadd: 'HotAdd', nbdssl: 'NBDSSL', nbd: 'NBD' };

export const transportLabel = (t: string | null | undefined) => (t ? (TRANSPORT_LABEL[t] ?? t) : '—');

/** One line on what each transport mode does, for the wizard and the job list. */
export const TRANSPORT_HELP: Record<TransportMode, string> = {
  automatic: 'Per disk, tries Direct SAN, then HotAdd, then the network, and records why each faster mode was skipped.',
  san: 'Reads the disk straight from its LUN on the storage network: fastest, no load on the ESXi hosts. The LUN must be visible to the Transporter.',
  hotadd: 'Attaches the snapshot’s disk to the Transporter’s own VM and reads it there. SCSI disks only; the Transporter must run as a VM that sees the datastore.',
  nbdssl: 'Copies over the network through the ESXi host, encrypted with TLS. Works everywhere; slowest, and it uses the management network.',
  nbd: 'Network copy without TLS, for vCenters registered over plain HTTP (labs); over HTTPS it is the same as NBDSSL.',
};

export type WriteTransport = Exclude<TransportMode, 'san'>;
export const WRITE_TRANSPORTS: WriteTransport[] = ['automatic', 'hotadd', 'nbdssl', 'nbd'];

/** One line on how each mode writes a restored disk. */
export const RESTORE_TRANSPORT_HELP: Record<WriteTransport, string> = {
  automatic: 'Per disk: HotAdd when this Transporter runs as a VM of that vCenter and the disk is on SCSI, else the network. The run records why.',
  hotadd: 'Attaches each new disk to the Transporter’s own VM and writes only its non-zero data there, so thin disks stay thin. SCSI disks only.',
  nbdssl: 'Writes through the ESXi host over the network, encrypted with TLS. Works everywhere; slowest, and it uses the management network.',
  nbd: 'Network write without TLS, for vCenters registered over plain HTTP (labs); over HTTPS it is the same as NBDSSL.',
};

/** Why Direct SAN is not offered for restores (the Director refuses it too). */
export const SAN_NEVER_WRITES =
  'Direct SAN is never used to write: writing into a VMFS LUN from outside ESXi needs VMware’s private block-allocation lease (only VDDK has it), and without it the datastore could be corrupted.';
