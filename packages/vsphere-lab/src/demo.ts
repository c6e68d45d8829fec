/**
 * The demo inventory (`lab up --demo`, `npm run lab`): a handful of VMs with plausible data on their disks,
 * and on file-01's first disk real NTFS and ext4 filesystems with files (demo-disk.ts) for file-level restore.
 */
import { DEMO_DISK, writeDemoDisk } from './demo-disk.ts';
import type { Lab, LabVmSpec, WriteOp } from './types.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

interface DemoVm extends LabVmSpec {
  data: WriteOp[][];
}

function demoData(seed: number, capacity: number): WriteOp[] {
  // boot area + filesystem-ish metadata (text), a block of binary data, zeros, scattered small writes
  const ops: WriteOp[] = [
    { offset: 0, length: 1 * MiB, pattern: 'text', seed },
    { offset: 64 * MiB, length: 6 * MiB, pattern: 'random', seed },
    { offset: Math.floor(capacity / 3 / MiB) * MiB, length: 2 * MiB, pattern: 'text', seed: seed + 1 },
    { offset: Math.floor(capacity / 2 / MiB) * MiB, length: 1 * MiB, pattern: 'zeros' },
  ];
  for (let i = 0; i < 6; i++) {
    ops.push({ offset: (Math.floor((capacity * (i + 1)) / 8 / MiB) + 3) * MiB + i * 4096, length: 256 * 1024, pattern: 'random', seed: seed * 10 + i });
  }
  return ops;
}

export async function createDemoInventory(lab: Lab): Promise<void> {
  const ds = lab.datastores.map((d) => d.name);
  const vms: DemoVm[] = [
    { name: 'web-01', guestId: 'ubuntu64Guest', disks: [{ capacityBytes: 8 * GiB }, { capacityBytes: 4 * GiB }], data: [] },
    { name: 'web-02', guestId: 'ubuntu64Guest', disks: [{ capacityBytes: 8 * GiB }, { capacityBytes: 4 * GiB }], data: [] },
    { name: 'db-01', guestId: 'centos7_64Guest', cpus: 4, memoryMiB: 8192, disks: [{ capacityBytes: 8 * GiB }, { capacityBytes: 16 * GiB, datastore: ds[1] }, { capacityBytes: 4 * GiB, datastore: ds[1] }], data: [] },
    { name: 'app-01', guestId: 'debian10_64Guest', disks: [{ capacityBytes: 6 * GiB }], data: [] },
    { name: 'app-02', guestId: 'debian10_64Guest', disks: [{ capacityBytes: 6 * GiB, datastore: ds[1] }, { capacityBytes: 2 * GiB, thin: false, controller: 'lsilogic', datastore: ds[1] }], data: [] },
    { name: 'file-01', guestId: 'windows9Server64Guest', cpus: 2, memoryMiB: 4096, disks: [{ capacityBytes: 8 * GiB, controller: 'sata' }, { capacityBytes: 12 * GiB, controller: 'sata' }], data: [] },
    { name: 'dc-01', guestId: 'windows9Server64Guest', disks: [{ capacityBytes: 8 * GiB, controller: 'lsilogic' }], data: [] },
    { name: 'mail-01', guestId: 'ubuntu64Guest', disks: [{ capacityBytes: 6 * GiB, datastore: ds[1] }, { capacityBytes: 8 * GiB, datastore: ds[1] }], data: [] },
    { name: 'legacy-ide-01', guestId: 'centos7_64Guest', disks: [{ capacityBytes: 4 * GiB, controller: 'ide' }], data: [] },
    { name: 'test-nocbt-01', guestId: 'debian10_64Guest', cbt: false, powerOn: false, disks: [{ capacityBytes: 4 * GiB }, { capacityBytes: 2 * GiB }], data: [] },
  ];
  let seed = 100;
  for (const spec of vms) {
    await lab.createVm({ powerOn: true, cbt: true, ...spec });
    for (let i = 0; i < spec.disks.length; i++) {
      const s = seed++;
      if (spec.name === DEMO_DISK.vm && i === DEMO_DISK.diskIndex) await writeDemoDisk(lab, spec.name, i);
      else await lab.guestWrite(spec.name, i, demoData(s, spec.disks[i]!.capacityBytes));
    }
  }
  // vSphere tags, as administrators use them to say what gets backed up how (a job can take a tag as a source).
  for (const [tag, names] of [
    ['Gold', ['db-01', 'file-01', 'mail-01']],
    ['Silver', ['web-01', 'web-02', 'app-01', 'app-02']],
  ] as const) {
    for (const name of names) await lab.tagVm('Backup tier', tag, name);
  }
}
