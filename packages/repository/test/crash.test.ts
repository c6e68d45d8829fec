import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository, openDiskReader, verify } from '../src/index.ts';
import { rng, sha256, tmpDir } from './helpers.ts';
import { variant } from './fixtures/variant.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, 'fixtures', 'crash-writer.ts');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function runChild(root: string, seed: number, killAt: number): { killed: boolean; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, root, String(seed), String(killAt)], { encoding: 'utf8', cwd: path.resolve(here, '..'), timeout: 60_000 });
  if (r.signal !== 'SIGKILL' && r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return { killed: r.signal === 'SIGKILL', out: r.stdout };
}

describe('crash safety', () => {
  it('kill -9 of a writer at 20+ random points leaves no partial restore point and a repository that verifies clean', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 64 * 1024, packTargetSize: 512 * 1024 });
    // Learn how many backend operations a full and an incremental take.
    const first = runChild(root, 1, 0);
    const fullOps = Number(/ops=(\d+)/.exec(first.out)?.[1]);
    const second = runChild(root, 2, 0);
    const incrOps = Number(/ops=(\d+)/.exec(second.out)?.[1]);
    expect(fullOps).toBeGreaterThan(10);
    expect(incrOps).toBeGreaterThan(5);
    const r = rng(20261125);
    let killed = 0;
    let seed = 3;
    const points: number[] = [];
    for (let i = 0; killed < 22 && i < 34; i++, seed++) {
      const ops = seed % 2 === 0 ? incrOps : fullOps;
      const at = 1 + Math.floor(r() * ops * 0.95);
      points.push(at);
      if (runChild(root, seed, at).killed) killed++;
    }
    expect(killed, `kill points ${points.join(',')}`).toBeGreaterThanOrEqual(20);
    // Every visible restore point is complete and bit-exact; nothing partial is visible.
    const repo = await Repository.open(root);
    const visible = await repo.listRestorePoints();
    expect(visible.length).toBeGreaterThanOrEqual(2);
    for (const p of visible) {
      const m = await repo.readManifest(p);
      const reader = await openDiskReader(repo, p, 'd0');
      expect(sha256(await reader.read(0, reader.capacity))).toBe(sha256(variant(Number(m.labels.seed))));
    }
    const report = await verify(repo);
    expect(report.brokenRestorePoints).toEqual([]);
    expect(report.damagedChunks).toEqual([]);
    expect(report.ok).toBe(true);
    // And the repository keeps working: a new incremental after all the crashes.
    runChild(root, 100, 0);
    expect((await repo.listRestorePoints()).length).toBe(visible.length + 1);
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  }, 170_000);
});
