import type { Run } from '@vaultline/contracts';

type DiskBytes = Pick<Run['vms'][number]['disks'][number], 'bytesRead' | 'bytesWritten'>;

/** Bytes read and written: a backup reads its disks and stores new data in the repository (after dedup and compression). */
export interface ByteTotals {
  read: number;
  stored: number;
}

/** What one VM's disks read and stored. */
export function vmBytes(vm: { disks: DiskBytes[] }): ByteTotals {
  let read = 0;
  let stored = 0;
  for (const d of vm.disks) {
    read += d.bytesRead;
    stored += d.bytesWritten;
  }
  return { read, stored };
}

/** What every disk of a run read and stored: the sum of its VMs'. */
export function runBytes(run: { vms: { disks: DiskBytes[] }[] }): ByteTotals {
  return run.vms.map(vmBytes).reduce((a, b) => ({ read: a.read + b.read, stored: a.stored + b.stored }), { read: 0, stored: 0 });
}
