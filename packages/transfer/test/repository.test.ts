/**
 * A real, encrypted repository stored through a TransporterBackend: the source side holds the
 * passphrase and seals everything itself, the serving side keeps only opaque bytes yet answers which
 * chunks it holds from the pack footers.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository, openDiskReader, openRestorePointWriter, shutdownWorkerPools } from '@vaultline/repository';
import type { Manifest } from '@vaultline/repository';
import { forEachReference } from '../../repository/src/format.ts';
import { makeImage, seededBytes, sha256 } from '../../repository/test/helpers.ts';
import type { TransporterBackend } from '../src/index.ts';
import { startFixture, type Fixture } from './fixture.ts';

const PASSPHRASE = 'correct horse battery staple, transfer edition';
const CHUNK = 64 * 1024;
const MARKER = 'PLAINTEXT-MARKER-0f3a9c-';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture();
});
afterAll(async () => {
  await fx?.stop();
  await shutdownWorkerPools();
});

/** Every file under `dir`, with its bytes. */
function filesUnder(dir: string): Array<{ file: string; data: Buffer }> {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).flatMap((e) => (e.isFile() ? [{ file: path.join(e.parentPath, e.name), data: fs.readFileSync(path.join(e.parentPath, e.name)) }] : []));
}

/** The chunk ids a restore point's disk d0 references (hex, holes left out). */
async function idsOf(repo: Repository, m: Manifest): Promise<Set<string>> {
  const ids = new Set<string>();
  forEachReference(await repo.readDiskIndex({ vmId: m.vmId, id: m.id }, 'd0', m), (id) => ids.add(id));
  return ids;
}

async function write(repo: Repository, img: Buffer, parent?: Manifest): Promise<Manifest> {
  const w = await openRestorePointWriter(repo, { vmId: 'vm-t', ...(parent ? { parent: { vmId: 'vm-t', id: parent.id } } : {}) });
  // Full mode: every non-zero chunk is written whole, so its id is repo.hashChunk of its bytes.
  const d = await w.openDisk({ key: 'd0', capacity: img.length, mode: 'full' });
  for (let off = 0; off < img.length; off += 1_000_003) await d.write(off, img.subarray(off, Math.min(img.length, off + 1_000_003)));
  return w.commit();
}

const lackingOf = async (b: TransporterBackend, hex: string[]) => {
  const answer = await b.lacking(hex.map((h) => Buffer.from(h, 'hex')));
  return new Set(hex.filter((_, i) => answer[i]));
};

describe('an encrypted repository through a TransporterBackend', () => {
  it('restores bit-exact, leaves no plaintext (nor the passphrase) on the serving side, and the server knows its chunk ids', async () => {
    const b = fx.connect();
    await Repository.init(b, { passphrase: PASSPHRASE, kdf: { N: 1 << 10, r: 8, p: 1 }, chunkSize: CHUNK, packTargetSize: 1024 * 1024 });
    const repo = await Repository.open(b, { passphrase: PASSPHRASE });
    // Random data (incompressible, so any plaintext would be there byte for byte), text and zeros.
    const img = makeImage(6 * 1024 * 1024, 41);
    seededBytes(42, 2 * 1024 * 1024).copy(img, 1024 * 1024);
    img.write(MARKER.repeat(2000), 4 * 1024 * 1024, 'latin1');
    const m1 = await write(repo, img);

    const r = await openDiskReader(repo, { vmId: 'vm-t', id: m1.id }, 'd0');
    expect(sha256(await r.read(0, r.capacity))).toBe(sha256(img));
    expect(b.received).toBeGreaterThan(0);

    const stored = filesUnder(fx.folders.main!);
    expect(stored.some((f) => f.file.endsWith('.pack'))).toBe(true);
    const samples = [1024 * 1024, 1500 * 1024 + 7, 3 * 1024 * 1024 - 64].map((off) => img.subarray(off, off + 48));
    for (const { file, data } of stored) {
      for (const s of samples) expect(data.indexOf(s), `${file} holds plaintext`).toBe(-1);
      expect(data.indexOf(MARKER), `${file} holds the marker text`).toBe(-1);
      expect(data.indexOf(PASSPHRASE), `${file} holds the passphrase`).toBe(-1);
    }

    const ids1 = [...(await idsOf(repo, m1))];
    expect(ids1.length).toBeGreaterThan(20);
    expect(await lackingOf(b, ids1)).toEqual(new Set());
    const random = Array.from({ length: 40_000 }, () => randomBytes(32).toString('hex'));
    // More than one batch (LACKING_BATCH) of ids, every one lacking, answered in order.
    expect((await lackingOf(b, random)).size).toBe(random.length);
    expect(await lackingOf(b, [random[0]!, ids1[0]!, random[1]!])).toEqual(new Set([random[0], random[1]]));

    // Day 2: some chunks change. Before it is written, exactly the new chunks are lacking.
    const img2 = Buffer.from(img);
    for (const off of [0, 5 * CHUNK, 40 * CHUNK, 41 * CHUNK]) seededBytes(off + 1, CHUNK).copy(img2, off);
    const planned = new Set<string>();
    for (let off = 0; off < img2.length; off += CHUNK) {
      const chunk = img2.subarray(off, off + CHUNK);
      if (chunk.some((x) => x !== 0)) planned.add(repo.hashChunk(chunk));
    }
    const lackingBefore = await lackingOf(b, [...planned]);
    const m2 = await write(repo, img2, m1);
    const ids2 = await idsOf(repo, m2);
    expect(ids2).toEqual(planned);
    const fresh = new Set([...ids2].filter((id) => !ids1.includes(id)));
    expect(fresh.size).toBe(4);
    expect(lackingBefore).toEqual(fresh);
    expect(await lackingOf(b, [...ids2])).toEqual(new Set());
    const r2 = await openDiskReader(repo, { vmId: 'vm-t', id: m2.id }, 'd0');
    expect(sha256(await r2.read(0, r2.capacity))).toBe(sha256(img2));
    await repo.close();
  });

  it('a pack removed through the server is no longer counted as held; packs are read again after a restart', async () => {
    const b = fx.connect();
    const packs = filesUnder(path.join(fx.folders.main!, 'packs')).map((f) => path.relative(fx.folders.main!, f.file));
    expect(packs.length).toBeGreaterThan(1);
    const [victim] = packs;
    // The ids of one pack, read from its footer as the server does.
    const data = fs.readFileSync(path.join(fx.folders.main!, victim!));
    const count = data.readUInt32LE(data.length - 44 + 32);
    const ids = Array.from({ length: count }, (_, i) => data.toString('hex', data.length - 44 - count * 44 + i * 44, data.length - 44 - count * 44 + i * 44 + 32));
    expect(await lackingOf(b, ids)).toEqual(new Set());
    await b.remove(victim!);
    expect(await lackingOf(b, ids)).toEqual(new Set(ids));

    // A fresh server reads the footers of what is there now.
    const again = await startFixture({ folders: { main: fx.folders.main! } });
    try {
      const b2 = again.connect();
      expect(await lackingOf(b2, ids)).toEqual(new Set(ids));
      const other = fs.readFileSync(path.join(fx.folders.main!, packs[1]!));
      const n = other.readUInt32LE(other.length - 44 + 32);
      const held = other.toString('hex', other.length - 44 - n * 44, other.length - 44 - n * 44 + 32);
      expect(await lackingOf(b2, [held])).toEqual(new Set());
    } finally {
      await again.stop();
    }
  });
});

describe('what a served repository cannot do yet, said plainly', () => {
  it('a restore point to keep immutable is refused before anything is written (locks are not carried over the wire)', async () => {
    const fx2 = await startFixture({ names: ['locked'] });
    try {
      const b = fx2.connect({ repository: 'locked' });
      await Repository.init(b, { chunkSize: CHUNK });
      const repo = await Repository.open(b);
      await expect(openRestorePointWriter(repo, { vmId: 'vm-l', lockedUntil: new Date(Date.now() + 86_400_000) })).rejects.toThrow(/cannot make restore points immutable yet/);
      expect(fs.existsSync(path.join(fx2.folders.locked!, 'snapshots', 'vm-l'))).toBe(false);
      await repo.close();
    } finally {
      await fx2.stop();
    }
  });
});
