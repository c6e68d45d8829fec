// Chunk ids and blob codec shared by the main thread (repository.ts) and the
// worker threads (chunk-worker.mjs). Plain JavaScript because workers start
// without a TypeScript loader; types in chunk-codec.d.mts.
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Blake3Hasher } = require('@napi-rs/blake-hash');

/** Chunk-id algorithms by name (recorded as `hash` in the repository config). */
export const CHUNK_HASHES = ['sha256', 'hmac-sha256', 'blake3', 'blake3-keyed'];

/**
 * Returns `(data) => hex id` for the repository's chunk-id algorithm. Keyed
 * variants (encrypted repositories) take the 32-byte id key. The BLAKE3 hasher
 * is created once and reset per chunk (no per-chunk allocation but the hex string).
 */
export function makeChunkHasher(algorithm, idKey) {
  switch (algorithm) {
    case 'sha256':
      return (d) => crypto.createHash('sha256').update(d).digest('hex');
    case 'hmac-sha256':
      if (!idKey) throw new Error('hmac-sha256 chunk ids need the id key');
      return (d) => crypto.createHmac('sha256', idKey).update(d).digest('hex');
    case 'blake3':
    case 'blake3-keyed': {
      if (algorithm === 'blake3-keyed' && !idKey) throw new Error('blake3-keyed chunk ids need the id key');
      const h = algorithm === 'blake3' ? new Blake3Hasher() : Blake3Hasher.newKeyed(Buffer.from(idKey));
      return (d) => {
        h.reset();
        h.update(d);
        return h.digest('hex');
      };
    }
    default:
      throw new Error(`unknown chunk hash algorithm ${JSON.stringify(algorithm)}`);
  }
}

/**
 * Encrypt a compressed blob as nonce(12) | AES-256-GCM(plain, aad) | tag(16)
 * into `out` at `dst`; returns the stored length. `aad` (format v3: the raw
 * 32-byte id) binds the blob to its id: moved to another id it fails to decrypt.
 */
export function sealBlob(plain, encKey, aad, out, dst) {
  const nonce = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', encKey, nonce);
  if (aad) c.setAAD(aad);
  nonce.copy(out, dst);
  const a = c.update(plain);
  a.copy(out, dst + 12);
  const b = c.final();
  b.copy(out, dst + 12 + a.length);
  c.getAuthTag().copy(out, dst + 12 + a.length + b.length);
  return 12 + plain.length + 16;
}

/** Decrypt a stored blob (see sealBlob) into a fresh buffer; throws when it does not authenticate under `aad`. */
export function openBlob(stored, encKey, aad) {
  if (stored.length < 28) throw new Error('blob too short');
  const d = crypto.createDecipheriv('aes-256-gcm', encKey, stored.subarray(0, 12));
  if (aad) d.setAAD(aad);
  d.setAuthTag(stored.subarray(stored.length - 16));
  try {
    return Buffer.concat([d.update(stored.subarray(12, stored.length - 16)), d.final()]);
  } catch {
    throw new Error(aad ? 'authentication failed (damaged, or not the blob of this id)' : 'authentication failed');
  }
}

/**
 * Whether decoding must re-hash a blob's plaintext to prove it is the blob
 * of its id: always, unless AES-GCM already bound it to its id (encrypted,
 * format v3 on). The zstd frame checksum alone catches damage, not a swap.
 */
export function mustRehashIds(encrypted, bindsIds) {
  return !(encrypted && bindsIds);
}

/** ZSTD_d_forceIgnoreChecksum (zstd's experimental decompression parameter 3; zstd-napi passes it through). */
const ZSTD_D_FORCE_IGNORE_CHECKSUM = 1002;

/**
 * A zstd decompression context for blobs. When every blob it decodes is
 * re-hashed against its id, the frame's xxh64 checksum would check the same
 * bytes a second time, less strongly, so it is skipped: that pays for about
 * half of the re-hash (xxh64 ~0.2 s and BLAKE3 ~0.4 s of CPU per 2.3 GiB).
 */
export function blobDecoder(zstd, rehashIds) {
  const d = new zstd.DCtx();
  if (rehashIds) d.setParameter(ZSTD_D_FORCE_IGNORE_CHECKSUM, 1);
  return d;
}

/** The error message of a blob whose plaintext does not hash to its id. */
export const ID_MISMATCH = 'content does not hash to its id (damaged, or another chunk put in its place)';

/**
 * A set of chunk ids built from a list of raw 32-byte ids (a parent disk
 * index: one per chunk, holes and repeats included) without a string per id:
 * an open-addressing table of positions in the list, keyed by the id's first
 * four bytes. Building it for a 4 GiB disk's 16,384 ids takes well under a
 * millisecond, where a Set of hex strings took ~25 ms per worker and its
 * garbage. Ids added later (hex) go to a plain Set.
 */
export class KnownIds {
  constructor(ids) {
    const n = Math.floor(ids.length / 32);
    let size = 16;
    while (size < n * 2) size *= 2;
    this.ids = ids;
    this.table = new Int32Array(n > 0 ? size : 0);
    this.mask = size - 1;
    this.added = new Set();
    for (let i = 0; i < n; i++) {
      let h = ids.readUInt32BE(i * 32) & this.mask;
      for (;;) {
        const v = this.table[h];
        if (v === 0) {
          this.table[h] = i + 1;
          break;
        }
        if (ids.compare(ids, i * 32, i * 32 + 32, (v - 1) * 32, v * 32) === 0) break; // a repeat
        h = (h + 1) & this.mask;
      }
    }
  }

  has(hex) {
    if (this.added.has(hex)) return true;
    if (this.table.length === 0 || hex.length !== 64) return false;
    let h = parseInt(hex.slice(0, 8), 16) & this.mask;
    for (;;) {
      const v = this.table[h];
      if (v === 0) return false;
      if (this.ids.toString('hex', (v - 1) * 32, v * 32) === hex) return true;
      h = (h + 1) & this.mask;
    }
  }

  add(hex) {
    this.added.add(hex);
  }
}
