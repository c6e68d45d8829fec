// Byte entropy of a sample of each new blob, for the ransomware signal (entropy.ts explains the statistic).
// Plain JavaScript because the chunk workers compute it (they start without a TypeScript loader), on the
// blob's plaintext while they hash and compress it: the writer's thread never touches the bytes.

/** Bytes sampled per new blob, from its middle. */
export const ENTROPY_SAMPLE_BYTES = 1024;

const counts = new Uint32Array(256);
const LOG_TABLE_SIZE = 4097;
const log2Table = new Float64Array(LOG_TABLE_SIZE).map((_, i) => (i > 0 ? Math.log2(i) : 0));
const log2 = (n) => (n < LOG_TABLE_SIZE ? log2Table[n] : Math.log2(n));

/** Counts the bytes of `b` into `counts`; returns how many byte values occur. */
function histogram(b) {
  counts.fill(0);
  const n = b.length;
  for (let i = 0; i < n; i++) counts[b[i]]++;
  let seen = 0;
  for (let v = 0; v < 256; v++) if (counts[v] > 0) seen++;
  return seen;
}

function plugIn(n) {
  // H = log2 n − Σ c·log2 c / n
  let sum = 0;
  for (let v = 0; v < 256; v++) {
    const c = counts[v];
    if (c > 0) sum += c * log2(c);
  }
  return Math.max(0, log2(n) - sum / n);
}

/** Shannon entropy of the bytes of `b` as counted (the plug-in estimate), in bits per byte: 0 to 8. */
export function byteEntropy(b) {
  if (b.length === 0) return 0;
  histogram(b);
  return plugIn(b.length);
}

/**
 * The entropy of a blob, estimated from ENTROPY_SAMPLE_BYTES of its middle with the Miller–Madow correction
 * ((seen values − 1) / (2 n ln 2) added): a 1 KiB sample of random bytes counts ≈ 7.82 bits as is, ≈ 8.0
 * corrected, so a small sample reads like a large one and costs a quarter of a 4 KiB one.
 */
export function sampleEntropy(blob) {
  const take = Math.min(blob.length, ENTROPY_SAMPLE_BYTES);
  if (take === 0) return 0;
  const at = (blob.length - take) >> 1;
  const seen = histogram(blob.subarray(at, at + take));
  return Math.min(8, plugIn(take) + (seen - 1) / (2 * take * Math.LN2));
}
