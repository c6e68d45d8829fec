import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository, openDiskReader, openRestorePointWriter, shutdownWorkerPools } from '../src/index.ts';
import type { RepositoryIdentity } from '../src/index.ts';
import type { RepositoryConfig } from '../src/format.ts';
import { seededBytes, sha256, tmpDir } from './helpers.ts';

// Whoever can write the repository storage must not be able to swap the config
// or one chunk for another (docs/repository-format.md §2, §3).
const KDF = { N: 1 << 10, r: 8, p: 1 };
const CHUNK = 64 * 1024;
const dirs: string[] = [];
afterAll(async () => {
  dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
  await shutdownWorkerPools();
});

async function newRepo(passphrase?: string): Promise<{ root: string; identity: RepositoryIdentity }> {
  const root = tmpDir('vl-auth-');
  dirs.push(root);
  const identity = await Repository.init(root, { chunkSize: CHUNK, packTargetSize: 1024 * 1024, ...(passphrase ? { passphrase, kdf: KDF } : {}) });
  return { root, identity };
}

function editConfig(root: string, edit: (c: RepositoryConfig) => void): void {
  const p = path.join(root, 'config');
  const c = JSON.parse(fs.readFileSync(p, 'utf8')) as RepositoryConfig;
  edit(c);
  fs.writeFileSync(p, JSON.stringify(c, null, 2));
}

/** Four chunks of random (incompressible) data: their blobs all have the same stored length. */
async function backup(root: string, passphrase?: string): Promise<{ image: Buffer; ids: string[]; rpId: string }> {
  const repo = await Repository.open(root, passphrase ? { passphrase } : {});
  const image = seededBytes(7, 4 * CHUNK);
  const w = await openRestorePointWriter(repo, { vmId: 'vm' });
  await (await w.openDisk({ key: 'd0', capacity: image.length })).write(0, image);
  const m = await w.commit();
  const ids = [0, 1, 2, 3].map((i) => repo.hashChunk(image.subarray(i * CHUNK, (i + 1) * CHUNK)));
  await repo.close();
  return { image, ids, rpId: m.id };
}

/** Swap the stored bytes of two blobs inside their packs, as someone with write access to the storage could. */
async function swapBlobs(root: string, a: string, b: string, passphrase?: string): Promise<void> {
  const repo = await Repository.open(root, passphrase ? { passphrase } : {});
  const [la, lb] = [repo.index.get(a)!, repo.index.get(b)!];
  await repo.close();
  expect(la.storedLen).toBe(lb.storedLen);
  const file = (pack: string) => path.join(root, 'packs', pack.slice(0, 2), `${pack}.pack`);
  const [pa, pb] = [fs.readFileSync(file(la.pack)), fs.readFileSync(file(lb.pack))];
  const bytesA = Buffer.from(pa.subarray(la.offset, la.offset + la.storedLen));
  pb.copy(pa, la.offset, lb.offset, lb.offset + lb.storedLen);
  if (la.pack === lb.pack) bytesA.copy(pa, lb.offset);
  else bytesA.copy(pb, lb.offset);
  fs.writeFileSync(file(la.pack), pa);
  if (la.pack !== lb.pack) fs.writeFileSync(file(lb.pack), pb);
}

/** Restore through both read paths: the worker pipeline (restoreToFile) and random access on this thread. */
async function restoreBoth(root: string, rpId: string, passphrase?: string): Promise<Array<{ ok: boolean; sha256?: string; message?: string }>> {
  const repo = await Repository.open(root, passphrase ? { passphrase } : {});
  const out: Array<{ ok: boolean; sha256?: string; message?: string }> = [];
  try {
    for (const run of [
      async (r: Awaited<ReturnType<typeof openDiskReader>>) => {
        const file = path.join(root, 'restore.img');
        await r.restoreToFile(file);
        return sha256(fs.readFileSync(file));
      },
      async (r: Awaited<ReturnType<typeof openDiskReader>>) => sha256(await r.read(0, r.capacity)),
    ]) {
      const reader = await openDiskReader(repo, { vmId: 'vm', id: rpId }, 'd0');
      try {
        out.push({ ok: true, sha256: await run(reader) });
      } catch (err) {
        out.push({ ok: false, message: (err as Error).message });
      } finally {
        await reader.close();
      }
    }
  } finally {
    await repo.close();
  }
  return out;
}

describe('repository config is authenticated', () => {
  it('an encrypted config flipped to unencrypted is refused: with a passphrase, and against the recorded identity', async () => {
    const { root, identity } = await newRepo('pw');
    editConfig(root, (c) => {
      c.encryption = null;
      c.hash = 'blake3';
      delete c.mac;
    });
    await expect(Repository.open(root, { passphrase: 'pw' })).rejects.toMatchObject({ code: 'NOT_ENCRYPTED' });
    editConfig(root, (c) => {
      delete (c as Partial<typeof c>).encryption;
    });
    await expect(Repository.open(root, { passphrase: 'pw' })).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/"encryption" must be null or an object/) });
    editConfig(root, (c) => {
      c.encryption = null;
    });
    await expect(Repository.open(root, { expect: identity })).rejects.toMatchObject({
      code: 'IDENTITY_MISMATCH',
      message: expect.stringMatching(/it is not encrypted, recorded as encrypted.*KDF is none, recorded scrypt N=1024/),
    });
  });

  it('a lowered KDF cost is refused against the recorded identity, before anything is derived', async () => {
    const { root, identity } = await newRepo('pw');
    editConfig(root, (c) => {
      c.encryption!.kdf.N = 2;
    });
    await expect(Repository.open(root, { passphrase: 'pw', expect: identity })).rejects.toMatchObject({
      code: 'IDENTITY_MISMATCH',
      message: expect.stringMatching(/KDF is scrypt N=2 r=8 p=1 .*, recorded scrypt N=1024 r=8 p=1/),
    });
  });

  it('absurd KDF parameters are refused at once, without deriving', async () => {
    const { root } = await newRepo('pw');
    for (const [field, value, why] of [
      ['N', 2 ** 40, /N 1099511627776 must be a power of 2 up to 1048576/],
      ['N', 1000, /N 1000 must be a power of 2/],
      ['r', 1e6, /r 1000000 must be 1 to 32/],
      ['p', 1 << 20, /p 1048576 must be 1 to 16/],
    ] as const) {
      editConfig(root, (c) => {
        c.encryption!.kdf = { ...c.encryption!.kdf, ...KDF, [field]: value };
      });
      const started = Date.now();
      await expect(Repository.open(root, { passphrase: 'pw' })).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(why) });
      expect(Date.now() - started).toBeLessThan(1000);
    }
    // Memory and total work are capped as well (each parameter within its own bound).
    editConfig(root, (c) => {
      c.encryption!.kdf = { ...c.encryption!.kdf, N: 1 << 20, r: 16, p: 1 };
    });
    await expect(Repository.open(root, { passphrase: 'pw' })).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/needs 2048 MiB/) });
    await expect(Repository.init(tmpDir(), { passphrase: 'pw', kdf: { N: 1 << 20, r: 8, p: 16 } })).rejects.toMatchObject({ code: 'CORRUPT', message: /N × r × p/ });
  });

  it('any other change to an encrypted config fails its MAC', async () => {
    const { root } = await newRepo('pw');
    expect(JSON.parse(fs.readFileSync(path.join(root, 'config'), 'utf8')).mac).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    editConfig(root, (c) => {
      c.compression.level = 19;
    });
    await expect(Repository.open(root, { passphrase: 'pw' })).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/config: MAC mismatch/) });
    editConfig(root, (c) => {
      c.compression.level = 1;
    });
    // Key order and whitespace are not part of what the MAC covers.
    const c = JSON.parse(fs.readFileSync(path.join(root, 'config'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(root, 'config'), JSON.stringify(Object.fromEntries(Object.entries(c).reverse())));
    await (await Repository.open(root, { passphrase: 'pw' })).close();
    editConfig(root, (c) => {
      delete c.mac;
    });
    await expect(Repository.open(root, { passphrase: 'pw' })).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/config: MAC mismatch/) });
  });

  it('an unencrypted config that changed, or another repository at the location, is refused against the recorded identity', async () => {
    const { root, identity } = await newRepo();
    const same = await Repository.open(root, { expect: identity });
    expect(same.identity).toEqual(identity);
    await same.close();
    editConfig(root, (c) => {
      c.chunkSize = 2 * CHUNK;
    });
    await expect(Repository.open(root, { expect: identity })).rejects.toMatchObject({ code: 'IDENTITY_MISMATCH', message: expect.stringMatching(/config file SHA-256 is [0-9a-f]{64}, recorded [0-9a-f]{64}/) });
    const other = await newRepo();
    await expect(Repository.open(other.root, { expect: identity })).rejects.toMatchObject({ code: 'IDENTITY_MISMATCH', message: expect.stringMatching(new RegExp(`repository id is ${other.identity.id}, recorded ${identity.id}`)) });
  });
});

/** The error of a restore that met swapped chunks `a` and `b` (either is found first: two workers decode in parallel). */
function namesSwappedChunk(ids: string[], rpId: string, a: number, b: number, why: string): RegExp {
  const at = (i: number) => `chunk ${ids[i]} \\(vm/${rpId} d0 @${i * CHUNK}\\)`;
  return new RegExp(`(${at(a)}|${at(b)}): ${why}`);
}

describe('chunk blobs are bound to their ids', () => {
  it('an encrypted blob moved to another id fails to decrypt, naming the chunk, on both read paths', async () => {
    const { root } = await newRepo('pw');
    const { image, ids, rpId } = await backup(root, 'pw');
    expect(await restoreBoth(root, rpId, 'pw')).toEqual([
      { ok: true, sha256: sha256(image) },
      { ok: true, sha256: sha256(image) },
    ]);
    await swapBlobs(root, ids[1]!, ids[2]!, 'pw');
    for (const r of await restoreBoth(root, rpId, 'pw')) {
      expect(r.ok).toBe(false);
      expect(r.message).toMatch(namesSwappedChunk(ids, rpId, 1, 2, 'authentication failed \\(damaged, or not the blob of this id\\)'));
    }
  });

  it('an unencrypted chunk whose content does not hash to its id fails the restore, naming the chunk, on both read paths', async () => {
    const { root } = await newRepo();
    const { ids, rpId } = await backup(root);
    await swapBlobs(root, ids[2]!, ids[3]!);
    for (const r of await restoreBoth(root, rpId)) {
      expect(r.ok).toBe(false);
      expect(r.message).toMatch(namesSwappedChunk(ids, rpId, 2, 3, 'content does not hash to its id'));
    }
  });
});
