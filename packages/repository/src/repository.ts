/**
 * The repository: opens/creates the layout, owns the key, the in-memory global
 * index (chunk id -> pack location) and blob decoding. Writers, readers and
 * maintenance (verify, prune, GC) build on it.
 *
 * Layout (all through the Backend interface):
 *   config                              JSON, never encrypted (holds the wrapped key)
 *   packs/<xx>/<packid>.pack            chunk blobs + footer
 *   index/<id>.idx                      sealed: chunk id -> (pack, offset, lengths)
 *   snapshots/<vmId>/<rpId>/disk-<n>.didx   sealed disk index (one id per chunk)
 *   snapshots/<vmId>/<rpId>/manifest    sealed JSON; its presence makes the restore point visible
 *   locks/<id>.lock                     leases (see locks.ts)
 */
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import type { Backend } from './backends/backend.ts';
import { isTmpName } from './backends/backend.ts';
import { LocalBackend } from './backends/local.ts';
import {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_PACK_TARGET,
  defaultPieceSize,
  FORMAT_NAME,
  FORMAT_VERSION,
  READABLE_VERSIONS,
  SealedKind,
  assertConfigMac,
  assertKdfWithinLimits,
  bindsBlobIds,
  chunkHashFor,
  configMac,
  decodeDiskIndex,
  decodeIndex,
  decryptBlob,
  deriveKek,
  packPath,
  seal,
  unseal,
  unsealVersioned,
  unwrapMasterKey,
  wrapMasterKey,
} from './format.ts';
import type { BlobLocation, DiskIndex, KdfParams, Keys, RepositoryConfig } from './format.ts';
import { CorruptDataError, NotFoundError, RepositoryError } from './errors.ts';
import { LockManager } from './locks.ts';
import { ID_MISMATCH, blobDecoder, makeChunkHasher, mustRehashIds } from './chunk-codec.mjs';
import type { LockOptions } from './locks.ts';
import type { PoolOptions } from './pool.ts';
import type { Manifest, RestorePointRef } from './types.ts';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi/binding') as typeof ZstdBinding;

export interface InitOptions {
  passphrase?: string;
  chunkSize?: number;
  /** Granularity of partial chunk updates in incrementals (default 64 KiB, at most chunkSize/4; = chunkSize turns pieces off). */
  pieceSize?: number;
  compressionLevel?: number;
  packTargetSize?: number;
  /** scrypt cost; the default N=2^15 takes ~100 ms. Tests may lower it. */
  kdf?: { N: number; r: number; p: number };
}

/**
 * What the Director records of a repository (PostgreSQL) and compares on every
 * open: whoever can write the storage can replace the config, but not the
 * record (docs/repository-format.md §2).
 */
export interface RepositoryIdentity {
  id: string;
  encrypted: boolean;
  /** scrypt parameters of the wrapped key; null when unencrypted. */
  kdf: Omit<KdfParams, 'name'> | null;
  /** SHA-256 (hex) of the config file as stored; the config never changes after init. */
  configSha256: string;
}

/** Identity fields to compare on open; an absent (undefined) field is not compared. */
export type ExpectedIdentity = { [K in keyof RepositoryIdentity]?: RepositoryIdentity[K] };

export interface OpenOptions {
  passphrase?: string;
  /** Refuse to open (`IDENTITY_MISMATCH`, naming what differs) unless the repository is this one. Checked before any key is derived. */
  expect?: ExpectedIdentity;
  locks?: LockOptions;
  /** Worker threads for the write path (default 2). */
  workers?: number;
  now?: () => number;
  /**
   * Read the global index (chunk locations) now; default true. False for
   * callers that start with manifests: they call reloadIndex() before reading
   * chunks.
   */
  index?: boolean;
  /** Derives the key-encryption key (default deriveKek: scrypt); a caller may pass one that remembers results. */
  kek?: (passphrase: string, kdf: KdfParams) => Promise<Buffer>;
  /**
   * Benchmarks only: decode as format v2 did (zstd's frame checksum, no re-hash proving each blob's
   * id), so `npm run bench` can measure what the id check costs in the same run. A swapped blob then
   * goes unnoticed: never set it anywhere else.
   */
  benchmarkWithoutIdCheck?: true;
}

const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export function assertSafeName(kind: string, v: string): void {
  if (!SAFE.test(v)) throw new RepositoryError('INVALID_ARGUMENT', `${kind} must match ${SAFE} (got ${JSON.stringify(v)})`);
}

export function newRestorePointId(now: number): string {
  const iso = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${iso}-${crypto.randomBytes(3).toString('hex')}`;
}

export class Repository {
  readonly backend: Backend;
  readonly config: RepositoryConfig;
  readonly keys: Keys | null;
  readonly locks: LockManager;
  readonly workers: number;
  readonly now: () => number;
  /** chunk id (hex) -> location, merged over all index files. */
  index = new Map<string, BlobLocation>();
  indexFiles: string[] = [];
  /** The repository's chunk-id function (config `hash`): plaintext -> hex id. */
  readonly hashChunk: (data: Uint8Array) => string;
  /** What a caller records to recognise this repository on later opens (OpenOptions.expect). */
  readonly identity: RepositoryIdentity;
  /** Format v3: encrypted blobs are bound to their ids by AES-GCM AAD. */
  private readonly bindIds: boolean;
  /** Decoding re-hashes blobs to prove their ids (everything the AAD does not already prove). */
  private readonly rehashIds: boolean;
  private readonly dctx: ZstdBinding.DCtx;

  private constructor(backend: Backend, config: RepositoryConfig, keys: Keys | null, identity: RepositoryIdentity, opts: OpenOptions) {
    this.backend = backend;
    this.config = config;
    this.keys = keys;
    this.identity = identity;
    this.bindIds = bindsBlobIds(config.version);
    this.rehashIds = opts.benchmarkWithoutIdCheck ? false : mustRehashIds(keys !== null, this.bindIds);
    this.dctx = blobDecoder(zstd, this.rehashIds);
    this.hashChunk = makeChunkHasher(config.hash, keys ? keys.id : null);
    this.now = opts.now ?? Date.now;
    this.locks = new LockManager(backend, { now: this.now, ...opts.locks });
    this.workers = opts.workers ?? 2;
  }

  /** Create a repository (format FORMAT_VERSION); returns its identity, to be recorded by the caller. */
  static async init(backend: Backend | string, opts: InitOptions = {}): Promise<RepositoryIdentity> {
    const be = typeof backend === 'string' ? new LocalBackend(backend) : backend;
    if (await be.stat('config')) throw new RepositoryError('ALREADY_EXISTS', `a repository already exists at ${be.location}`);
    const id = crypto.randomBytes(16).toString('hex');
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (chunkSize < 4096 || chunkSize > 16 * 1024 * 1024 || chunkSize % 4096 !== 0) throw new RepositoryError('INVALID_ARGUMENT', 'chunkSize must be a multiple of 4 KiB between 4 KiB and 16 MiB');
    const pieceSize = opts.pieceSize ?? defaultPieceSize(chunkSize);
    if (!Number.isInteger(pieceSize) || pieceSize < 1024 || pieceSize > chunkSize || chunkSize % pieceSize !== 0) throw new RepositoryError('INVALID_ARGUMENT', 'pieceSize must divide chunkSize and be at least 1 KiB');
    let encryption: RepositoryConfig['encryption'] = null;
    let master: Buffer | null = null;
    if (opts.passphrase !== undefined) {
      if (opts.passphrase.length === 0) throw new RepositoryError('INVALID_ARGUMENT', 'empty passphrase');
      const kdf = { name: 'scrypt' as const, ...(opts.kdf ?? { N: 1 << 15, r: 8, p: 1 }), salt: crypto.randomBytes(16).toString('base64') };
      assertKdfWithinLimits(kdf);
      master = crypto.randomBytes(64);
      encryption = { algorithm: 'aes-256-gcm', kdf, wrappedKey: wrapMasterKey(master, await deriveKek(opts.passphrase, kdf), id) };
    }
    const config: RepositoryConfig = {
      format: FORMAT_NAME,
      version: FORMAT_VERSION,
      id,
      createdAt: new Date().toISOString(),
      chunkSize,
      pieceSize,
      packTargetSize: opts.packTargetSize ?? DEFAULT_PACK_TARGET,
      hash: chunkHashFor(FORMAT_VERSION, encryption !== null),
      compression: { algorithm: 'zstd', level: opts.compressionLevel ?? 1 },
      encryption,
    };
    if (master) config.mac = configMac(config, { enc: master.subarray(0, 32), id: master.subarray(32) });
    const raw = Buffer.from(JSON.stringify(config, null, 2));
    for (const d of ['packs', 'index', 'snapshots', 'locks']) await be.mkdirp(d);
    if (!(await be.createExclusive('config', raw))) {
      throw new RepositoryError('ALREADY_EXISTS', `a repository already exists at ${be.location}`);
    }
    return identityOf(config, raw);
  }

  static async open(backend: Backend | string, opts: OpenOptions = {}): Promise<Repository> {
    const be = typeof backend === 'string' ? new LocalBackend(backend) : backend;
    let raw: Buffer;
    try {
      raw = await be.readFile('config');
    } catch (err) {
      if (err instanceof NotFoundError) throw new RepositoryError('NOT_A_REPOSITORY', `no repository at ${be.location}`);
      throw err;
    }
    let config: RepositoryConfig;
    try {
      config = JSON.parse(raw.toString()) as RepositoryConfig;
    } catch (err) {
      throw new CorruptDataError('config is not valid JSON', { cause: err });
    }
    if (config.format !== FORMAT_NAME) throw new RepositoryError('NOT_A_REPOSITORY', `no repository at ${be.location}`);
    if (!READABLE_VERSIONS.includes(config.version)) {
      throw new RepositoryError(
        'UNSUPPORTED_VERSION',
        `repository format version ${config.version} at ${be.location} is not supported: this build reads versions ${READABLE_VERSIONS.join(' and ')}${config.version > FORMAT_VERSION ? '; upgrade Vaultline to open it' : ''}`,
      );
    }
    if (config.encryption !== null && typeof config.encryption !== 'object') throw new CorruptDataError('config: "encryption" must be null or an object');
    if (config.hash !== chunkHashFor(config.version, config.encryption !== null)) {
      throw new CorruptDataError(`config: chunk hash ${JSON.stringify(config.hash)} does not belong to format version ${config.version}${config.encryption ? ' (encrypted)' : ''}`);
    }
    if (config.version >= 2) {
      const ps = config.pieceSize;
      if (typeof ps !== 'number' || ps < 1024 || ps > config.chunkSize || config.chunkSize % ps !== 0) throw new CorruptDataError(`config: pieceSize ${JSON.stringify(ps)} does not divide chunkSize ${config.chunkSize}`);
    }
    const identity = identityOf(config, raw);
    if (opts.expect) assertIdentity(be.location, opts.expect, identity);
    let keys: Keys | null = null;
    if (config.encryption) {
      assertKdfWithinLimits(config.encryption.kdf);
      if (opts.passphrase === undefined) throw new RepositoryError('PASSPHRASE_REQUIRED', 'the repository is encrypted: a passphrase is required');
      keys = unwrapMasterKey(config.encryption.wrappedKey, await (opts.kek ?? deriveKek)(opts.passphrase, config.encryption.kdf), config.id);
      if (bindsBlobIds(config.version)) assertConfigMac(config, keys);
    } else if (opts.passphrase !== undefined) {
      throw new RepositoryError('NOT_ENCRYPTED', `the repository at ${be.location} is not encrypted, but a passphrase was given: refusing to use it as an encrypted repository`);
    }
    const repo = new Repository(be, config, keys, identity, opts);
    if (opts.index !== false) await repo.reloadIndex();
    return repo;
  }

  /** Whether the config file on storage differs from the one this instance opened (a cache then opens it afresh, and the open's checks apply). */
  async configChanged(): Promise<boolean> {
    const raw = await this.backend.readFile('config');
    return crypto.createHash('sha256').update(raw).digest('hex') !== this.identity.configSha256;
  }

  async close(): Promise<void> {
    await this.backend.close();
  }

  /** Worker-pool parameters for this repository (writers and restore share warm pools). */
  poolOptions(slots = 32): PoolOptions {
    return { workers: this.workers, slots, chunkSize: this.config.chunkSize, level: this.config.compression.level, hash: this.config.hash, keys: this.keys, bindIds: this.bindIds, rehashIds: this.rehashIds };
  }

  /**
   * Bring the in-memory map up to date with the index files. Files are
   * immutable once named, so only new ones are read; when one vanished (GC
   * consolidated them) everything is re-read. Damaged index files throw.
   */
  async reloadIndex(): Promise<void> {
    // One reload at a time (callers may share an opened repository); a later caller runs after it, so it sees files named since.
    const previous = this.reloading;
    const run = previous.catch(() => undefined).then(() => this.readNewIndexFiles());
    this.reloading = run;
    await run;
  }

  private reloading: Promise<void> = Promise.resolve();

  private async readNewIndexFiles(): Promise<void> {
    const names = (await this.backend.list('index')).filter((n) => n.endsWith('.idx') && !isTmpName(n));
    const present = new Set(names);
    const incremental = this.indexFiles.every((f) => present.has(f));
    const known = new Set(incremental ? this.indexFiles : []);
    const index = incremental ? this.index : new Map<string, BlobLocation>();
    const files = incremental ? [...this.indexFiles] : [];
    for (const name of names) {
      if (known.has(name)) continue;
      const data = await this.backend.readFile(`index/${name}`);
      const entries = new Map<string, BlobLocation>();
      decodeIndex(unseal(SealedKind.Index, data, this.keys, `index/${name}`), `index/${name}`, entries);
      for (const [id, loc] of entries) index.set(id, loc);
      files.push(name);
    }
    this.index = index;
    this.indexFiles = files;
  }

  // ---- restore points ---------------------------------------------------

  rpDir(ref: RestorePointRef): string {
    return `snapshots/${ref.vmId}/${ref.id}`;
  }

  async listVms(): Promise<string[]> {
    return (await this.backend.list('snapshots')).filter((n) => !isTmpName(n)).sort();
  }

  /** Visible restore points (those with a manifest), oldest first. */
  async listRestorePoints(vmId?: string): Promise<RestorePointRef[]> {
    const vms = vmId ? [vmId] : await this.listVms();
    const out: RestorePointRef[] = [];
    for (const vm of vms) {
      for (const id of (await this.backend.list(`snapshots/${vm}`)).sort()) {
        if (isTmpName(id)) continue;
        if (await this.backend.stat(`snapshots/${vm}/${id}/manifest`)) out.push({ vmId: vm, id });
      }
    }
    return out;
  }

  async readManifest(ref: RestorePointRef): Promise<Manifest> {
    const p = `${this.rpDir(ref)}/manifest`;
    const data = await this.backend.readFile(p);
    const m = JSON.parse(unseal(SealedKind.Manifest, data, this.keys, p).toString()) as Manifest;
    if (m.id !== ref.id || m.vmId !== ref.vmId) throw new CorruptDataError(`${p}: manifest names ${m.vmId}/${m.id}`);
    return m;
  }

  async readDiskIndex(ref: RestorePointRef, diskKey: string, manifest?: Manifest): Promise<DiskIndex> {
    const m = manifest ?? (await this.readManifest(ref));
    const d = m.disks.find((x) => x.key === diskKey);
    if (!d) throw new NotFoundError(`disk ${diskKey} in restore point ${ref.vmId}/${ref.id}`);
    const p = `${this.rpDir(ref)}/${d.file}`;
    let data: Buffer;
    try {
      data = await this.backend.readFile(p);
    } catch (err) {
      if (err instanceof NotFoundError) throw new CorruptDataError(`${p}: disk index missing`, { cause: err });
      throw err;
    }
    const sum = crypto.createHash('sha256').update(data).digest('hex');
    if (sum !== d.indexSha256) throw new CorruptDataError(`${p}: disk index does not match its manifest (truncated or damaged)`);
    const sealed = unsealVersioned(SealedKind.DiskIndex, data, this.keys, p);
    const idx = decodeDiskIndex(sealed.payload, p, sealed.version);
    if (idx.capacity !== d.capacity) throw new CorruptDataError(`${p}: capacity mismatch`);
    return idx;
  }

  // ---- blobs --------------------------------------------------------------

  /** Read a chunk's stored bytes. */
  async readStored(id: string, into?: Buffer): Promise<{ stored: Buffer; loc: BlobLocation }> {
    const loc = this.index.get(id);
    if (!loc) throw new NotFoundError(`chunk ${id}`);
    const stored = this.backend.local ? this.backend.local.readRangeSync(packPath(loc.pack), loc.offset, loc.storedLen, into) : await this.backend.readRange(packPath(loc.pack), loc.offset, loc.storedLen, into);
    return { stored, loc };
  }

  /**
   * Decode blob `id`'s stored bytes into `out` (decrypt, decompress) and prove it is the
   * blob of `id` (AAD, or re-hashing unless `checkId` is false: the caller hashes it itself). Returns bytes written.
   */
  decode(stored: Buffer, id: string, rawLen: number, out: Buffer, what: string, checkId = true): number {
    const plain = this.keys ? decryptBlob(stored, this.keys, this.bindIds ? Buffer.from(id, 'hex') : null, what) : stored;
    let n: number;
    try {
      n = this.dctx.decompress(out, plain);
    } catch (err) {
      throw new CorruptDataError(`${what}: ${(err as Error).message}`, { cause: err });
    }
    if (n !== rawLen) throw new CorruptDataError(`${what}: decoded ${n} bytes, expected ${rawLen}`);
    if (checkId && this.rehashIds && this.hashChunk(out.subarray(0, n)) !== id) throw new CorruptDataError(`${what}: ${ID_MISMATCH}`);
    return n;
  }

  async readChunk(id: string, out: Buffer, scratch?: Buffer): Promise<number> {
    const { stored, loc } = await this.readStored(id, scratch);
    return this.decode(stored, id, loc.rawLen, out, `chunk ${id}`);
  }
}

function identityOf(config: RepositoryConfig, raw: Buffer): RepositoryIdentity {
  const kdf = config.encryption?.kdf;
  return {
    id: config.id,
    encrypted: config.encryption !== null,
    kdf: kdf ? { N: kdf.N, r: kdf.r, p: kdf.p, salt: kdf.salt } : null,
    configSha256: crypto.createHash('sha256').update(raw).digest('hex'),
  };
}

const describeKdf = (k: RepositoryIdentity['kdf']) => (k ? `scrypt N=${k.N} r=${k.r} p=${k.p} salt ${k.salt}` : 'none');

/** Throws `IDENTITY_MISMATCH` naming every recorded field that differs from what the storage holds. */
function assertIdentity(location: string, expected: ExpectedIdentity, found: RepositoryIdentity): void {
  const diffs: string[] = [];
  if (expected.id !== undefined && expected.id !== found.id) diffs.push(`repository id is ${found.id}, recorded ${expected.id}`);
  if (expected.encrypted !== undefined && expected.encrypted !== found.encrypted) diffs.push(`it is ${found.encrypted ? 'encrypted' : 'not encrypted'}, recorded as ${expected.encrypted ? 'encrypted' : 'not encrypted'}`);
  if (expected.kdf !== undefined && describeKdf(expected.kdf) !== describeKdf(found.kdf)) diffs.push(`KDF is ${describeKdf(found.kdf)}, recorded ${describeKdf(expected.kdf)}`);
  if (expected.configSha256 !== undefined && expected.configSha256 !== found.configSha256) diffs.push(`config file SHA-256 is ${found.configSha256}, recorded ${expected.configSha256}`);
  if (diffs.length > 0) throw new RepositoryError('IDENTITY_MISMATCH', `the repository at ${location} is not the one recorded (${diffs.join('; ')}); refusing to open it`);
}

/** Seal a metadata file in this repository's format version. */
export function sealFor(repo: Repository, kind: SealedKind, payload: Buffer): Buffer {
  return seal(kind, payload, repo.keys, repo.config.version);
}
