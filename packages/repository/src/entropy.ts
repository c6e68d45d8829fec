/**
 * Statistics of the data a backup stored anew, for the ransomware signal (packages/core backup/anomaly.ts).
 *
 * Compressibility comes for free: the workers already compressed every new chunk, so it is the disk's
 * new stored bytes over its new raw bytes. Entropy is not: it is estimated from a small sample of each new
 * blob (ENTROPY_SAMPLE_BYTES from its middle), on the writer's thread while the slot still holds the
 * plaintext, so the cost stays a fraction of a percent of hashing and compressing the whole chunk.
 */

/** Bytes sampled per new blob: enough for a stable byte histogram, small next to a chunk. */
export const ENTROPY_SAMPLE_BYTES = 4096;
/**
 * A sample at or above this many bits per byte counts as high-entropy (encrypted or already compressed):
 * ciphertext measures ≈ 7.95 over 4 KiB, text and binaries 4–6.5.
 */
export const HIGH_ENTROPY_BITS = 7.5;

export interface ChangedDataStats {
  /** Uncompressed bytes of the new blobs (as WriteStats.newRawBytes). */
  newRawBytes: number;
  /** Their stored size (compressed, encrypted), as WriteStats.newStoredBytes. */
  newStoredBytes: number;
  /** Bytes of the entropy samples. */
  sampledBytes: number;
  /** Sum over samples of (entropy in bits per byte × sample length): divided by sampledBytes, the mean. */
  entropyBits: number;
  /** Raw bytes of new blobs whose sample was high-entropy. */
  highEntropyBytes: number;
}

export function emptyChangedData(): ChangedDataStats {
  return { newRawBytes: 0, newStoredBytes: 0, sampledBytes: 0, entropyBits: 0, highEntropyBytes: 0 };
}

const counts = new Uint32Array(256);
const log2Table = new Float64Array(ENTROPY_SAMPLE_BYTES + 1).map((_, i) => (i > 0 ? Math.log2(i) : 0));

/** Shannon entropy of the bytes of `b`, in bits per byte (0 for an empty buffer, 8 at most). */
export function byteEntropy(b: Uint8Array): number {
  const n = b.length;
  if (n === 0) return 0;
  counts.fill(0);
  for (let i = 0; i < n; i++) counts[b[i]!]!++;
  // H = log2 n − Σ c·log2 c / n
  const logN = n < log2Table.length ? log2Table[n]! : Math.log2(n);
  let sum = 0;
  for (let v = 0; v < 256; v++) {
    const c = counts[v]!;
    if (c > 0) sum += c * (c < log2Table.length ? log2Table[c]! : Math.log2(c));
  }
  return Math.max(0, logN - sum / n);
}

/** Adds one new blob of `raw` bytes (stored as `storedLen`) to `into`, sampling its entropy. */
export function addNewBlob(into: ChangedDataStats, raw: Uint8Array, storedLen: number): void {
  const len = raw.length;
  into.newRawBytes += len;
  into.newStoredBytes += storedLen;
  if (len === 0) return;
  const take = Math.min(len, ENTROPY_SAMPLE_BYTES);
  const at = (len - take) >> 1;
  const h = byteEntropy(raw.subarray(at, at + take));
  into.sampledBytes += take;
  into.entropyBits += h * take;
  if (h >= HIGH_ENTROPY_BITS) into.highEntropyBytes += len;
}
