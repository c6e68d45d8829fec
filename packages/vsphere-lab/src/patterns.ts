/**
 * Deterministic guest data: zeros, text-like (log lines) and random bytes
 * (AES-CTR keystream of a seed), so a test can regenerate what it wrote.
 */
import { createCipheriv, createHash } from 'node:crypto';

export type Pattern = 'zeros' | 'text' | 'random';

const words = (
  'the backup agent service disk volume snapshot kernel network request response user session cache ' +
  'database index table query commit rollback error warning info debug started stopped completed failed ' +
  'retry timeout connection socket file directory read write sync flush block extent inode journal'
).split(' ');

function prng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** `length` bytes of the given pattern; `offset` varies the content per position. */
export function patternBytes(pattern: Pattern, length: number, seed = 1, offset = 0): Buffer {
  if (pattern === 'zeros') return Buffer.alloc(length);
  if (pattern === 'random') {
    const key = createHash('sha256').update(`vaultline-lab:${seed}`).digest().subarray(0, 16);
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64BE(BigInt(Math.floor(offset / 16)), 8);
    return createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(length));
  }
  // Log-like lines drawn from a fixed pool (fast), with a counter so lines differ.
  const rnd = prng(seed * 2654435761 + offset);
  const pool = linePool();
  const parts: string[] = [];
  let size = 0;
  let n = Math.floor(offset / 64);
  while (size < length) {
    const line = `${(n++).toString(36).padStart(8, '0')} ${pool[Math.floor(rnd() * pool.length)]}`;
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, length);
}

let pool: string[] | undefined;

function linePool(): string[] {
  if (pool) return pool;
  const rnd = prng(42);
  let t = Date.UTC(2026, 0, 1) / 1000;
  pool = [];
  for (let i = 0; i < 4096; i++) {
    t += Math.floor(rnd() * 5);
    const n = 4 + Math.floor(rnd() * 12);
    const msg = Array.from({ length: n }, () => words[Math.floor(rnd() * words.length)]).join(' ');
    pool.push(`${new Date(t * 1000).toISOString()} vm-guest app[${1000 + Math.floor(rnd() * 9000)}]: ${msg}\n`);
  }
  return pool;
}
