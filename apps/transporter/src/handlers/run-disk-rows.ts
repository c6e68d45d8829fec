/**
 * Per-disk run rows (RunDisk) and `disk.progress` events, shared by backups
 * and restores: a phase change writes the row at once (creating it the first
 * time), progress is published on every meter tick and written to the row at
 * most once a second per disk.
 */
import type { DiskProgress } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { ProgressSink } from '../backup/progress.ts';

export interface DiskUpdate {
  phase: string;
  label?: string;
  capacityBytes?: number;
  transport?: string;
  reasons?: string[];
  cbtUsed?: boolean;
  bytesRead?: number;
  bytesWritten?: number;
  bytesSkipped?: number;
  startedAt?: Date;
  finishedAt?: Date;
  error?: string | null;
}

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

export function runDiskRows(db: Db, runVmId: string, publish: (e: { type: string; [k: string]: unknown }) => void): { diskPhase(deviceKey: number, u: DiskUpdate): Promise<void>; progress: ProgressSink } {
  const lastDbWrite = new Map<number, number>();
  return {
    async diskPhase(deviceKey, u) {
      const data = diskData(u);
      const row = await db.runDisk.findUnique({ where: { runVmId_deviceKey: { runVmId, deviceKey } } });
      if (row) await db.runDisk.update({ where: { id: row.id }, data });
      else await db.runDisk.create({ data: { runVmId, deviceKey, label: u.label ?? `disk ${deviceKey}`, capacityBytes: BigInt(u.capacityBytes ?? 0), ...data } });
    },
    progress: {
      disk: (p: DiskProgress) => {
        publish({ type: 'disk.progress', ...p });
        const now = Date.now();
        if (now - (lastDbWrite.get(p.deviceKey) ?? 0) < 1000) return;
        lastDbWrite.set(p.deviceKey, now);
        void db.runDisk
          .updateMany({ where: { runVmId, deviceKey: p.deviceKey }, data: { bytesRead: BigInt(p.bytesRead), bytesWritten: BigInt(p.bytesWritten), bytesSkipped: BigInt(p.bytesSkipped), phase: p.phase } })
          .catch(() => undefined);
      },
    },
  };
}
