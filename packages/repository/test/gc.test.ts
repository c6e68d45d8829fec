import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ImmutableError, LockedError, Repository, deleteRestorePoint, gc, openDiskReader, openRestorePointWriter, prune, stats, verify } from '../src/index.ts';
import type { Manifest } from '../src/index.ts';
import { makeImage, mutate, sha256, tmpDir } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function fresh(opts: { now?: () => number } = {}): Promise<{ root: string; repo: Repository }> {
  const root = tmpDir();
  dirs.push(root);
  await Repository.init(root, { chunkSize: 64 * 1024, packTargetSize: 256 * 1024 });
  return { root, repo: await Repository.open(root, { ...opts, locks: { waitMs: 0 } }) };
}

async function full(repo: Repository, vmId: string, img: Buffer, extra: { lockedUntil?: Date } = {}): Promise<Manifest> {
  const w = await openRestorePointWriter(repo, { vmId, ...extra });
  await (await w.openDisk({ key: 'd0', capacity: img.length })).write(0, img);
  return w.commit();
}

async function contents(repo: Repository, vmId: string, id: string): Promise<string> {
  const r = await openDiskReader(repo, { vmId, id }, 'd0');
  return sha256(await r.read(0, r.capacity));
}

describe('locks, GC, immutability', () => {
  it('concurrent writers and GC: GC waits for running backups, then sweeps only garbage; nothing is lost', async () => {
    const { root, repo } = await fresh();
    const imgs = [makeImage(1024 * 1024, 1), makeImage(1024 * 1024, 2), makeImage(1024 * 1024, 3)];
    const old = await full(repo, 'vm-old', makeImage(1024 * 1024, 50));
    const keep = await full(repo, 'vm-0', imgs[0]!);
    // Two writers in flight at once, sharing the repository (and a chunk-identical image for dedup).
    const wa = await openRestorePointWriter(repo, { vmId: 'vm-1' });
    const wb = await openRestorePointWriter(repo, { vmId: 'vm-2' });
    const da = await wa.openDisk({ key: 'd0', capacity: imgs[1]!.length });
    const db = await wb.openDisk({ key: 'd0', capacity: imgs[2]!.length });
    await da.write(0, imgs[1]!.subarray(0, 512 * 1024));
    await db.write(0, imgs[2]!.subarray(0, 512 * 1024));
    await deleteRestorePoint(repo, { vmId: 'vm-old', id: old.id });
    // GC cannot start while backups hold their shared locks.
    await expect(gc(repo, { graceMs: 0 })).rejects.toBeInstanceOf(LockedError);
    // A second repository handle (another process would look the same) sees the locks too.
    const other = await Repository.open(root, { locks: { waitMs: 0 } });
    await expect(gc(other, { graceMs: 0 })).rejects.toBeInstanceOf(LockedError);
    await da.write(512 * 1024, imgs[1]!.subarray(512 * 1024));
    await db.write(512 * 1024, imgs[2]!.subarray(512 * 1024));
    const ma = await wa.commit();
    const mb = await wb.commit();
    const before = await stats(repo);
    const report = await gc(repo, { graceMs: 0 });
    expect(report.deletedPacks + report.repackedPacks).toBeGreaterThan(0);
    const after = await stats(repo);
    expect(after.storedBytes).toBeLessThanOrEqual(before.storedBytes);
    expect(await contents(repo, 'vm-0', keep.id)).toBe(sha256(imgs[0]!));
    expect(await contents(repo, 'vm-1', ma.id)).toBe(sha256(imgs[1]!));
    expect(await contents(repo, 'vm-2', mb.id)).toBe(sha256(imgs[2]!));
    const v = await verify(repo);
    expect(v.ok).toBe(true);
    expect(v.unreferencedPacks).toBe(0);
    // Incrementals still work after GC rewrote the index.
    mutate(imgs[0]!, 3, 4);
    const w = await openRestorePointWriter(repo, { vmId: 'vm-0', parent: { vmId: 'vm-0', id: keep.id } });
    const d = await w.openDisk({ key: 'd0', capacity: imgs[0]!.length, mode: 'full' });
    await d.write(0, imgs[0]!);
    const m2 = await w.commit();
    expect(await contents(repo, 'vm-0', m2.id)).toBe(sha256(imgs[0]!));
    await other.close();
    await repo.close();
  });

  it('GC keeps unreferenced packs younger than the grace period (a running or crashed writer) and removes them after', async () => {
    let now = Date.now();
    const { root, repo } = await fresh({ now: () => now });
    await full(repo, 'vm-g', makeImage(512 * 1024, 9));
    // Simulate a writer killed after writing a pack: an unindexed pack file.
    const orphan = path.join(root, 'packs', 'ab', `ab${'0'.repeat(30)}.pack`);
    fs.mkdirSync(path.dirname(orphan), { recursive: true });
    fs.writeFileSync(orphan, Buffer.alloc(1000, 1));
    await gc(repo, { graceMs: 3600_000 });
    expect(fs.existsSync(orphan)).toBe(true);
    now += 2 * 3600_000;
    const r = await gc(repo, { graceMs: 3600_000 });
    expect(fs.existsSync(orphan)).toBe(false);
    expect(r.removedLeftovers).toBe(1);
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  });

  it('stale locks (dead pid on this host, or expired heartbeat) are detected and removed', async () => {
    const { root, repo } = await fresh();
    const dead = { id: 'shared-dead', kind: 'shared', purpose: 'backup', pid: 2 ** 22 + 12345, host: os.hostname(), createdAt: Date.now(), heartbeatAt: Date.now() };
    fs.writeFileSync(path.join(root, 'locks', 'shared-dead.lock'), JSON.stringify(dead));
    const expired = { ...dead, id: 'shared-old', pid: 1, host: 'elsewhere', heartbeatAt: Date.now() - 3600_000 };
    fs.writeFileSync(path.join(root, 'locks', 'shared-old.lock'), JSON.stringify(expired));
    const live = { ...dead, id: 'shared-live', pid: 1, host: 'elsewhere', heartbeatAt: Date.now() };
    fs.writeFileSync(path.join(root, 'locks', 'shared-live.lock'), JSON.stringify(live));
    await expect(gc(repo)).rejects.toThrow(/shared-live/);
    expect(fs.existsSync(path.join(root, 'locks', 'shared-dead.lock'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'locks', 'shared-old.lock'))).toBe(false);
    fs.rmSync(path.join(root, 'locks', 'shared-live.lock'));
    await gc(repo);
    await repo.close();
  });

  it('an immutable restore point cannot be deleted or pruned before its lock date, then can', async () => {
    let now = Date.now();
    const { repo } = await fresh({ now: () => now });
    const img = makeImage(256 * 1024, 5);
    const locked = await full(repo, 'vm-i', img, { lockedUntil: new Date(now + 7 * 86_400_000) });
    now += 60_000;
    await full(repo, 'vm-i', img);
    await expect(deleteRestorePoint(repo, { vmId: 'vm-i', id: locked.id })).rejects.toBeInstanceOf(ImmutableError);
    const plan = await prune(repo, { keepLast: 1 });
    expect(plan.get('vm-i')!.keep.find((k) => k.point.id === locked.id)?.reasons).toEqual(['immutable']);
    expect((await repo.listRestorePoints('vm-i')).map((p) => p.id)).toContain(locked.id);
    now += 8 * 86_400_000;
    await prune(repo, { keepLast: 1 });
    expect((await repo.listRestorePoints('vm-i')).map((p) => p.id)).not.toContain(locked.id);
    await repo.close();
  });
});
