/**
 * Immutability the storage enforces (Backend.retention: S3 Object Lock in compliance mode).
 *
 * A restore point with `lockedUntil` is made undeletable in the storage itself before its manifest
 * appears: every pack holding one of its chunks (its own new packs and the older packs it shares by
 * deduplication), the index file of its session, its disk indexes, then the manifest, and the
 * repository's config (which holds the wrapped keys: without it nothing can be read). Retention only
 * grows, so a pack shared by several locked points stays locked until the last of their dates.
 *
 * Lock generations: each locked point would otherwise renew the lock of every pack it shares, one
 * request per pack (thousands for a large VM, hourly), although most were locked by its parent to a
 * date almost as late. So shared objects (packs and config) are locked a little longer than needed,
 * up to the end of a generation (`lockGeneration`: a tenth of the lock period, at most a week), and a
 * point whose parent's packs are locked past its own date leaves the parent's packs alone: only its
 * new packs are locked. A point's own files are locked to its exact date. The cost: a pack may stay
 * undeletable up to a generation longer than the points that need it.
 *
 * Garbage collection never tries to delete a locked object: a locked pack is kept as it is (not
 * repacked), and a locked index file is kept beside the new one (it only names locked packs, which
 * stay where it says).
 */
import { ImmutableError } from './errors.ts';
import { forEachReference, packPath, type BlobLocation, type DiskIndex } from './format.ts';
import type { Backend } from './backends/backend.ts';

/** Requests in flight while locking (one per object: S3 has no batch retention call). */
const LOCK_CONCURRENCY = 16;

/**
 * Refuses, before anything is written, a locked restore point the storage cannot make immutable
 * (a backend that says why it cannot, e.g. an S3 bucket created without Object Lock).
 */
export function assertCanLock(backend: Backend, lockedUntil: Date | null | undefined): void {
  if (lockedUntil && !backend.retention && backend.cannotLock) throw new ImmutableError(backend.cannotLock);
}

/** The packs that hold the chunks of these disk indexes (`locate` finds a chunk's place). */
export function packsOf(indexes: DiskIndex[], locate: (id: string) => BlobLocation | undefined): Set<string> {
  const packs = new Set<string>();
  for (const d of indexes) {
    forEachReference(d, (id) => {
      const loc = locate(id);
      if (loc) packs.add(loc.pack);
    });
  }
  return packs;
}

const WEEK_MS = 7 * 24 * 3600 * 1000;

/**
 * The date shared objects are locked to for a point locked until `until`: rounded up to a boundary of
 * a tenth of the lock period (at most a week), so points made within one generation lock to one date.
 */
export function lockGeneration(until: Date, now: number): Date {
  const generation = Math.min(WEEK_MS, Math.floor((until.getTime() - now) / 10));
  if (generation < 1) return until;
  return new Date(Math.ceil(until.getTime() / generation) * generation);
}

/** Locks `paths` until `until` (retention only grows), a few at a time. */
export async function lockAll(backend: Backend, paths: Iterable<string>, until: Date): Promise<void> {
  const retention = backend.retention;
  if (!retention) return;
  const queue = [...paths];
  const worker = async () => {
    for (let p = queue.shift(); p !== undefined; p = queue.shift()) await retention.lockUntil(p, until);
  };
  await Promise.all(Array.from({ length: Math.min(LOCK_CONCURRENCY, queue.length) }, worker));
}

/** Locks the packs of a restore point's chunks; its own files are locked by the caller as they are written. */
export async function lockPacks(backend: Backend, indexes: DiskIndex[], locate: (id: string) => BlobLocation | undefined, until: Date): Promise<void> {
  await lockAll(backend, [...packsOf(indexes, locate)].map(packPath), until);
}

/** Whether the storage refuses to delete `path` now. */
export async function isLocked(backend: Backend, path: string): Promise<boolean> {
  return backend.retention ? (await backend.retention.lockedUntil(path)) !== null : false;
}
