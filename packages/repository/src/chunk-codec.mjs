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
