/**
 * The ransomware signal: a restore point whose new data is suddenly incompressible and high-entropy,
 * compared with what the same VM's recent restore points stored, is anomalous. Encrypting files in a guest
 * turns compressible changes (text, databases, binaries) into random-looking ones; a VM that always writes
 * media or encrypted volumes has that as its baseline and raises nothing.
 *
 * Judged per disk, and only when the change is meaningful: a first backup, a disk without enough history,
 * or a handful of changed megabytes never raise it (a few high-entropy blobs — a swap file, an update
 * archive — are ordinary). The statistics come from the repository's writer (entropy.ts there).
 */
import type { ChangedDataStats } from '@vaultline/repository';

export interface DiskDataStats extends ChangedDataStats {
  /** Disk device key, as in the manifest: history is matched by it. */
  key: string;
  label: string;
}

export interface AnomalyThresholds {
  /** New raw bytes a disk must have stored in this point for it to be judged. */
  minNewBytes: number;
  /** Earlier points with new data on that disk needed for a baseline. */
  minHistory: number;
  /** Share of the new data that must be high-entropy (0..1). */
  minHighShare: number;
  /** Rise of that share over the baseline (0..1). */
  minShareRise: number;
  /** Rise of compressed/raw over the baseline (0..1): the data must also have become less compressible. */
  minRatioRise: number;
}

export const DEFAULT_ANOMALY_THRESHOLDS: AnomalyThresholds = {
  minNewBytes: 16 * 1024 * 1024,
  minHistory: 2,
  minHighShare: 0.6,
  minShareRise: 0.4,
  minRatioRise: 0.3,
};

/** How many earlier points of the VM in the repository the baseline is taken from. */
export const ANOMALY_HISTORY_DEPTH = 5;

export interface DataSummary {
  newRawBytes: number;
  /** Share of new raw bytes whose sample was high-entropy. */
  highShare: number;
  /** Stored (compressed) bytes over raw bytes of the new data. */
  ratio: number;
  /** Mean sampled entropy, bits per byte. */
  entropy: number;
}

export function summarise(s: ChangedDataStats): DataSummary {
  return {
    newRawBytes: s.newRawBytes,
    highShare: s.newRawBytes > 0 ? s.highEntropyBytes / s.newRawBytes : 0,
    ratio: s.newRawBytes > 0 ? s.newStoredBytes / s.newRawBytes : 0,
    entropy: s.sampledBytes > 0 ? s.entropyBits / s.sampledBytes : 0,
  };
}

export interface DiskFinding {
  key: string;
  label: string;
  current: DataSummary;
  /** Medians over the earlier points that stored new data on this disk. */
  baseline: { points: number; highShare: number; ratio: number; entropy: number };
  /** What was measured against what, for the run log and the restore point. */
  message: string;
}

export interface AnomalyVerdict {
  anomalous: boolean;
  /** The disks that crossed the thresholds. */
  findings: DiskFinding[];
  /** Disks not judged, and why (first backup, too little new data): for the run log at info level. */
  notJudged: string[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const pct = (x: number) => `${Math.round(x * 100)} %`;
const mib = (n: number) => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0)} MiB`;

function checkStats(s: DiskDataStats, where: string): void {
  for (const k of ['newRawBytes', 'newStoredBytes', 'sampledBytes', 'entropyBits', 'highEntropyBytes'] as const) {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`${where}: disk ${s.key} has an invalid ${k} (${String(v)})`);
  }
  if (s.highEntropyBytes > s.newRawBytes) throw new TypeError(`${where}: disk ${s.key} has more high-entropy bytes (${s.highEntropyBytes}) than new bytes (${s.newRawBytes})`);
  if (s.sampledBytes > 0 && s.entropyBits > 8 * s.sampledBytes) throw new TypeError(`${where}: disk ${s.key} has more than 8 bits of entropy per sampled byte`);
}

function checkThresholds(t: AnomalyThresholds): void {
  for (const [k, v] of Object.entries(t)) if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`anomaly threshold ${k} must be a non-negative number, not ${String(v)}`);
  for (const k of ['minHighShare', 'minShareRise', 'minRatioRise'] as const) if (t[k] > 1) throw new TypeError(`anomaly threshold ${k} is a share and must be at most 1, not ${t[k]}`);
  if (!Number.isInteger(t.minHistory) || t.minHistory < 1) throw new TypeError(`anomaly threshold minHistory must be a positive integer, not ${t.minHistory}`);
}

/**
 * Judges this point's per-disk statistics against `history`: the same VM's earlier points in the same
 * repository, newest first, each with its disks' statistics (points measured before the signal existed
 * carry none and are skipped by the caller or here, as empty lists).
 */
export function assessChangedData(current: DiskDataStats[], history: DiskDataStats[][], thresholds: Partial<AnomalyThresholds> = {}): AnomalyVerdict {
  const t = { ...DEFAULT_ANOMALY_THRESHOLDS, ...thresholds };
  checkThresholds(t);
  current.forEach((s) => checkStats(s, 'this restore point'));
  history.forEach((p, i) => p.forEach((s) => checkStats(s, `earlier restore point ${i + 1}`)));
  const verdict: AnomalyVerdict = { anomalous: false, findings: [], notJudged: [] };
  for (const disk of current) {
    const cur = summarise(disk);
    if (cur.newRawBytes < t.minNewBytes) {
      verdict.notJudged.push(`disk ${disk.label}: ${mib(cur.newRawBytes)} of new data, below the ${mib(t.minNewBytes)} judged`);
      continue;
    }
    const earlier = history
      .map((p) => p.find((s) => s.key === disk.key))
      .filter((s): s is DiskDataStats => s !== undefined && s.newRawBytes > 0 && s.sampledBytes > 0)
      .map(summarise);
    if (earlier.length < t.minHistory) {
      verdict.notJudged.push(`disk ${disk.label}: ${earlier.length} earlier restore point(s) with measured new data, ${t.minHistory} needed for a baseline`);
      continue;
    }
    const baseline = { points: earlier.length, highShare: median(earlier.map((e) => e.highShare)), ratio: median(earlier.map((e) => e.ratio)), entropy: median(earlier.map((e) => e.entropy)) };
    const jumped = cur.highShare >= t.minHighShare && cur.highShare - baseline.highShare >= t.minShareRise && cur.ratio - baseline.ratio >= t.minRatioRise;
    if (!jumped) continue;
    verdict.findings.push({
      key: disk.key,
      label: disk.label,
      current: cur,
      baseline,
      message:
        `disk ${disk.label}: ${pct(cur.highShare)} of ${mib(cur.newRawBytes)} of new data is high-entropy (mean ${cur.entropy.toFixed(2)} bits/byte) ` +
        `and it compressed to ${pct(cur.ratio)} of its size, against ${pct(baseline.highShare)} high-entropy (${baseline.entropy.toFixed(2)} bits/byte) ` +
        `compressing to ${pct(baseline.ratio)} over the last ${baseline.points} restore point(s) (medians)`,
    });
  }
  verdict.anomalous = verdict.findings.length > 0;
  return verdict;
}
