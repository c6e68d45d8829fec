/**
 * Per-disk run rows (RunDisk) and `disk.progress` events, shared by backups
 * and restores: a phase change writes the row at once (creating it the first
 * time), progress is published on every meter tick and written to the row at
 * most once a second per disk (a new phase and the first bytes moved at once),
 * with the busy fractions, so where the time went stays on the row after the run. A phase change that
 * carries no counters (a disk cancelled or failed mid-copy) writes the last published ones, so a reload
 * shows what the live view last showed.
 */
import type { DiskProgress, RunEvent } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { DiskUpdate, ProgressSink } from '@vaultline/core';
import { diskSamples, type SampleLimits } from './run-disk-samples.ts';

function diskData(u: DiskUpdate) {
  return {
    phase: u.phase,
    ...(u.transport !== undefined ? { transport: u.transport } : {}),
    ...(u.reasons !== undefined ? { transportReason: u.reasons } : {}),
    ...(u.cbtUsed !== undefined ? { cbtUsed: u.cbtUsed } : {}),
    ...(u.bytesRead !== undefined ? { bytesRead: BigInt(u.bytesRead) } : {}),
    ...(u.bytesWritten !== undefined ? { bytesWritten: BigInt(u.bytesWritten) } : {}),
    ...(u.bytesSkipped !== undefined ? { bytesSkipped: BigInt(u.bytesSkipped) } : {}),
    ...(u.startedAt !== undefined ? { startedAt: u.startedAt } : {}),
    ...(u.finishedAt !== undefined ? { finishedAt: u.finishedAt } : {}),
    ...(u.error !== undefined ? { error: u.error } : {}),
  };
}

export function runDiskRows(db: Db, runVmId: string, publish: (e: RunEvent) => void, sampleLimits?: SampleLimits): { diskPhase(deviceKey: number, u: DiskUpdate): Promise<void>; progress: ProgressSink } {
  const samples = diskSamples(db, runVmId, sampleLimits);
  const lastDbWrite = new Map<number, { at: number; phase: string; moved: boolean }>();
  const lastPublished = new Map<number, DiskProgress>();
  // Writes of one disk's row go one after the other, so a late progress tick never overwrites a newer phase.
  const tails = new Map<number, Promise<unknown>>();
  const serial = <T>(deviceKey: number, fn: () => Promise<T>): Promise<T> => {
    const next = (tails.get(deviceKey) ?? Promise.resolve()).catch(() => undefined).then(fn);
    tails.set(deviceKey, next);
    return next;
  };
  return {
    diskPhase: (deviceKey, u) =>
      serial(deviceKey, async () => {
        const live = lastPublished.get(deviceKey);
        const data = diskData(live && u.bytesRead === undefined ? { bytesRead: live.bytesRead, bytesWritten: live.bytesWritten, bytesSkipped: live.bytesSkipped, ...u } : u);
        const row = await db.runDisk.findUnique({ where: { runVmId_deviceKey: { runVmId, deviceKey } } });
        if (row) await db.runDisk.update({ where: { id: row.id }, data });
        else await db.runDisk.create({ data: { runVmId, deviceKey, label: u.label ?? `disk ${deviceKey}`, capacityBytes: BigInt(u.capacityBytes ?? 0), ...data } });
      }),
    progress: {
      disk: (p: DiskProgress) => {
        publish({ type: 'disk.progress', ...p });
        lastPublished.set(p.deviceKey, p);
        // Throughput samples for the run page's chart (run-disk-samples.ts), in order with the row's writes.
        const at = new Date();
        if (samples.due(p, at.getTime())) void serial(p.deviceKey, () => samples.write(p, at)).catch(() => undefined);
        // At most once a second per disk, but a new phase and the first bytes moved are written at once.
        const now = Date.now();
        const moved = p.bytesRead + p.bytesWritten > 0;
        const last = lastDbWrite.get(p.deviceKey);
        if (last && now - last.at < 1000 && last.phase === p.phase && last.moved === moved) return;
        lastDbWrite.set(p.deviceKey, { at: now, phase: p.phase, moved });
        void serial(p.deviceKey, () =>
          db.runDisk.updateMany({
            where: { runVmId, deviceKey: p.deviceKey },
            data: {
              bytesRead: BigInt(p.bytesRead),
              bytesWritten: BigInt(p.bytesWritten),
              bytesSkipped: BigInt(p.bytesSkipped),
              phase: p.phase,
              ...(moved ? { bottleneck: p.bottleneck, avgBytesPerSecond: BigInt(p.bytesPerSecond), peakBytesPerSecond: BigInt(p.peakBytesPerSecond) } : {}),
            },
          }),
        ).catch(() => undefined);
      },
    },
  };
}
