/** Recorded hardware as a backup writes it (manifest.vm), for the restore-to-KVM tests. */
import type { DiskManifest, Manifest } from '@vaultline/repository';

export interface FixtureOptions {
  name?: string;
  guestId?: string;
  guestFullName?: string;
  firmware?: 'bios' | 'efi';
  numCpu?: number;
  numCoresPerSocket?: number;
  memoryMiB?: number;
  /** [controller kind, bus, unit, capacity] per disk; keys 2000, 2001, … in this order. */
  disks?: Array<[string, number, number, number]>;
  nics?: Array<{ networkName?: string; macAddress?: string }>;
  biosUuid?: string;
}

export function recordedVm(o: FixtureOptions = {}): Record<string, unknown> {
  const disks = o.disks ?? [['pvscsi', 0, 0, 1 * 2 ** 30]];
  const kinds = [...new Set(disks.map((d) => `${d[0]}:${d[1]}`))];
  return {
    name: o.name ?? 'app01',
    moref: 'vm-42',
    biosUuid: o.biosUuid ?? '4212a1b2-c3d4-e5f6-0718-293a4b5c6d7e',
    hardware: {
      name: o.name ?? 'app01',
      guestId: o.guestId ?? 'ubuntu64Guest',
      guestFullName: o.guestFullName ?? 'Ubuntu Linux (64-bit)',
      numCpu: o.numCpu ?? 4,
      numCoresPerSocket: o.numCoresPerSocket ?? 2,
      memoryMiB: o.memoryMiB ?? 2048,
      firmware: o.firmware ?? 'bios',
      controllers: kinds.map((k, i) => ({ key: 1000 + i, kind: k.split(':')[0], type: 'X', busNumber: Number(k.split(':')[1]) })),
      disks: disks.map(([kind, bus, unit, cap], i) => ({
        key: 2000 + i,
        label: `Hard disk ${i + 1}`,
        controllerKey: 1000 + kinds.indexOf(`${kind}:${bus}`),
        controller: kind,
        busNumber: bus,
        unitNumber: unit,
        capacityBytes: cap,
        fileName: `[ds1] app01/app01_${i}.vmdk`,
        parents: [],
        thin: true,
        eagerlyScrub: false,
        diskMode: 'persistent',
        backing: { type: 'VirtualDiskFlatVer2BackingInfo', fileName: `[ds1] app01/app01_${i}.vmdk` },
      })),
      nics: (o.nics ?? [{ networkName: 'VM Network', macAddress: '00:50:56:aa:bb:01' }]).map((n, i) => ({ key: 4000 + i, type: 'VirtualVmxnet3', label: `Network adapter ${i + 1}`, ...n })),
    },
  };
}

/** Just enough of a manifest for planning: its id, its vm and which disks it holds. */
export function manifestOf(vm: Record<string, unknown>, keys?: string[]): Pick<Manifest, 'id' | 'vm' | 'disks'> {
  const hwDisks = ((vm.hardware as { disks: Array<{ key: number; capacityBytes: number }> }).disks ?? []).map((d) => ({ key: String(d.key), capacity: d.capacityBytes }));
  const disks = hwDisks.filter((d) => !keys || keys.includes(d.key)).map((d) => ({ key: d.key, capacity: d.capacity }) as DiskManifest);
  return { id: 'rp-test', vm, disks };
}
