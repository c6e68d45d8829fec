import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FORMAT_VERSION, Repository, deleteRestorePoint, gc, openDiskReader, openRestorePointWriter, verify } from '../src/index.ts';
import { makeImage, mutate, sha256, tmpDir } from './helpers.ts';

// Repositories written by the code of their format version (test/fixtures/make-old-repo.ts: v1 at git 14de2a0, v2 at git 7364964).
const fixtureRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
interface Expected {
  passphrase: string | null;
  size: number;
  points: Array<{ id: string; sha256: string }>;
}
const OLD = [
  { version: 1, hashes: { plain: 'sha256', encrypted: 'hmac-sha256' } },
  { version: 2, hashes: { plain: 'blake3', encrypted: 'blake3-keyed' } },
] as const;
const expectedOf = (version: number) => JSON.parse(fs.readFileSync(path.join(fixtureRoot, `v${version}-repo`, 'expected.json'), 'utf8')) as Record<'plain' | 'encrypted', Expected>;

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function copyFixture(version: number, name: string): string {
  const root = tmpDir(`vl-v${version}-`);
  dirs.push(root);
  fs.cpSync(path.join(fixtureRoot, `v${version}-repo`, name), root, { recursive: true });
  return root;
}

async function image(repo: Repository, vmId: string, id: string): Promise<Buffer> {
  const r = await openDiskReader(repo, { vmId, id }, 'scsi0:0');
  return r.read(0, r.capacity);
}

describe('older format versions', () => {
  for (const { version, hashes } of OLD) for (const name of ['plain', 'encrypted'] as const) {
    const vm = `vm-v${version}`;
    it(`a v${version} ${name} repository opens, restores bit-exact, verifies, accepts new backups (still written as v${version}) and survives GC`, async () => {
      expect(FORMAT_VERSION).toBe(3);
      const exp = expectedOf(version)[name];
      const root = copyFixture(version, name);
      const repo = await Repository.open(root, exp.passphrase ? { passphrase: exp.passphrase } : {});
      expect(repo.config.version).toBe(version);
      expect(repo.config.hash).toBe(hashes[name]);
      for (const p of exp.points) expect(sha256(await image(repo, vm, p.id))).toBe(p.sha256);
      const out = path.join(root, 'restore.img');
      const reader = await openDiskReader(repo, { vmId: vm, id: exp.points[1]!.id }, 'scsi0:0');
      await reader.restoreToFile(out);
      expect(sha256(fs.readFileSync(out))).toBe(exp.points[1]!.sha256);
      fs.rmSync(out);
      expect((await verify(repo)).ok).toBe(true);

      // A new incremental (aligned and unaligned changes) on top of the v1 point.
      const img = await image(repo, vm, exp.points[1]!.id);
      const changes = mutate(img, 3, 21);
      img.fill(0x33, 70_000, 70_100);
      const w = await openRestorePointWriter(repo, { vmId: vm, parent: { vmId: vm, id: exp.points[1]!.id } });
      const d = await w.openDisk({ key: 'scsi0:0', capacity: exp.size });
      for (const [o, l] of [...changes, [70_000, 100] as [number, number]].sort((a, b) => a[0] - b[0])) await d.write(o, img.subarray(o, o + l));
      const m3 = await w.commit();
      expect(m3.formatVersion).toBe(version);
      expect(sha256(await image(repo, vm, m3.id))).toBe(sha256(img));
      // Metadata written into an old repository keeps its version (an older build can still read it).
      const didx = fs.readFileSync(path.join(root, 'snapshots', vm, m3.id, 'disk-0.didx'));
      expect(didx.subarray(0, 4).toString()).toBe('VLTF');
      expect(didx[4]).toBe(version);
      // A new full backup of another VM.
      const other = makeImage(300_000, 5);
      const w2 = await openRestorePointWriter(repo, { vmId: 'vm-new' });
      await (await w2.openDisk({ key: 'scsi0:0', capacity: other.length })).write(0, other);
      const m4 = await w2.commit();
      expect(sha256(await image(repo, 'vm-new', m4.id))).toBe(sha256(other));
      // verify re-hashes every chunk with the repository's own chunk ids (v1: SHA-256 based).
      const rep = await verify(repo);
      expect(rep.ok).toBe(true);
      expect(rep.chunksChecked).toBe(rep.chunksReferenced);

      // Retention + GC work on old data: drop the first point, sweep, everything left still restores.
      await deleteRestorePoint(repo, { vmId: vm, id: exp.points[0]!.id });
      await gc(repo, { graceMs: 0, repackThreshold: 0 });
      expect(sha256(await image(repo, vm, exp.points[1]!.id))).toBe(exp.points[1]!.sha256);
      expect(sha256(await image(repo, vm, m3.id))).toBe(sha256(img));
      expect((await verify(repo)).ok).toBe(true);
      await repo.close();
    });
  }

  it('a repository of a newer format version is refused with a message saying what to do', async () => {
    const root = copyFixture(1, 'plain');
    const cfgPath = path.join(root, 'config');
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, version: 4 }));
    await expect(Repository.open(root)).rejects.toMatchObject({ code: 'UNSUPPORTED_VERSION', message: expect.stringMatching(/version 4 .*upgrade Vaultline/) });
    // A config whose hash does not belong to its version is corrupt, not silently misread.
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, hash: 'blake3' }));
    await expect(Repository.open(root)).rejects.toMatchObject({ code: 'CORRUPT' });
  });

  it('new repositories are format v3 with BLAKE3 chunk ids (keyed BLAKE3 when encrypted)', async () => {
    const plain = tmpDir();
    const enc = tmpDir();
    dirs.push(plain, enc);
    await Repository.init(plain);
    await Repository.init(enc, { passphrase: 'pw', kdf: { N: 1 << 12, r: 8, p: 1 } });
    const cp = JSON.parse(fs.readFileSync(path.join(plain, 'config'), 'utf8'));
    const ce = JSON.parse(fs.readFileSync(path.join(enc, 'config'), 'utf8'));
    expect([cp.version, cp.hash]).toEqual([3, 'blake3']);
    expect([ce.version, ce.hash]).toEqual([3, 'blake3-keyed']);
    // The id is the documented function of the plaintext: BLAKE3 test vector (empty input).
    const repo = await Repository.open(plain);
    expect(repo.hashChunk(new Uint8Array(0))).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    await repo.close();
  });
});
