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
    ...(u.readMode !== undefined ? { readMode: u.readMode } : {}),
    ...(u.bytesRead !== undefined ? { bytesRead: BigInt(u.bytesRead) } : {}),
    ...(u.bytesWritten !== undefined ? { bytesWritten: BigInt(u.bytesWritten) } : {}),
    ...(u.bytesSkipped !== undefined ? { bytesSkipped: BigInt(u.bytesSkipped) } : {}),
    ...(u.bytesVerified !== undefined ? { bytesVerified: BigInt(u.bytesVerified) } : {}),
    ...(u.startedAt !== undefined ? { startedAt: u.startedAt } : {}),
    ...(u.finishedAt !== undefined ? { finishedAt: u.finishedAt } : {}),
    ...(u.error !== undefined ? { error: u.error } : {}),
  };
}

/** What this run knows of one disk: its row, when the row was last written, what was last published. */
interface DiskState {
  rowId?: string;
  lastWrite?: { at: number; phase: string; moved: boolean };
  published?: DiskProgress;
  /** Writes of the disk's row and samples go one after the other, so a late tick never overwrites a newer phase. */
  tail: Promise<unknown>;
}

export function runDiskRows(db: Db, runVmId: string, publish: (e: RunEvent) => void, sampleLimits?: SampleLimits): { diskPhase(deviceKey: number, u: DiskUpdate): Promise<void>; progress: ProgressSink } {
  const samples = diskSamples(db, sampleLimits);
  const disks = new Map<number, DiskState>();
  const stateOf = (deviceKey: number): DiskState => {
    let d = disks.get(deviceKey);
    if (!d) disks.set(deviceKey, (d = { tail: Promise.resolve() }));
    return d;
  };
  const serial = <T>(d: DiskState, fn: () => Promise<T>): Promise<T> => {
    const next = d.tail.catch(() => undefined).then(fn);
    d.tail = next;
    return next;
  };
  /** The disk's row id, looked up once (a tick that comes before any phase finds no row: null). */
  const rowIdOf = async (deviceKey: number, d: DiskState): Promise<string | null> => {
    d.rowId ??= (await db.runDisk.findUnique({ where: { runVmId_deviceKey: { runVmId, deviceKey } }, select: { id: true } }))?.id;
    return d.rowId ?? null;
  };
  return {
    diskPhase: (deviceKey, u) => {
      const d = stateOf(deviceKey);
      return serial(d, async () => {
        const live = d.published;
        const data = diskData(live && u.bytesRead === undefined ? { bytesRead: live.bytesRead, bytesWritten: live.bytesWritten, bytesSkipped: live.bytesSkipped, bytesVerified: live.bytesVerified, ...u } : u);
        const id = await rowIdOf(deviceKey, d);
        if (id) await db.runDisk.update({ where: { id }, data });
        else d.rowId = (await db.runDisk.create({ data: { runVmId, deviceKey, label: u.label ?? `disk ${deviceKey}`, capacityBytes: BigInt(u.capacityBytes ?? 0), ...data }, select: { id: true } })).id;
      });
    },
    progress: {
      disk: (p: DiskProgress) => {
        publish({ type: 'disk.progress', ...p });
        const d = stateOf(p.deviceKey);
        d.published = p;
        // Throughput samples for the run page's chart (run-disk-samples.ts), in order with the row's writes.
        const at = new Date();
        if (samples.due(p, at.getTime())) {
          void serial(d, async () => {
            const id = await rowIdOf(p.deviceKey, d);
            if (id) await samples.write(id, p, at);
          }).catch(() => undefined);
        }
        // At most once a second per disk, but a new phase and the first bytes moved are written at once.
        const now = at.getTime();
        const moved = p.bytesRead + p.bytesWritten > 0;
        const last = d.lastWrite;
        if (last && now - last.at < 1000 && last.phase === p.phase && last.moved === moved) return;
        d.lastWrite = { at: now, phase: p.phase, moved };
        void serial(d, () =>
          db.runDisk.updateMany({
            where: { runVmId, deviceKey: p.deviceKey },
            data: {
              bytesRead: BigInt(p.bytesRead),
              bytesWritten: BigInt(p.bytesWritten),
              bytesSkipped: BigInt(p.bytesSkipped),
              bytesVerified: BigInt(p.bytesVerified),
              phase: p.phase,
              ...(moved ? { bottleneck: p.bottleneck, avgBytesPerSecond: BigInt(p.bytesPerSecond), peakBytesPerSecond: BigInt(p.peakBytesPerSecond) } : {}),
            },
          }),
        ).catch(() => undefined);
      },
    },
  };
}
