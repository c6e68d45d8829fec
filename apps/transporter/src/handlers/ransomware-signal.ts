/**
 * The ransomware signal after a backup (packages/core backup/anomaly.ts decides): this point's per-disk
 * statistics of new data against the VM's last restore points in the same repository. What it finds is
 * recorded on the restore point row (with the statistics, so the next backup has its baseline); the
 * handler turns a finding into a warning, and retention (packages/appliance retention.ts) holds the VM
 * until an operator releases the point.
 */
import { ANOMALY_HISTORY_DEPTH, assessChangedData, mib, summarise, type AnomalyVerdict, type DiskDataStats, type DiskOutcome } from '@vaultline/core';
import type { Db } from '@vaultline/db';
import type { Manifest } from '@vaultline/repository';
import { z } from 'zod';

const count = z.number().finite().nonnegative();
/** A row's `data_stats` as this module writes it; rows from before the signal hold `[]`. */
const StoredStatsSchema = z.array(
  z.object({ key: z.string(), label: z.string(), newRawBytes: count, newStoredBytes: count, sampledBytes: count, entropyBits: count, highEntropyBytes: count }),
);

export interface SignalOutcome {
  /** What goes into the row's `data_stats`. */
  dataStats: DiskDataStats[];
  verdict: AnomalyVerdict;
  /** The run log lines: what was measured (info), and for an anomaly, what against what (warn). */
  lines: { level: 'info' | 'warn'; message: string }[];
}

/**
 * `manifest` is the committed restore point: its disks' statistics are final only once the writer closed them
 * (chunks still in the workers when a disk's copy ends are counted at close). `disks` name them.
 */
export async function judgeChangedData(db: Db, scope: { repositoryId: string; vmInstanceUuid: string }, manifest: Manifest, disks: DiskOutcome[]): Promise<SignalOutcome> {
  const dataStats: DiskDataStats[] = manifest.disks.map((d) => {
    if (!d.changedData) throw new Error(`the manifest of disk ${d.key} carries no statistics of its new data`);
    return { key: d.key, label: disks.find((o) => String(o.deviceKey) === d.key)?.label ?? `disk ${d.key}`, ...d.changedData };
  });
  const earlier = await db.restorePoint.findMany({
    where: { repositoryId: scope.repositoryId, vmInstanceUuid: scope.vmInstanceUuid },
    orderBy: { createdAt: 'desc' },
    take: ANOMALY_HISTORY_DEPTH,
    select: { repoPointId: true, dataStats: true },
  });
  const lines: SignalOutcome['lines'] = [];
  const history: DiskDataStats[][] = [];
  for (const row of earlier) {
    const parsed = StoredStatsSchema.safeParse(row.dataStats);
    if (parsed.success) history.push(parsed.data);
    else lines.push({ level: 'info', message: `ransomware signal: the statistics of restore point ${row.repoPointId} are unreadable (${parsed.error.issues[0]?.message ?? 'invalid'}); it is left out of the baseline` });
  }
  const verdict = assessChangedData(dataStats, history);
  for (const s of dataStats) {
    const m = summarise(s);
    if (m.newRawBytes === 0) continue;
    lines.push({ level: 'info', message: `disk ${s.label}: new data ${mib(m.newRawBytes)}, compressed to ${Math.round(m.ratio * 100)} %, ${Math.round(m.highShare * 100)} % high-entropy (mean ${m.entropy.toFixed(2)} bits/byte)` });
  }
  for (const f of verdict.findings) {
    lines.push({ level: 'warn', message: `possible ransomware: ${f.message}; this restore point is marked a ransomware suspect and retention of the VM in this repository is held until an operator releases it` });
  }
  return { dataStats, verdict, lines };
}
