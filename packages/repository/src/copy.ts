/**
 * Copying a restore point from one repository to another (a backup copy, issue #17): the target gets a
 * complete restore point of its own, written through its own writer, so it deduplicates against what the
 * target already holds, compresses and encrypts with the target's settings and keys (chunk ids of an
 * encrypted repository are keyed, so blobs cannot be moved as they are between repositories).
 *
 * Incremental: given a `base` (an earlier point of the same VM already copied, by its ref in both
 * repositories), only the chunks whose id differs between the base and the point in the source are read
 * and written; the rest is taken from the base's copy by reference, as a CBT incremental takes it from
 * its parent. The source repository is only read.
 */
import { DiskReader } from './disk-reader.ts';
import { RepositoryError } from './errors.ts';
import type { Repository } from './repository.ts';
import { RestorePointWriter } from './restore-point-writer.ts';
import type { DiskManifest, Manifest, RestorePointRef, WriteStats } from './types.ts';

export interface CopyOptions {
  /** The newest point of this VM copied earlier: its ref in the source and that of its copy in the target. */
  base?: { source: RestorePointRef; target: RestorePointRef } | null;
  /** Labels added to the source's (the copy also records where it came from: see COPY_LABELS). */
  labels?: Record<string, string>;
  /** Immutability of the copy in the target (its own; the source's lock is not carried over). */
  lockedUntil?: Date | null;
  /** Called after each run of chunks is written: bytes of the source read so far, of `toRead`. */
  onProgress?: (p: { readBytes: number; toRead: number }) => void;
  /** Checked between runs of chunks: a copy that should stop throws this error (the target keeps nothing). */
  isCancelled?: () => Error | null;
}

/** Labels every copy carries: the source point's id and creation time (retention of copies counts from it). */
export const COPY_LABELS = { sourceId: 'copy.sourceId', sourceCreatedAt: 'copy.sourceCreatedAt' } as const;

export interface CopyResult {
  manifest: Manifest;
  /** Logical bytes read from the source (changed chunks only, when there is a base). */
  readBytes: number;
  /** Logical bytes the copy holds, holes excluded. */
  dataBytes: number;
  /** Whether the base was used (false: every chunk was read). */
  incremental: boolean;
  stats: WriteStats;
}

/** Runs of consecutive chunk indexes [first, last] of at most `max` chunks. */
function runsOf(chunks: number[], max: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const ci of chunks) {
    const last = out[out.length - 1];
    if (last && last[1] === ci - 1 && ci - last[0] < max) last[1] = ci;
    else out.push([ci, ci]);
  }
  return out;
}

/** Whether chunk `ci` holds the same data in both readers (same id, and for split chunks the same pieces). */
function sameChunk(a: DiskReader, b: DiskReader, ci: number): boolean {
  if (a.chunkId(ci) !== b.chunkId(ci)) return false;
  const pa = a.piecesOf(ci);
  const pb = b.piecesOf(ci);
  if (!pa && !pb) return true;
  return JSON.stringify(pa ?? null) === JSON.stringify(pb ?? null);
}

/**
 * Copies restore point `ref` of `source` into `target`; returns the copy's manifest. On any failure the
 * target keeps nothing of it (the writer is aborted) and the source is untouched.
 */
export async function copyRestorePoint(source: Repository, target: Repository, ref: RestorePointRef, opts: CopyOptions = {}): Promise<CopyResult> {
  const manifest = await source.readManifest(ref);
  let base = opts.base ?? null;
  let baseManifest: Manifest | null = null;
  if (base) {
    if (base.source.vmId !== ref.vmId || base.target.vmId !== ref.vmId) throw new RepositoryError('INVALID_ARGUMENT', `the base of a copy of ${ref.vmId}/${ref.id} must be a point of the same VM`);
    // A base whose copy is gone from the target (pruned, say) is no base: the copy reads everything.
    const [inSource, inTarget] = await Promise.all([source.readManifest(base.source).catch(() => null), target.readManifest(base.target).catch(() => null)]);
    if (inSource && inTarget) baseManifest = inSource;
    else base = null;
  }
  const writer = await RestorePointWriter.open(target, {
    vmId: ref.vmId,
    parent: base?.target ?? null,
    vm: manifest.vm,
    ...(manifest.transport ? { transport: manifest.transport } : {}),
    labels: { ...manifest.labels, ...opts.labels, [COPY_LABELS.sourceId]: ref.id, [COPY_LABELS.sourceCreatedAt]: manifest.createdAt },
    lockedUntil: opts.lockedUntil ?? null,
  });
  let readBytes = 0;
  let dataBytes = 0;
  let incremental = base !== null;
  const readers: DiskReader[] = [];
  try {
    // What to read of each disk: its chunks that differ from the base's (all of its data without a base).
    const plans: Array<{ disk: DiskManifest; reader: DiskReader; changed: number[]; zeroed: number[]; useBase: boolean }> = [];
    for (const disk of manifest.disks) {
      const reader = await DiskReader.open(source, ref, disk.key);
      readers.push(reader);
      const baseDisk = baseManifest?.disks.find((d) => d.key === disk.key && d.capacity === disk.capacity && d.chunkSize === disk.chunkSize);
      const baseReader = base && baseDisk ? await DiskReader.open(source, base.source, disk.key) : null;
      if (baseReader) readers.push(baseReader);
      else incremental = false;
      const changed: number[] = [];
      const zeroed: number[] = [];
      for (let ci = 0; ci < reader.count; ci++) {
        if (reader.isHole(ci)) {
          if (baseReader && !baseReader.isHole(ci)) zeroed.push(ci); // zero now, data in the base
          continue;
        }
        dataBytes += reader.chunkLen(ci);
        if (!baseReader || !sameChunk(reader, baseReader, ci)) changed.push(ci);
      }
      plans.push({ disk, reader, changed, zeroed, useBase: baseReader !== null });
    }
    const toRead = plans.reduce((a, p) => a + p.changed.reduce((s, ci) => s + p.reader.chunkLen(ci), 0), 0);
    for (const { disk, reader, changed, zeroed, useBase } of plans) {
      const out = await writer.openDisk({
        key: disk.key,
        capacity: disk.capacity,
        mode: useBase ? 'changed' : 'full',
        ...(disk.format ? { format: disk.format } : {}),
        ...(disk.controller ? { controller: disk.controller } : {}),
        ...(disk.changeId ? { changeId: disk.changeId } : {}),
        ...(disk.transport ? { transport: disk.transport } : {}),
      });
      const cs = reader.chunkSize;
      for (const [first, last] of runsOf(zeroed, Number.MAX_SAFE_INTEGER)) await out.markZero(first * cs, (last - first) * cs + reader.chunkLen(last));
      // Runs of up to 32 chunks (8 MiB at 256 KiB), each read straight into the writer's chunk slots.
      for (const [first, last] of runsOf(changed, 32)) {
        const stop = opts.isCancelled?.();
        if (stop) throw stop;
        const length = (last - first) * cs + reader.chunkLen(last);
        await out.writeFrom(first * cs, length, async (into, at) => {
          await reader.read(at, into.length, into);
        });
        readBytes += length;
        opts.onProgress?.({ readBytes, toRead });
      }
    }
    const copied = await writer.commit();
    return { manifest: copied, readBytes, dataBytes, incremental, stats: copied.stats };
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err;
  } finally {
    for (const r of readers) r.close();
  }
}
