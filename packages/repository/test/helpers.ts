import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forEachReference, packPath } from '../src/format.ts';
import { openRestorePointWriter, type Manifest, type Repository } from '../src/index.ts';

export function tmpDir(prefix = 'vl-repo-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Deterministic PRNG (xorshift32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** Deterministic pseudo-random bytes (AES-128-CTR keystream keyed by the seed). */
export function seededBytes(seed: number, n: number): Buffer {
  const key = crypto.createHash('sha256').update(`seed:${seed}`).digest().subarray(0, 16);
  return crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** A VM-like image: zero regions, compressible text, random data, in 64 KiB blocks. Deterministic per seed. */
export function makeImage(size: number, seed: number): Buffer {
  const r = rng(seed);
  const random = seededBytes(seed, size);
  const img = Buffer.alloc(size);
  const block = 64 * 1024;
  const words = ['INFO', 'user=admin', 'GET /index.html 200', 'db page', '0000', 'kernel: eth0 up'];
  for (let off = 0; off < size; off += block) {
    const n = Math.min(block, size - off);
    const kind = r();
    if (kind < 0.45) continue; // zeros
    if (kind < 0.8) {
      let s = '';
      while (s.length < n) s += `${words[Math.floor(r() * words.length)]} ${Math.floor(r() * 1000)}\n`;
      img.write(s.slice(0, n), off, 'latin1');
    } else {
      random.copy(img, off, off, off + n);
    }
  }
  return img;
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** Mutate `count` scattered areas; returns the changed [offset, length] list. */
export function mutate(img: Buffer, count: number, seed: number, len = 64 * 1024, align = 64 * 1024): Array<[number, number]> {
  const r = rng(seed);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const off = Math.floor((r() * (img.length - len)) / align) * align;
    crypto.randomFillSync(img, off, len);
    out.push([off, len]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/**
 * One restore point of VM `vmId` with a single disk d0 holding `img` (only `changes`, [offset, length] pairs,
 * written when a parent is given), locked until `lockedUntil`.
 */
export async function backupImage(repo: Repository, vmId: string, img: Buffer, lockedUntil: Date | null, parent?: Manifest, changes?: Array<[number, number]>): Promise<Manifest> {
  const w = await openRestorePointWriter(repo, { vmId, lockedUntil, ...(parent ? { parent: { vmId, id: parent.id } } : {}) });
  const d = await w.openDisk({ key: 'd0', capacity: img.length });
  for (const [o, l] of changes ?? [[0, img.length]]) await d.write(o, img.subarray(o, o + l));
  return w.commit();
}

/** The storage paths a one-disk point (backupImage) depends on: every pack holding one of its chunks, and its own files. */
export async function storedFilesOf(repo: Repository, m: Manifest): Promise<{ packs: string[]; own: string[] }> {
  const idx = await repo.readDiskIndex({ vmId: m.vmId, id: m.id }, 'd0', m);
  const packs = new Set<string>();
  forEachReference(idx, (id) => packs.add(packPath(repo.index.get(id)!.pack)));
  const dir = repo.rpDir({ vmId: m.vmId, id: m.id });
  return { packs: [...packs], own: [`${dir}/manifest`, `${dir}/disk-0.didx`] };
}
