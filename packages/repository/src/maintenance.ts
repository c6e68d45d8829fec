/**
 * Maintenance: verify, delete/prune, GC, stats.
 *
 * GC is mark-and-sweep under an EXCLUSIVE lock (backups hold shared locks, so
 * none runs while GC sweeps):
 *   mark:  read every visible manifest and disk index; if ANY cannot be read,
 *          GC stops without deleting anything (never sweep on partial knowledge).
 *   sweep: packs whose blobs are all unreferenced are deleted; packs with more
 *          than `repackThreshold` dead bytes are repacked (live blobs copied as
 *          stored bytes into new packs). The new index is written durably
 *          BEFORE the old index files and packs are removed, so a crash leaves
 *          duplicates, never a dangling reference.
 *   grace: files nobody references (packs from a running or killed writer, tmp
 *          files, restore-point directories without a manifest) are removed only
 *          once older than `graceMs`, a second guard besides the lock.
 * Immutability: a restore point whose `lockedUntil` is in the future cannot be
 * deleted through this API, by anyone; there is no override.
 */
import * as crypto from 'node:crypto';
import { isTmpName } from './backends/backend.ts';
import { SealedKind, encodeIndex, encodePackFooter, forEachReference, packPath } from './format.ts';
import type { BlobLocation, DiskIndex, PackEntry } from './format.ts';
import { ImmutableError, LockedError, RepositoryError } from './errors.ts';
import type { Repository } from './repository.ts';
import { sealFor } from './repository.ts';
import { isLocked } from './immutability.ts';
import { planRetention } from './retention.ts';
import type { RetentionPolicy, RetentionDecision, RetentionCandidate } from './retention.ts';
import type { Manifest, RestorePointRef } from './types.ts';

export interface AffectedRef {
  vmId: string;
  id: string;
  disk: string;
  offsets: number[];
}

export interface VerifyProblem {
  chunk: string;
  reason: string;
  restorePoints: AffectedRef[];
}

export interface VerifyReport {
  ok: boolean;
  mode: 'full' | 'sample';
  restorePoints: number;
  chunksReferenced: number;
  chunksChecked: number;
  bytesChecked: number;
  damagedChunks: VerifyProblem[];
  /** Restore points whose manifest or disk index is unreadable/truncated. */
  brokenRestorePoints: Array<{ vmId: string; id: string; reason: string }>;
  /** Informational: leftovers of killed writers (not errors; GC collects them). */
  unreferencedPacks: number;
  incompleteRestorePoints: number;
}

interface Mark {
  refs: Map<string, AffectedRef[]>;
  /** Per referenced blob: the most plaintext bytes any reference needs (must not exceed its raw length). */
  needs: Map<string, number>;
  broken: Array<{ vmId: string; id: string; reason: string }>;
  manifests: Array<{ ref: RestorePointRef; manifest: Manifest }>;
}

async function mark(repo: Repository): Promise<Mark> {
  const refs = new Map<string, AffectedRef[]>();
  const needs = new Map<string, number>();
  const broken: Mark['broken'] = [];
  const manifests: Mark['manifests'] = [];
  for (const ref of await repo.listRestorePoints()) {
    let manifest: Manifest;
    try {
      manifest = await repo.readManifest(ref);
    } catch (err) {
      broken.push({ ...ref, reason: (err as Error).message });
      continue;
    }
    manifests.push({ ref, manifest });
    for (const d of manifest.disks) {
      let index: DiskIndex;
      try {
        index = await repo.readDiskIndex(ref, d.key, manifest);
      } catch (err) {
        broken.push({ ...ref, reason: `disk ${d.key}: ${(err as Error).message}` });
        continue;
      }
      const perChunk = new Map<string, AffectedRef>();
      forEachReference(index, (id, offset, need) => {
        if (need > (needs.get(id) ?? 0)) needs.set(id, need);
        let a = perChunk.get(id);
        if (!a) {
          a = { vmId: ref.vmId, id: ref.id, disk: d.key, offsets: [] };
          perChunk.set(id, a);
          const l = refs.get(id) ?? [];
          l.push(a);
          refs.set(id, l);
        }
        if (a.offsets.length < 16) a.offsets.push(offset);
      });
    }
  }
  return { refs, needs, broken, manifests };
}

export interface VerifyOptions {
  /** Fraction of referenced chunks to re-hash (default 1 = full verify). */
  sample?: number;
  seed?: number;
}

export async function verify(repo: Repository, opts: VerifyOptions = {}): Promise<VerifyReport> {
  await repo.reloadIndex();
  const { refs, needs, broken } = await mark(repo);
  const sample = opts.sample ?? 1;
  const damaged: VerifyProblem[] = [];
  const rawBuf = Buffer.allocUnsafe(repo.config.chunkSize);
  const scratch = Buffer.allocUnsafe(repo.config.chunkSize + 8192);
  let checked = 0;
  let bytes = 0;
  let rng = opts.seed ?? 0x9e3779b9;
  const rand = () => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return (rng >>> 0) / 0x100000000;
  };
  const packSizes = new Map<string, number | null>();
  for (const [id, affected] of refs) {
    const loc = repo.index.get(id);
    if (!loc) {
      damaged.push({ chunk: id, reason: 'missing from the index', restorePoints: affected });
      continue;
    }
    if ((needs.get(id) ?? 0) > loc.rawLen) {
      damaged.push({ chunk: id, reason: `referenced for ${needs.get(id)} bytes but holds ${loc.rawLen}`, restorePoints: affected });
      continue;
    }
    if (!packSizes.has(loc.pack)) packSizes.set(loc.pack, (await repo.backend.stat(packPath(loc.pack)))?.size ?? null);
    const size = packSizes.get(loc.pack);
    if (size == null) {
      damaged.push({ chunk: id, reason: `pack ${loc.pack} is missing`, restorePoints: affected });
      continue;
    }
    if (size < loc.offset + loc.storedLen) {
      damaged.push({ chunk: id, reason: `pack ${loc.pack} is truncated`, restorePoints: affected });
      continue;
    }
    if (sample < 1 && rand() >= sample) continue;
    try {
      const { stored } = await repo.readStored(id, scratch);
      const n = repo.decode(stored, id, loc.rawLen, rawBuf, `chunk ${id}`, false);
      const got = repo.hashChunk(rawBuf.subarray(0, n));
      if (got !== id) throw new Error('content hash mismatch');
      checked++;
      bytes += n;
    } catch (err) {
      damaged.push({ chunk: id, reason: (err as Error).message, restorePoints: affected });
    }
  }
  const referencedPacks = new Set([...repo.index.values()].map((l) => l.pack));
  let unreferencedPacks = 0;
  for (const dir of await repo.backend.list('packs')) {
    for (const name of await repo.backend.list(`packs/${dir}`)) {
      if (isTmpName(name) || !referencedPacks.has(name.replace(/\.pack$/, ''))) unreferencedPacks++;
    }
  }
  let incomplete = 0;
  for (const vm of await repo.listVms()) {
    for (const id of await repo.backend.list(`snapshots/${vm}`)) if (!(await repo.backend.stat(`snapshots/${vm}/${id}/manifest`))) incomplete++;
  }
  return {
    ok: damaged.length === 0 && broken.length === 0,
    mode: sample < 1 ? 'sample' : 'full',
    restorePoints: (await repo.listRestorePoints()).length,
    chunksReferenced: refs.size,
    chunksChecked: checked,
    bytesChecked: bytes,
    damagedChunks: damaged,
    brokenRestorePoints: broken,
    unreferencedPacks,
    incompleteRestorePoints: incomplete,
  };
}

/** Delete one restore point (manifest first: it disappears atomically). Refuses while immutable. */
export async function deleteRestorePoint(repo: Repository, ref: RestorePointRef): Promise<void> {
  const m = await repo.readManifest(ref);
  if (m.lockedUntil && Date.parse(m.lockedUntil) > repo.now()) {
    throw new ImmutableError(`restore point ${ref.vmId}/${ref.id} is immutable until ${m.lockedUntil}`);
  }
  const dir = repo.rpDir(ref);
  await repo.backend.remove(`${dir}/manifest`);
  for (const name of await repo.backend.list(dir)) await repo.backend.remove(`${dir}/${name}`);
  await repo.backend.removeDir(dir);
}

export interface PruneCandidate extends RetentionCandidate {
  ref: RestorePointRef;
}

/** Apply a GFS policy per VM. Immutable points are kept whatever the policy says. */
export async function prune(repo: Repository, policy: RetentionPolicy, opts: { vmId?: string; dryRun?: boolean } = {}): Promise<Map<string, RetentionDecision<PruneCandidate>>> {
  const out = new Map<string, RetentionDecision<PruneCandidate>>();
  const lock = await repo.locks.acquire('shared', 'prune');
  try {
    const vms = opts.vmId ? [opts.vmId] : await repo.listVms();
    for (const vm of vms) {
      const cands: PruneCandidate[] = [];
      for (const ref of await repo.listRestorePoints(vm)) {
        const m = await repo.readManifest(ref);
        cands.push({ id: ref.id, ref, time: new Date(m.createdAt), lockedUntil: m.lockedUntil ? new Date(m.lockedUntil) : null });
      }
      const plan = planRetention(cands, policy, new Date(repo.now()));
      out.set(vm, plan);
      if (!opts.dryRun) for (const p of plan.prune) await deleteRestorePoint(repo, p.ref);
    }
  } finally {
    await lock.release();
  }
  return out;
}

export interface GcOptions {
  /** Unreferenced files younger than this are kept (default 24 h). */
  graceMs?: number;
  /** Repack a pack when this fraction of its bytes is dead (default 0.3). */
  repackThreshold?: number;
}

export interface GcReport {
  liveChunks: number;
  deletedPacks: number;
  repackedPacks: number;
  deletedBytes: number;
  removedLeftovers: number;
  /** Packs and files GC left in place because the storage locks them (Object Lock) past now. */
  lockedKept: number;
}

export async function gc(repo: Repository, opts: GcOptions = {}): Promise<GcReport> {
  const graceMs = opts.graceMs ?? 24 * 3600_000;
  const threshold = opts.repackThreshold ?? 0.3;
  const lock = await repo.locks.acquire('exclusive', 'gc');
  const report: GcReport = { liveChunks: 0, deletedPacks: 0, repackedPacks: 0, deletedBytes: 0, removedLeftovers: 0, lockedKept: 0 };
  try {
    await repo.reloadIndex();
    const { refs, broken } = await mark(repo);
    if (broken.length > 0) throw new RepositoryError('CORRUPT', `GC refused: ${broken.length} restore point(s) unreadable (${broken[0]!.vmId}/${broken[0]!.id}: ${broken[0]!.reason}); run verify`);
    report.liveChunks = refs.size;
    const be = repo.backend;
    const now = repo.now();
    // Per pack: live and total stored bytes.
    const packs = new Map<string, { live: Array<[string, BlobLocation]>; liveBytes: number; totalBytes: number }>();
    for (const [id, loc] of repo.index) {
      const p = packs.get(loc.pack) ?? { live: [], liveBytes: 0, totalBytes: 0 };
      p.totalBytes += loc.storedLen;
      if (refs.has(id)) {
        p.live.push([id, loc]);
        p.liveBytes += loc.storedLen;
      }
      packs.set(loc.pack, p);
    }
    const keepIndex = new Map<string, BlobLocation>();
    const toDelete: string[] = [];
    let changed = false;
    let fw: Awaited<ReturnType<typeof be.openWriter>> | null = null;
    let packId = '';
    let entries: PackEntry[] = [];
    const newPacks: string[] = [];
    const finishPack = async () => {
      if (!fw) return;
      await fw.write(encodePackFooter(entries));
      await fw.commit();
      newPacks.push(packId);
      fw = null;
    };
    // What the storage locks is neither deleted nor repacked: it stays as it is, live chunks and all.
    const keepLocked = async (pack: string, p: { live: Array<[string, BlobLocation]> }) => {
      if (!(await isLocked(be, packPath(pack)))) return false;
      for (const [id, loc] of p.live) if (!keepIndex.has(id)) keepIndex.set(id, loc);
      report.lockedKept++;
      return true;
    };
    /** Removes `path` unless the storage locks it (then counts it as kept); true when removed. */
    const removeUnlessLocked = async (path: string) => {
      try {
        await be.remove(path);
        return true;
      } catch (err) {
        if (!(err instanceof ImmutableError)) throw err;
        report.lockedKept++;
        return false;
      }
    };
    for (const [pack, p] of packs) {
      const dead = p.totalBytes - p.liveBytes;
      if (dead > 0 && (p.live.length === 0 || dead / p.totalBytes > threshold) && (await keepLocked(pack, p))) {
        changed = true; // its dead chunks leave the index
        continue;
      }
      if (p.live.length === 0) {
        toDelete.push(pack);
        changed = true;
        continue;
      }
      if (dead / p.totalBytes <= threshold) {
        for (const [id, loc] of p.live) if (!keepIndex.has(id)) keepIndex.set(id, loc);
        continue;
      }
      changed = true;
      report.repackedPacks++;
      for (const [id, loc] of p.live) {
        if (keepIndex.has(id)) continue;
        const { stored } = await repo.readStored(id);
        if (!fw) {
          packId = crypto.randomBytes(16).toString('hex');
          fw = await be.openWriter(packPath(packId));
          entries = [];
        }
        const w = fw as NonNullable<typeof fw>;
        const offset = w.size;
        await w.write(stored);
        entries.push({ id: Buffer.from(id, 'hex'), offset, storedLen: stored.length, rawLen: loc.rawLen });
        keepIndex.set(id, { pack: packId, offset, storedLen: stored.length, rawLen: loc.rawLen });
        if (w.size >= repo.config.packTargetSize) await finishPack();
      }
      toDelete.push(pack);
    }
    await finishPack();
    if (changed) {
      const oldFiles = [...repo.indexFiles];
      await be.writeFileAtomic(`index/gc-${now}-${crypto.randomBytes(4).toString('hex')}.idx`, sealFor(repo, SealedKind.Index, encodeIndex(keepIndex)));
      // A locked index file stays beside the new one: it names only chunks of locked packs, which stay too.
      for (const f of oldFiles) await removeUnlessLocked(`index/${f}`);
      for (const pack of toDelete) {
        const size = (await be.stat(packPath(pack)))?.size ?? 0;
        if (!(await removeUnlessLocked(packPath(pack)))) continue;
        report.deletedBytes += size;
        report.deletedPacks++;
      }
    }
    await repo.reloadIndex();
    // Leftovers older than the grace period.
    const indexed = new Set([...repo.index.values()].map((l) => l.pack));
    const old = async (p: string) => {
      const st = await be.stat(p);
      return st !== null && now - st.mtimeMs > graceMs;
    };
    for (const dir of await be.list('packs')) {
      for (const name of await be.list(`packs/${dir}`)) {
        const p = `packs/${dir}/${name}`;
        if ((isTmpName(name) || !indexed.has(name.replace(/\.pack$/, ''))) && (await old(p))) {
          const size = (await be.stat(p))?.size ?? 0;
          if (!(await removeUnlessLocked(p))) continue;
          report.deletedBytes += size;
          report.removedLeftovers++;
        }
      }
    }
    for (const name of await be.list('index')) if (isTmpName(name) && (await old(`index/${name}`))) await removeUnlessLocked(`index/${name}`);
    for (const vm of await repo.listVms()) {
      for (const id of await be.list(`snapshots/${vm}`)) {
        const dir = `snapshots/${vm}/${id}`;
        if (await be.stat(`${dir}/manifest`)) {
          for (const n of await be.list(dir)) if (isTmpName(n) && (await old(`${dir}/${n}`))) await removeUnlessLocked(`${dir}/${n}`);
          continue;
        }
        const names = await be.list(dir);
        const ages = await Promise.all(names.map((n) => old(`${dir}/${n}`)));
        if (ages.every(Boolean)) {
          let all = true;
          for (const n of names) all = (await removeUnlessLocked(`${dir}/${n}`)) && all;
          if (!all) continue;
          await be.removeDir(dir);
          report.removedLeftovers++;
        }
      }
      await be.removeDir(`snapshots/${vm}`);
    }
    return report;
  } finally {
    await lock.release();
  }
}

export interface RepositoryStats {
  restorePoints: number;
  logicalBytes: number;
  /** Unique chunk bytes before compression. */
  uniqueRawBytes: number;
  storedBytes: number;
  dedupRatio: number;
  compressionRatio: number;
  perRestorePoint: Array<{ vmId: string; id: string; createdAt: string; logicalBytes: number; newStoredBytes: number; newRawBytes: number }>;
}

export async function stats(repo: Repository): Promise<RepositoryStats> {
  await repo.reloadIndex();
  const { refs, manifests } = await mark(repo);
  let logical = 0;
  let nonZeroLogical = 0;
  const per: RepositoryStats['perRestorePoint'] = [];
  for (const { ref, manifest } of manifests) {
    const l = manifest.disks.reduce((a, d) => a + d.capacity, 0);
    logical += l;
    nonZeroLogical += manifest.disks.reduce((a, d) => a + d.capacity - d.stats.zeroBytes, 0);
    per.push({ ...ref, createdAt: manifest.createdAt, logicalBytes: l, newStoredBytes: manifest.stats.newStoredBytes, newRawBytes: manifest.stats.newRawBytes });
  }
  let raw = 0;
  let stored = 0;
  for (const id of refs.keys()) {
    const loc = repo.index.get(id);
    if (!loc) continue;
    raw += loc.rawLen;
    stored += loc.storedLen;
  }
  return {
    restorePoints: manifests.length,
    logicalBytes: logical,
    uniqueRawBytes: raw,
    storedBytes: stored,
    dedupRatio: raw > 0 ? nonZeroLogical / raw : 1,
    compressionRatio: stored > 0 ? raw / stored : 1,
    perRestorePoint: per,
  };
}

export { LockedError };
