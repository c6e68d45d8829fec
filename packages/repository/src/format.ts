/**
 * On-disk format constants and codecs (see docs/repository-format.md).
 *
 * Every metadata file (index, disk index, manifest) is a "sealed file":
 *   header(8) = 'VLTF' | version u8 | kind u8 | flags u8 | 0
 *   plain:      payload | SHA-256(header || payload)          (truncation/bit-rot detected)
 *   encrypted:  nonce(12) | AES-256-GCM(payload, aad=header) | tag(16)
 * Chunk blobs inside packs are zstd frames with the content checksum flag set
 * (so every decompression verifies an xxh64 of the plaintext), encrypted as
 * nonce | ciphertext | tag when the repository is encrypted.
 */
import * as crypto from 'node:crypto';
import { CorruptDataError, WrongPassphraseError, RepositoryError } from './errors.ts';
import { openBlob } from './chunk-codec.mjs';
import type { ChunkHash } from './chunk-codec.mjs';

export type { ChunkHash };
export const FORMAT_NAME = 'vaultline-repository';
/** Version written by `Repository.init`. */
export const FORMAT_VERSION = 3;
/** Versions this build opens, verifies and writes new backups into (a v1 or v2 repository keeps its version). */
export const READABLE_VERSIONS: readonly number[] = [1, 2, 3];
/** From v3 an encrypted blob is bound to its id (AES-GCM AAD = the raw 32-byte id) and an encrypted config carries a MAC. */
export function bindsBlobIds(version: number): boolean {
  return version >= 3;
}
export const DEFAULT_CHUNK_SIZE = 256 * 1024;
/** Default piece size: 64 KiB (the usual CBT block), at most a quarter of the chunk. */
export function defaultPieceSize(chunkSize: number): number {
  const p = Math.max(4096, Math.min(64 * 1024, Math.floor(chunkSize / 4)));
  return chunkSize % p === 0 ? p : chunkSize;
}
export const DEFAULT_PACK_TARGET = 32 * 1024 * 1024;
export const ID_BYTES = 32;
export const HOLE_ID = Buffer.alloc(ID_BYTES);
export const HOLE_HEX = HOLE_ID.toString('hex');

export enum SealedKind {
  Index = 1,
  DiskIndex = 2,
  Manifest = 3,
}

const MAGIC = Buffer.from('VLTF');
const FLAG_ENCRYPTED = 1;

export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string; // base64
}

export interface RepositoryConfig {
  format: typeof FORMAT_NAME;
  version: number;
  id: string;
  createdAt: string;
  chunkSize: number;
  /** v2: granularity of partial chunk updates (sub-chunk pieces); equal to chunkSize = pieces off. Absent in v1. */
  pieceSize?: number;
  packTargetSize: number;
  /** Chunk-id algorithm: v1 'sha256' | 'hmac-sha256'; v2 'blake3' | 'blake3-keyed'. */
  hash: ChunkHash;
  compression: { algorithm: 'zstd'; level: number };
  encryption: null | {
    algorithm: 'aes-256-gcm';
    kdf: KdfParams;
    /** nonce(12) | AES-256-GCM(masterKey(64)) | tag(16), base64; AAD = repository id. */
    wrappedKey: string;
  };
  /** v3, encrypted: base64 HMAC-SHA256 of every other field (canonical JSON) under a key derived from the master key. */
  mac?: string;
}

/**
 * Upper bounds on scrypt parameters, checked before anything is derived: a
 * config is written by whoever can write the storage, and scrypt with a huge
 * N, r or p would hold the Director's CPU and memory for minutes. The default
 * (N 2^15, r 8, p 1: 32 MiB, ~100 ms) is well inside.
 */
export const KDF_LIMITS = { maxN: 1 << 20, maxR: 32, maxP: 16, maxMemoryBytes: 1024 * 1024 * 1024, maxWork: 1 << 24 } as const;

/** Throws a `CorruptDataError` naming the offending parameter unless `kdf` is a scrypt setting within `KDF_LIMITS`. */
export function assertKdfWithinLimits(kdf: KdfParams): void {
  const bad = (why: string) => new CorruptDataError(`config: KDF parameters refused (${why})`);
  if (kdf?.name !== 'scrypt') throw bad(`unknown KDF ${JSON.stringify(kdf?.name)}`);
  const { N, r, p } = kdf;
  if (!Number.isSafeInteger(N) || N < 2 || (N & (N - 1)) !== 0 || N > KDF_LIMITS.maxN) throw bad(`N ${JSON.stringify(N)} must be a power of 2 up to ${KDF_LIMITS.maxN}`);
  if (!Number.isSafeInteger(r) || r < 1 || r > KDF_LIMITS.maxR) throw bad(`r ${JSON.stringify(r)} must be 1 to ${KDF_LIMITS.maxR}`);
  if (!Number.isSafeInteger(p) || p < 1 || p > KDF_LIMITS.maxP) throw bad(`p ${JSON.stringify(p)} must be 1 to ${KDF_LIMITS.maxP}`);
  if (128 * N * r > KDF_LIMITS.maxMemoryBytes) throw bad(`N × r needs ${(128 * N * r) / 2 ** 20} MiB, more than ${KDF_LIMITS.maxMemoryBytes / 2 ** 20} MiB`);
  if (N * r * p > KDF_LIMITS.maxWork) throw bad(`N × r × p = ${N * r * p} is more than ${KDF_LIMITS.maxWork}`);
  if (typeof kdf.salt !== 'string' || Buffer.from(kdf.salt, 'base64').length < 16) throw bad('the salt must be at least 16 bytes');
}

/** JSON with object keys sorted at every level: the bytes a MAC covers do not depend on key order or whitespace. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The config's MAC (v3, encrypted): HMAC-SHA256 over every field but `mac`, keyed by HKDF(master key, repository id). */
export function configMac(config: RepositoryConfig, keys: Keys): string {
  const key = Buffer.from(crypto.hkdfSync('sha256', Buffer.concat([keys.enc, keys.id]), Buffer.from(config.id), 'vaultline config mac', 32));
  const { mac: _mac, ...fields } = config;
  return crypto.createHmac('sha256', key).update(canonicalJson(fields)).digest('base64');
}

/** Throws unless the config's MAC is the one `keys` give; a v3 encrypted config without one is refused too. */
export function assertConfigMac(config: RepositoryConfig, keys: Keys): void {
  const want = Buffer.from(configMac(config, keys), 'base64');
  const got = Buffer.from(typeof config.mac === 'string' ? config.mac : '', 'base64');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) throw new CorruptDataError('config: MAC mismatch (the config was modified after the repository was created)');
}

/** Master key material: `enc` encrypts, `id` keys the chunk-id HMAC. */
export interface Keys {
  enc: Buffer;
  id: Buffer;
}

/** The key-encryption key; scrypt runs in libuv's thread pool (~100 ms at the default cost), never on the caller's thread. */
export function deriveKek(passphrase: string, kdf: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    crypto.scrypt(passphrase.normalize('NFC'), Buffer.from(kdf.salt, 'base64'), 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export function wrapMasterKey(master: Buffer, kek: Buffer, repoId: string): string {
  const nonce = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', kek, nonce);
  c.setAAD(Buffer.from(repoId));
  const ct = Buffer.concat([c.update(master), c.final()]);
  return Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64');
}

export function unwrapMasterKey(wrapped: string, kek: Buffer, repoId: string): Keys {
  const raw = Buffer.from(wrapped, 'base64');
  if (raw.length !== 12 + 64 + 16) throw new CorruptDataError('config: wrapped key has the wrong length');
  const d = crypto.createDecipheriv('aes-256-gcm', kek, raw.subarray(0, 12));
  d.setAAD(Buffer.from(repoId));
  d.setAuthTag(raw.subarray(12 + 64));
  let master: Buffer;
  try {
    master = Buffer.concat([d.update(raw.subarray(12, 12 + 64)), d.final()]);
  } catch {
    throw new WrongPassphraseError();
  }
  return { enc: master.subarray(0, 32), id: master.subarray(32, 64) };
}

/** Seal a metadata file; `version` is the repository's format version (it selects payload layouts). */
export function seal(kind: SealedKind, payload: Buffer, keys: Keys | null, version: number): Buffer {
  const header = Buffer.alloc(8);
  MAGIC.copy(header, 0);
  header[4] = version;
  header[5] = kind;
  header[6] = keys ? FLAG_ENCRYPTED : 0;
  if (!keys) {
    const sum = crypto.createHash('sha256').update(header).update(payload).digest();
    return Buffer.concat([header, payload, sum]);
  }
  const nonce = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', keys.enc, nonce);
  c.setAAD(header);
  const ct = Buffer.concat([c.update(payload), c.final()]);
  return Buffer.concat([header, nonce, ct, c.getAuthTag()]);
}

export function unseal(kind: SealedKind, data: Buffer, keys: Keys | null, what: string): Buffer {
  return unsealVersioned(kind, data, keys, what).payload;
}

/** Like `unseal`, also returning the format version recorded in the (authenticated) header. */
export function unsealVersioned(kind: SealedKind, data: Buffer, keys: Keys | null, what: string): { payload: Buffer; version: number } {
  if (data.length < 8 + 32 || !data.subarray(0, 4).equals(MAGIC)) throw new CorruptDataError(`${what}: not a sealed file or truncated (${data.length} bytes)`);
  const header = data.subarray(0, 8);
  const version = header[4] ?? 0;
  if (!READABLE_VERSIONS.includes(version)) throw new RepositoryError('UNSUPPORTED_VERSION', `${what}: format version ${version} is not supported (this build reads ${READABLE_VERSIONS.join(', ')})`);
  if (header[5] !== kind) throw new CorruptDataError(`${what}: unexpected file kind ${header[5]}`);
  const encrypted = ((header[6] ?? 0) & FLAG_ENCRYPTED) !== 0;
  if (!encrypted) {
    if (keys) throw new CorruptDataError(`${what}: stored unencrypted in an encrypted repository`);
    const payload = data.subarray(8, data.length - 32);
    const sum = crypto.createHash('sha256').update(header).update(payload).digest();
    if (!sum.equals(data.subarray(data.length - 32))) throw new CorruptDataError(`${what}: checksum mismatch (truncated or damaged)`);
    return { payload, version };
  }
  if (!keys) throw new CorruptDataError(`${what}: encrypted but the repository has no key`);
  if (data.length < 8 + 12 + 16) throw new CorruptDataError(`${what}: truncated`);
  const d = crypto.createDecipheriv('aes-256-gcm', keys.enc, data.subarray(8, 20));
  d.setAAD(header);
  d.setAuthTag(data.subarray(data.length - 16));
  try {
    return { payload: Buffer.concat([d.update(data.subarray(20, data.length - 16)), d.final()]), version };
  } catch (err) {
    throw new CorruptDataError(`${what}: authentication failed (truncated or damaged)`, { cause: err });
  }
}

/** Decrypt one chunk blob (nonce | ct | tag) into a fresh buffer; `aad` is its raw id from v3 on, null before. */
export function decryptBlob(blob: Buffer, keys: Keys, aad: Buffer | null, what: string): Buffer {
  try {
    return openBlob(blob, keys.enc, aad);
  } catch (err) {
    throw new CorruptDataError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** The chunk-id algorithm a new repository of `version` uses. */
export function chunkHashFor(version: number, encrypted: boolean): ChunkHash {
  if (version === 1) return encrypted ? 'hmac-sha256' : 'sha256';
  return encrypted ? 'blake3-keyed' : 'blake3';
}

// ---- pack footer -------------------------------------------------------
// blobs... | entries (count × 44: id 32 | offset u32 | storedLen u32 | rawLen u32)
//          | sha256(entries) 32 | count u32 | 'VLPK' | version u8 | 0 0 0
export const PACK_ENTRY = 44;
export const PACK_TRAILER = 32 + 4 + 8;
const PACK_MAGIC = Buffer.from('VLPK');
/** The pack layout is the same in format v1 and v2. */
const PACK_LAYOUT_VERSION = 1;

export interface PackEntry {
  id: Buffer;
  offset: number;
  storedLen: number;
  rawLen: number;
}

export function encodePackFooter(entries: PackEntry[]): Buffer {
  const body = Buffer.alloc(entries.length * PACK_ENTRY);
  entries.forEach((e, i) => {
    const o = i * PACK_ENTRY;
    e.id.copy(body, o);
    body.writeUInt32LE(e.offset, o + 32);
    body.writeUInt32LE(e.storedLen, o + 36);
    body.writeUInt32LE(e.rawLen, o + 40);
  });
  const trailer = Buffer.alloc(PACK_TRAILER);
  crypto.createHash('sha256').update(body).digest().copy(trailer, 0);
  trailer.writeUInt32LE(entries.length, 32);
  PACK_MAGIC.copy(trailer, 36);
  trailer[40] = PACK_LAYOUT_VERSION;
  return Buffer.concat([body, trailer]);
}

export function decodePackTrailer(trailer: Buffer, what: string): number {
  if (trailer.length !== PACK_TRAILER || !trailer.subarray(36, 40).equals(PACK_MAGIC)) throw new CorruptDataError(`${what}: pack trailer missing`);
  return trailer.readUInt32LE(32);
}

export function decodePackEntries(body: Buffer, trailer: Buffer, what: string): PackEntry[] {
  const sum = crypto.createHash('sha256').update(body).digest();
  if (!sum.equals(trailer.subarray(0, 32))) throw new CorruptDataError(`${what}: pack footer checksum mismatch`);
  const out: PackEntry[] = [];
  for (let o = 0; o + PACK_ENTRY <= body.length; o += PACK_ENTRY) {
    out.push({ id: Buffer.from(body.subarray(o, o + 32)), offset: body.readUInt32LE(o + 32), storedLen: body.readUInt32LE(o + 36), rawLen: body.readUInt32LE(o + 40) });
  }
  return out;
}

// ---- global index file ----------------------------------------------------
// packCount u32 | packIds (16 each) | entryCount u32 | entries (id 32 | pack u32 | offset u32 | storedLen u32 | rawLen u32)
export interface BlobLocation {
  pack: string; // hex pack id
  offset: number;
  storedLen: number;
  rawLen: number;
}

export function encodeIndex(entries: Map<string, BlobLocation>): Buffer {
  const packs = new Map<string, number>();
  for (const loc of entries.values()) if (!packs.has(loc.pack)) packs.set(loc.pack, packs.size);
  const buf = Buffer.alloc(4 + packs.size * 16 + 4 + entries.size * 48);
  let o = 0;
  buf.writeUInt32LE(packs.size, o);
  o += 4;
  for (const p of packs.keys()) {
    Buffer.from(p, 'hex').copy(buf, o);
    o += 16;
  }
  buf.writeUInt32LE(entries.size, o);
  o += 4;
  for (const [id, loc] of entries) {
    Buffer.from(id, 'hex').copy(buf, o);
    buf.writeUInt32LE(packs.get(loc.pack) ?? 0, o + 32);
    buf.writeUInt32LE(loc.offset, o + 36);
    buf.writeUInt32LE(loc.storedLen, o + 40);
    buf.writeUInt32LE(loc.rawLen, o + 44);
    o += 48;
  }
  return buf;
}

export function decodeIndex(buf: Buffer, what: string, into: Map<string, BlobLocation>): string[] {
  try {
    let o = 0;
    const np = buf.readUInt32LE(o);
    o += 4;
    const packs: string[] = [];
    for (let i = 0; i < np; i++, o += 16) packs.push(buf.subarray(o, o + 16).toString('hex'));
    const ne = buf.readUInt32LE(o);
    o += 4;
    if (o + ne * 48 !== buf.length) throw new Error('length mismatch');
    for (let i = 0; i < ne; i++, o += 48) {
      const pack = packs[buf.readUInt32LE(o + 32)];
      if (pack === undefined) throw new Error('bad pack reference');
      into.set(buf.subarray(o, o + 32).toString('hex'), { pack, offset: buf.readUInt32LE(o + 36), storedLen: buf.readUInt32LE(o + 40), rawLen: buf.readUInt32LE(o + 44) });
    }
    return packs;
  } catch (err) {
    throw new CorruptDataError(`${what}: malformed index`, { cause: err });
  }
}

// ---- disk index -------------------------------------------------------------
// v1 and v2: capacity u64 | chunkSize u32 | count u32 | count × 32-byte ids (all-zero id = hole)
// v2 adds:   splitCount u32 | splitCount × (chunk u32 | pieceCount u32 |
//                pieceCount × (start u32 | len u32 | srcOff u32 | id 32))
// A split chunk's slot holds SPLIT_ID; its pieces cover [0, chunk length) in
// order, each naming a stored blob (or the hole id) and the byte offset of the
// piece inside that blob's plaintext. Pieces always name stored blobs directly
// (never another restore point's pieces), so reading one is one blob decode.
export const SPLIT_ID = Buffer.alloc(ID_BYTES, 0xff);
export const SPLIT_HEX = SPLIT_ID.toString('hex');
const PIECE_BYTES = 12 + ID_BYTES;

export interface Piece {
  /** Offset of the piece inside its chunk. */
  start: number;
  len: number;
  /** Hex id of the blob holding the bytes (HOLE_HEX: zeros). */
  id: string;
  /** Offset of the piece's bytes inside the blob's plaintext. */
  srcOff: number;
}

export interface DiskIndex {
  capacity: number;
  chunkSize: number;
  ids: Buffer; // count * 32
  /** Split chunks (format v2): chunk number -> pieces. Empty in v1. */
  pieces: Map<number, Piece[]>;
}

export function chunkCount(capacity: number, chunkSize: number): number {
  return Math.ceil(capacity / chunkSize);
}

export function encodeDiskIndex(d: DiskIndex, version: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64LE(BigInt(d.capacity), 0);
  h.writeUInt32LE(d.chunkSize, 8);
  h.writeUInt32LE(d.ids.length / ID_BYTES, 12);
  if (version === 1) {
    if (d.pieces.size > 0) throw new RepositoryError('INVALID_ARGUMENT', 'format v1 disk indexes cannot hold split chunks');
    return Buffer.concat([h, d.ids]);
  }
  const chunks = [...d.pieces.keys()].sort((a, b) => a - b);
  let n = 4;
  for (const ci of chunks) n += 8 + d.pieces.get(ci)!.length * PIECE_BYTES;
  const t = Buffer.alloc(n);
  t.writeUInt32LE(chunks.length, 0);
  let o = 4;
  for (const ci of chunks) {
    const ps = d.pieces.get(ci)!;
    t.writeUInt32LE(ci, o);
    t.writeUInt32LE(ps.length, o + 4);
    o += 8;
    for (const p of ps) {
      t.writeUInt32LE(p.start, o);
      t.writeUInt32LE(p.len, o + 4);
      t.writeUInt32LE(p.srcOff, o + 8);
      t.write(p.id, o + 12, 'hex');
      o += PIECE_BYTES;
    }
  }
  return Buffer.concat([h, d.ids, t]);
}

export function decodeDiskIndex(buf: Buffer, what: string, version: number): DiskIndex {
  if (buf.length < 16) throw new CorruptDataError(`${what}: disk index truncated`);
  const capacity = Number(buf.readBigUInt64LE(0));
  const chunkSize = buf.readUInt32LE(8);
  const count = buf.readUInt32LE(12);
  const idsEnd = 16 + count * ID_BYTES;
  const bad = (why: string) => new CorruptDataError(`${what}: disk index inconsistent (${why})`);
  if (chunkSize === 0 || count !== chunkCount(capacity, chunkSize)) throw bad(`capacity ${capacity}, ${count} entries`);
  if (version === 1 ? buf.length !== idsEnd : buf.length < idsEnd + 4) throw bad(`capacity ${capacity}, ${count} entries, ${buf.length} bytes`);
  const ids = Buffer.from(buf.subarray(16, idsEnd));
  const pieces = new Map<number, Piece[]>();
  if (version !== 1) {
    const splits = buf.readUInt32LE(idsEnd);
    let o = idsEnd + 4;
    let prev = -1;
    for (let i = 0; i < splits; i++) {
      if (o + 8 > buf.length) throw bad('split table truncated');
      const ci = buf.readUInt32LE(o);
      const np = buf.readUInt32LE(o + 4);
      o += 8;
      if (ci <= prev || ci >= count || np < 1 || o + np * PIECE_BYTES > buf.length) throw bad(`split chunk ${ci}`);
      if (!ids.subarray(ci * ID_BYTES, (ci + 1) * ID_BYTES).equals(SPLIT_ID)) throw bad(`chunk ${ci} has pieces but no split marker`);
      const clen = Math.min(chunkSize, capacity - ci * chunkSize);
      const ps: Piece[] = [];
      let pos = 0;
      for (let k = 0; k < np; k++, o += PIECE_BYTES) {
        const p = { start: buf.readUInt32LE(o), len: buf.readUInt32LE(o + 4), srcOff: buf.readUInt32LE(o + 8), id: buf.toString('hex', o + 12, o + 12 + ID_BYTES) };
        if (p.start !== pos || p.len === 0 || p.id === SPLIT_HEX) throw bad(`chunk ${ci} piece ${k}`);
        pos += p.len;
        ps.push(p);
      }
      if (pos !== clen) throw bad(`chunk ${ci}: pieces cover ${pos} of ${clen} bytes`);
      pieces.set(ci, ps);
      prev = ci;
    }
    if (o !== buf.length) throw bad(`${buf.length - o} trailing bytes`);
    for (let ci = 0; ci < count; ci++) {
      if (!pieces.has(ci) && ids.subarray(ci * ID_BYTES, (ci + 1) * ID_BYTES).equals(SPLIT_ID)) throw bad(`chunk ${ci} is marked split but has no pieces`);
    }
  }
  return { capacity, chunkSize, ids, pieces };
}

/**
 * Every blob id a disk index references (holes excluded), with the disk offset
 * that uses it and how many bytes of the blob's plaintext it needs (pieces:
 * srcOff + len; whole chunks: the chunk length).
 */
export function forEachReference(d: DiskIndex, fn: (id: string, diskOffset: number, needs: number) => void): void {
  const count = d.ids.length / ID_BYTES;
  for (let ci = 0; ci < count; ci++) {
    const ps = d.pieces.get(ci);
    if (ps) {
      for (const p of ps) if (p.id !== HOLE_HEX) fn(p.id, ci * d.chunkSize + p.start, p.srcOff + p.len);
      continue;
    }
    const id = d.ids.toString('hex', ci * ID_BYTES, (ci + 1) * ID_BYTES);
    if (id !== HOLE_HEX) fn(id, ci * d.chunkSize, Math.min(d.chunkSize, d.capacity - ci * d.chunkSize));
  }
}

export function packPath(pack: string): string {
  return `packs/${pack.slice(0, 2)}/${pack}.pack`;
}
