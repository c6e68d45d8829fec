import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptDataError, Repository, WrongPassphraseError, openDiskReader, openRestorePointWriter, verify } from '../src/index.ts';
import type { Manifest } from '../src/index.ts';
import { makeImage, mutate, sha256, tmpDir } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function backup(repo: Repository, vmId: string, img: Buffer, parent?: Manifest): Promise<Manifest> {
  const w = await openRestorePointWriter(repo, { vmId, parent: parent ? { vmId, id: parent.id } : null });
  const d = await w.openDisk({ key: 'd0', capacity: img.length, mode: 'full' });
  await d.write(0, img);
  return w.commit();
}

describe('verify and integrity', () => {
  it('one bit flipped in a chunk: verify names exactly the restore points that use it', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { chunkSize: 64 * 1024 });
    const repo = await Repository.open(root);
    const imgA = makeImage(2 * 1024 * 1024, 11);
    const a1 = await backup(repo, 'vm-a', imgA);
    mutate(imgA, 3, 5);
    const a2 = await backup(repo, 'vm-a', imgA, a1);
    const b1 = await backup(repo, 'vm-b', makeImage(2 * 1024 * 1024, 99));
    expect((await verify(repo)).ok).toBe(true);
    // Pick a chunk of vm-a's first disk that both vm-a points share and vm-b does not use.
    const idxA1 = await repo.readDiskIndex({ vmId: 'vm-a', id: a1.id }, 'd0');
    const idxB = await repo.readDiskIndex({ vmId: 'vm-b', id: b1.id }, 'd0');
    const idxA2 = await repo.readDiskIndex({ vmId: 'vm-a', id: a2.id }, 'd0');
    const bIds = new Set<string>();
    for (let o = 0; o < idxB.ids.length; o += 32) bIds.add(idxB.ids.toString('hex', o, o + 32));
    let victim = '';
    for (let o = 0; o < idxA1.ids.length; o += 32) {
      const id = idxA1.ids.toString('hex', o, o + 32);
      if (/^0+$/.test(id) || bIds.has(id) || !idxA2.ids.includes(Buffer.from(id, 'hex'))) continue;
      victim = id;
      break;
    }
    expect(victim).not.toBe('');
    const loc = repo.index.get(victim)!;
    const packFile = path.join(root, 'packs', loc.pack.slice(0, 2), `${loc.pack}.pack`);
    const fd = fs.openSync(packFile, 'r+');
    const byte = Buffer.alloc(1);
    const at = loc.offset + Math.floor(loc.storedLen / 2);
    fs.readSync(fd, byte, 0, 1, at);
    byte[0]! ^= 0x10;
    fs.writeSync(fd, byte, 0, 1, at);
    fs.closeSync(fd);
    const report = await verify(repo);
    expect(report.ok).toBe(false);
    expect(report.damagedChunks).toHaveLength(1);
    const affected = report.damagedChunks[0]!.restorePoints.map((r) => `${r.vmId}/${r.id}`).sort();
    expect(affected).toEqual([`vm-a/${a1.id}`, `vm-a/${a2.id}`].sort());
    expect(report.damagedChunks[0]!.chunk).toBe(victim);
    // Readers fail loudly instead of returning wrong bytes.
    const r = await openDiskReader(repo, { vmId: 'vm-a', id: a1.id }, 'd0');
    await expect(r.read(0, r.capacity)).rejects.toBeInstanceOf(CorruptDataError);
    // A sampled verify at 100% catches it too; at any rate it reports a sample.
    const sampled = await verify(repo, { sample: 0.5 });
    expect(sampled.mode).toBe('sample');
    expect(sampled.chunksChecked).toBeLessThan(report.chunksReferenced);
    // A missing pack is named as well.
    fs.rmSync(packFile);
    const missing = await verify(repo, { sample: 0 });
    expect(missing.damagedChunks.some((d) => d.reason.includes('missing'))).toBe(true);
    await repo.close();
  });

  it('a truncated disk index or manifest is detected', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root);
    const repo = await Repository.open(root);
    const m = await backup(repo, 'vm-t', makeImage(1024 * 1024, 4));
    const m2 = await backup(repo, 'vm-t', makeImage(1024 * 1024, 5));
    const idxFile = path.join(root, 'snapshots', 'vm-t', m.id, 'disk-0.didx');
    fs.truncateSync(idxFile, fs.statSync(idxFile).size - 7);
    await expect(openDiskReader(repo, { vmId: 'vm-t', id: m.id }, 'd0')).rejects.toBeInstanceOf(CorruptDataError);
    const report = await verify(repo);
    expect(report.ok).toBe(false);
    expect(report.brokenRestorePoints.map((b) => b.id)).toEqual([m.id]);
    const manFile = path.join(root, 'snapshots', 'vm-t', m2.id, 'manifest');
    fs.truncateSync(manFile, 20);
    await expect(repo.readManifest({ vmId: 'vm-t', id: m2.id })).rejects.toBeInstanceOf(CorruptDataError);
    expect((await verify(repo)).brokenRestorePoints.map((b) => b.id).sort()).toEqual([m.id, m2.id].sort());
    await repo.close();
  });
});

describe('encryption', () => {
  it('encrypted repository round trips, stores no plaintext key or data, and a wrong passphrase is a clear typed error', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { passphrase: 'correct horse', kdf: { N: 1 << 14, r: 8, p: 1 } });
    const config = JSON.parse(fs.readFileSync(path.join(root, 'config'), 'utf8'));
    expect(config.encryption.algorithm).toBe('aes-256-gcm');
    expect(config.encryption.kdf.name).toBe('scrypt');
    expect(Object.keys(config.encryption).sort()).toEqual(['algorithm', 'kdf', 'wrappedKey']);
    const repo = await Repository.open(root, { passphrase: 'correct horse' });
    const img = makeImage(2 * 1024 * 1024 + 100, 8);
    const marker = Buffer.from('VAULTLINE-SECRET-MARKER-0123456789');
    for (let o = 0; o < img.length - marker.length; o += 100_003) marker.copy(img, o);
    const m1 = await backup(repo, 'vm-e', img, undefined);
    const changes = mutate(img, 2, 3);
    const w = await openRestorePointWriter(repo, { vmId: 'vm-e', parent: { vmId: 'vm-e', id: m1.id }, vm: { name: 'secret-db' } });
    const d = await w.openDisk({ key: 'd0', capacity: img.length });
    for (const [o, l] of changes) await d.write(o + 1, img.subarray(o + 1, o + l - 1)); // unaligned: merges decrypt the parent
    await d.write(changes[0]![0], img.subarray(changes[0]![0], changes[0]![0] + 1));
    await d.write(changes[0]![0] + changes[0]![1] - 1, img.subarray(changes[0]![0] + changes[0]![1] - 1, changes[0]![0] + changes[0]![1]));
    for (const [o, l] of changes.slice(1)) {
      await d.write(o, img.subarray(o, o + 1));
      await d.write(o + l - 1, img.subarray(o + l - 1, o + l));
    }
    const m2 = await w.commit();
    const r = await openDiskReader(repo, { vmId: 'vm-e', id: m2.id }, 'd0');
    expect(sha256(await r.read(0, r.capacity))).toBe(sha256(img));
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
    // No file in the repository contains the plaintext marker or the VM name.
    const files: string[] = [];
    const walk = (p: string) => fs.statSync(p).isDirectory() ? fs.readdirSync(p).forEach((n) => walk(path.join(p, n))) : files.push(p);
    walk(root);
    for (const f of files) {
      const data = fs.readFileSync(f);
      expect(data.includes(marker), f).toBe(false);
      expect(data.includes(Buffer.from('secret-db')), f).toBe(false);
    }
    await expect(Repository.open(root, { passphrase: 'wrong horse' })).rejects.toBeInstanceOf(WrongPassphraseError);
    await expect(Repository.open(root, { passphrase: 'wrong horse' })).rejects.toMatchObject({ code: 'WRONG_PASSPHRASE' });
    await expect(Repository.open(root)).rejects.toMatchObject({ code: 'PASSPHRASE_REQUIRED' });
  });
});
