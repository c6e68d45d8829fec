/**
 * Disks a job leaves out (a VM source's `excludeDisks`, vSphere device keys): the backup neither reads nor
 * stores them, and records them in the restore point (`manifest.vm.excludedDisks`), with the hardware it
 * keeps for a restore described without them, so a restored VM (or an OVA) simply has no such disk.
 */
import type { Manifest } from '@vaultline/repository';
import type { VmInfo } from './ports.ts';

/** A disk left out of a restore point, as the point records it. */
export interface ExcludedDisk {
  key: number;
  label: string;
  capacityBytes: number;
}

/** "16 GiB", "1.5 GiB", "512 MiB": a capacity in binary units, one decimal at most. */
export function formatCapacity(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1).replace(/\.0$/, '')} ${units[i]}`;
}

/**
 * The VM's disks the job leaves out, each logged ("Hard disk 2 (16 GiB) left out by the job"); a key the VM
 * does not have (any more) is a warning, as that disk, if it came back under another key, is backed up.
 */
export function leaveOut(vm: VmInfo, keys: readonly number[], runLog: (level: 'info' | 'warn', message: string) => void): ExcludedDisk[] {
  const wanted = new Set(keys);
  const out: ExcludedDisk[] = [];
  for (const d of vm.disks) {
    if (!wanted.has(d.key)) continue;
    out.push({ key: d.key, label: d.label, capacityBytes: d.capacityBytes });
    runLog('info', `${d.label} (${formatCapacity(d.capacityBytes)}) left out by the job`);
  }
  const gone = [...wanted].filter((k) => !vm.disks.some((d) => d.key === k));
  if (gone.length > 0) {
    const has = vm.disks.map((d) => `${d.key} (${d.label})`).join(', ');
    runLog('warn', `the job leaves out disk ${gone.join(', ')}, which ${vm.name} does not have (any more); its disks are ${has || 'none'}`);
  }
  return out;
}

/** The hardware description (what VSpherePort.snapshotHardware gave) without the left-out disks, so a restore does not recreate them. */
export function hardwareWithout(hardware: unknown, excluded: readonly ExcludedDisk[]): unknown {
  if (excluded.length === 0 || !hardware || typeof hardware !== 'object') return hardware;
  const hw = hardware as { disks?: unknown };
  if (!Array.isArray(hw.disks)) return hardware;
  const keys = new Set(excluded.map((d) => d.key));
  return { ...hw, disks: hw.disks.filter((d: { key?: unknown }) => !keys.has(Number(d?.key))) };
}

/** The disks a restore point says its backup left out (none for points from before exclusions, or without any). */
export function excludedDisksOf(manifest: Pick<Manifest, 'vm'>): ExcludedDisk[] {
  const list = (manifest.vm as { excludedDisks?: unknown } | null | undefined)?.excludedDisks;
  if (!Array.isArray(list)) return [];
  return list.filter((d): d is ExcludedDisk => typeof d === 'object' && d !== null && typeof (d as ExcludedDisk).key === 'number');
}

/** For a restore: one line per disk the backup left out ("Hard disk 2 was excluded from this backup, so the restored VM does not have it"). */
export function noteExcludedDisks(manifest: Pick<Manifest, 'vm'>, runLog: (level: 'info', message: string) => void): void {
  for (const d of excludedDisksOf(manifest)) runLog('info', `${d.label || `disk ${d.key}`} was excluded from this backup, so the restored VM does not have it`);
}
