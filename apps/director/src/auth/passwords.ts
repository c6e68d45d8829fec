/**
 * Password hashing with scrypt (node:crypto, no native dependency), on libuv's
 * thread pool so a hash never blocks the event loop.
 * Stored as "scrypt$N$r$p$<salt b64>$<hash b64>" so parameters can grow: a hash
 * made with weaker parameters still verifies and is redone at the next sign-in.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt's cost parameters. */
export interface PasswordCost {
  N: number;
  r: number;
  p: number;
}

/** What the Director uses: N = 2^17, r = 8 (128 MiB per hash). */
export const PASSWORD_COST: PasswordCost = { N: 1 << 17, r: 8, p: 1 };

const KEYLEN = 32;
/** A stored hash never asks for more than this (N up to 2^20 with r = 8). */
const MAX_N = 1 << 20;

// scrypt needs 128·N·r·p bytes (plus a little); Node refuses above maxmem, so it follows the parameters.
const maxmemFor = (c: PasswordCost) => 128 * c.N * c.r * c.p + 1024 * 1024;

const scrypt = (password: string, salt: Buffer, keylen: number, opts: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) => {
    scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });

export async function hashPassword(password: string, cost: PasswordCost = PASSWORD_COST): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, KEYLEN, { ...cost, maxmem: maxmemFor(cost) });
  return ['scrypt', cost.N, cost.r, cost.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

function parseStored(stored: string): { cost: PasswordCost; salt: Buffer; hash: Buffer } | null {
  const [algo, n, r, p, salt, hash] = stored.split('$');
  if (algo !== 'scrypt' || !salt || !hash) return null;
  const cost = { N: Number(n), r: Number(r), p: Number(p) };
  if (![cost.N, cost.r, cost.p].every((x) => Number.isSafeInteger(x) && x > 0) || cost.N > MAX_N || cost.r > 32 || cost.p > 16) return null;
  return { cost, salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseStored(stored);
  if (!parsed) return false;
  const actual = await scrypt(password, parsed.salt, parsed.hash.length, { ...parsed.cost, maxmem: maxmemFor(parsed.cost) });
  return actual.length === parsed.hash.length && timingSafeEqual(actual, parsed.hash);
}

/** True when a stored hash was made with weaker parameters than `cost` (or is not one we can read): hash it again. */
export function needsRehash(stored: string, cost: PasswordCost = PASSWORD_COST): boolean {
  const parsed = parseStored(stored);
  if (!parsed) return true;
  return parsed.cost.N < cost.N || parsed.cost.r < cost.r || parsed.cost.p < cost.p || parsed.hash.length < KEYLEN;
}

/** A random password people can type: 4 groups of 5 from an unambiguous alphabet. */
export function generatePassword(): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const bytes = randomBytes(20);
  let out = '';
  for (let i = 0; i < 20; i++) {
    if (i > 0 && i % 5 === 0) out += '-';
    out += alphabet[bytes[i]! % alphabet.length];
  }
  return out;
}
