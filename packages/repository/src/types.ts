import type { ChangedDataStats } from './entropy.ts';

export interface WriteStats {
  /** Bytes handed to write()/markZero() by the caller. */
  receivedBytes: number;
  /** Chunks that went through hashing (new or deduplicated). */
  hashedChunks: number;
  newChunks: number;
  /** Uncompressed bytes of new chunks. */
  newRawBytes: number;
  /** Bytes of new chunks as stored (compressed, encrypted). */
  newStoredBytes: number;
  dedupedChunks: number;
  dedupedBytes: number;
  /** All-zero chunks stored as holes (never hashed). */
  zeroChunks: number;
  zeroBytes: number;
  /** Chunks taken by reference from the parent without reading them. */
  reusedChunks: number;
  reusedBytes: number;
  /** Partially changed chunks whose gaps were filled from the parent's data (read back). */
  mergedChunks: number;
  /** Chunks recorded as pieces (format v2): only their changed blocks were stored. */
  splitChunks: number;
  /** Stored bytes read back from the repository for merges. */
  baseReadBytes: number;
}

export function emptyStats(): WriteStats {
  return { receivedBytes: 0, hashedChunks: 0, newChunks: 0, newRawBytes: 0, newStoredBytes: 0, dedupedChunks: 0, dedupedBytes: 0, zeroChunks: 0, zeroBytes: 0, reusedChunks: 0, reusedBytes: 0, mergedChunks: 0, splitChunks: 0, baseReadBytes: 0 };
}

export function addStats(a: WriteStats, b: WriteStats): WriteStats {
  const out = emptyStats();
  for (const k of Object.keys(out) as (keyof WriteStats)[]) out[k] = a[k] + b[k];
  return out;
}

export interface DiskManifest {
  key: string;
  file: string;
  /** SHA-256 of the sealed disk index file: the manifest pins it. */
  indexSha256: string;
  capacity: number;
  chunkSize: number;
  format?: string | undefined;
  controller?: string | undefined;
  changeId?: string | undefined;
  transport?: string | undefined;
  mode: 'changed' | 'full';
  /** v1: SHA-256 over the chunk-id list (`chunklist-sha256-v1`); v2: over the disk-index payload (`didx-sha256-v2`). */
  imageDigest: string;
  /** Flat SHA-256 of the whole logical image, when the writer saw every byte in order (opt-in). */
  sha256?: string | undefined;
  stats: WriteStats;
  /** Compressibility and sampled entropy of this disk's new blobs (absent in manifests written before they were measured). */
  changedData?: ChangedDataStats | undefined;
  timings: { startedAt: string; closedAt: string; durationMs: number };
}

export interface Manifest {
  formatVersion: number;
  id: string;
  vmId: string;
  parent: string | null;
  createdAt: string;
  committedAt: string;
  lockedUntil: string | null;
  /**
   * Until when the storage locks the packs this point references and the config (immutability.ts:
   * `lockGeneration`, a little after `lockedUntil`); absent when nothing was locked or written before it.
   */
  packsLockedUntil?: string | undefined;
  transport?: string | undefined;
  /** Opaque VM description (hardware, name, ...) kept for restore. */
  vm: unknown;
  labels: Record<string, string>;
  disks: DiskManifest[];
  stats: WriteStats;
  timings: { startedAt: string; committedAt: string; durationMs: number };
}

export interface RestorePointRef {
  vmId: string;
  id: string;
}

/** Receives a disk's decoded extents in offset order (see DiskReader.forEachExtent). */
export type ExtentSink = (offset: number, data: Buffer, retain: (p: Promise<unknown>) => void) => void | Promise<void>;

/** A disk read as a sequence of decoded extents (DiskReader implements it). */
export interface ExtentSource {
  readonly capacity: number;
  readonly chunkSize: number;
  forEachExtent(sink: ExtentSink, runBytes?: number, fromChunk?: number): Promise<void>;
}
