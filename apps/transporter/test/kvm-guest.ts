/**
 * A lab VM whose disk holds the bootable KVM test guest (@vaultline/kvm/testing):
 * the image's bytes are written straight into the disk's flat file. A first
 * backup of a thin lab disk reads what the file holds (the lab answers
 * QueryChangedDiskAreas "*" with the file's data extents, SEEK_DATA), so
 * only the image's non-zero blocks are written and the rest stays a hole.
 */
import { open, readFile } from 'node:fs/promises';
import type { BootableGuest } from '@vaultline/kvm/testing';
import type { Lab, LabVm } from '@vaultline/vsphere-lab';

const BLOCK = 64 * 1024;

export async function labVmWithGuest(lab: Lab, name: string, guest: BootableGuest, hw: { cpus: number; memoryMiB: number }): Promise<LabVm> {
  await lab.createVm({ name, cbt: true, cpus: hw.cpus, memoryMiB: hw.memoryMiB, disks: [{ capacityBytes: guest.sizeBytes, thin: true, controller: 'sata' }] });
  const vm = await lab.getVm(name);
  const image = await readFile(guest.path);
  const fh = await open(vm.disks[0]!.flatPath, 'r+');
  try {
    for (let off = 0; off < image.length; off += BLOCK) {
      const block = image.subarray(off, Math.min(off + BLOCK, image.length));
      if (block.some((b) => b !== 0)) await fh.write(block, 0, block.length, off);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return vm;
}
