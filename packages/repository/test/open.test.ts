import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deriveKek } from '../src/format.ts';
import { CorruptDataError, Repository, RestorePointWriter } from '../src/index.ts';
import { makeImage, tmpDir } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('opening a repository', () => {
  it('derives the key in the thread pool: the event loop turns while scrypt runs', async () => {
    let derived = false;
    const kek = deriveKek('a passphrase', { name: 'scrypt', N: 1 << 15, r: 8, p: 1, salt: Buffer.alloc(16, 1).toString('base64') });
    expect(kek).toBeInstanceOf(Promise);
    void kek.then(() => (derived = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(derived).toBe(false);
    expect((await kek).length).toBe(32);
  });

  it('without the global index (index: false) reads manifests and disk indexes even when an index file is damaged, which reloadIndex() then reports', async () => {
    const root = tmpDir();
    dirs.push(root);
    await Repository.init(root, { passphrase: 'open test', kdf: { N: 1 << 10, r: 8, p: 1 }, chunkSize: 64 * 1024 });
    const writing = await Repository.open(root, { passphrase: 'open test' });
    const rp = await RestorePointWriter.open(writing, { vmId: 'vm-1' });
    const disk = await rp.openDisk({ key: '2000', capacity: 1024 * 1024 });
    await disk.write(0, makeImage(1024 * 1024, 7));
    const m = await rp.commit();
    await writing.close();
    for (const name of fs.readdirSync(path.join(root, 'index'))) fs.writeFileSync(path.join(root, 'index', name), 'not an index');

    await expect(Repository.open(root, { passphrase: 'open test' })).rejects.toBeInstanceOf(CorruptDataError);
    const repo = await Repository.open(root, { passphrase: 'open test', index: false });
    try {
      const ref = { vmId: 'vm-1', id: m.id };
      expect((await repo.readManifest(ref)).disks.map((d) => d.key)).toEqual(['2000']);
      expect((await repo.readDiskIndex(ref, '2000')).capacity).toBe(1024 * 1024);
      expect(repo.index.size).toBe(0);
      await expect(repo.reloadIndex()).rejects.toBeInstanceOf(CorruptDataError);
    } finally {
      await repo.close();
    }
  });
});
