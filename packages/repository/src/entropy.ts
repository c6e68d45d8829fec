/**
 * Statistics of the data a backup stored anew, for the ransomware signal (packages/core backup/anomaly.ts).
 *
 * Compressibility comes for free: the workers already compressed every new chunk, so it is the disk's
 * new stored bytes over its new raw bytes. Entropy is estimated by the same workers from a small sample of
 * each new blob (entropy-sample.mjs), while they hash and compress it: the writer only adds up the figures.
 */
import { ENTROPY_SAMPLE_BYTES } from './entropy-sample.mjs';

export { byteEntropy, ENTROPY_SAMPLE_BYTES, sampleEntropy } from './entropy-sample.mjs';

/**
 * A sample at or above this many bits per byte counts as high-entropy (encrypted or already compressed):
 * ciphertext measures ≈ 8.0 (corrected, see sampleEntropy), text and binaries 4–6.5.
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

/** Adds one new blob of `rawLen` bytes, stored as `storedLen`, whose sample measured `entropy` bits per byte. */
export function addNewBlob(into: ChangedDataStats, rawLen: number, storedLen: number, entropy: number): void {
  into.newRawBytes += rawLen;
  into.newStoredBytes += storedLen;
  if (rawLen === 0) return;
  const take = Math.min(rawLen, ENTROPY_SAMPLE_BYTES);
  into.sampledBytes += take;
  into.entropyBits += entropy * take;
  if (entropy >= HIGH_ENTROPY_BITS) into.highEntropyBytes += rawLen;
}
