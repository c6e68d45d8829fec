/**
 * S3-compatible object storage (AWS S3, Ceph RADOS Gateway, MinIO, ...) through the AWS SDK. Same
 * repository format as the local backend: every path is one object under the repository's prefix.
 *
 * How the Backend contract maps onto S3:
 * - An object appears whole when its PUT (or its multipart upload's completion) succeeds, never before:
 *   `writeFileAtomic` is one PutObject, `openWriter` a multipart upload that only `commit` completes.
 * - The bucket must keep versions (Object Lock needs them anyway; `connect` turns versioning on when the
 *   credentials may). `createExclusive` rests on them, because not every S3 server honours
 *   `If-None-Match: *` (Ceph 16 ignores it): it puts its version, then lists the key's versions, and
 *   the oldest one since the last delete marker, in the order the storage lists them, wins; a loser deletes its own version.
 * - `remove` deletes every version of a key (a plain DELETE would only hide it behind a marker and keep
 *   paying for it), and overwriting a key deletes the versions it replaced. A version under Object Lock
 *   cannot be deleted by anyone until its retention ends: `remove` then fails with ImmutableError.
 * - There are no directories: `mkdirp` and `removeDir` do nothing, and `list` shows the names one level
 *   below a prefix.
 * Retries with backoff (also on throttling: adaptive mode) are the SDK's; a pack is uploaded in parts of
 * `partBytes` with two parts in flight, so large objects stay few and memory stays bounded.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { CorruptDataError, ImmutableError, NotFoundError, RepositoryError, RepositoryFullError } from '../errors.ts';
import type { Backend, FileStat, FileWriter, Retention } from './backend.ts';

export interface S3Options {
  /** e.g. https://s3.example.com; absent for AWS itself. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** The repository's folder in the bucket ('' for the bucket's root). */
  prefix?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Path-style addressing (bucket in the path), which most non-AWS servers need; default true with an endpoint. */
  forcePathStyle?: boolean;
  /** Size of a multipart upload's parts (default 16 MiB; S3's minimum is 5 MiB). */
  partBytes?: number;
  /** Attempts per request, backoff between them (default 6). */
  maxAttempts?: number;
}

const MiB = 1024 * 1024;

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isMissing(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchVersion' || statusOf(err) === 404;
}

/** The SDK's error without the raw HTTP response it carries (sockets and all), to keep as a cause. */
function bare(err: unknown): unknown {
  if (!(err instanceof S3ServiceException)) return err;
  return Object.assign(new Error(err.message), { name: err.name, $metadata: err.$metadata });
}

/** A failed request as a repository error that says what was being done and where. */
function mapErr(err: unknown, what: string, where: string): Error {
  if (err instanceof RepositoryError) return err;
  if (isMissing(err)) return new NotFoundError(what, { cause: bare(err) });
  const e = err as { name?: string; message?: string };
  if (e?.name === 'QuotaExceeded' || e?.name === 'EntityTooLarge' || statusOf(err) === 507) {
    return new RepositoryFullError(`the object storage refused ${what}: ${e.message ?? e.name} (quota or space exhausted at ${where})`, { cause: bare(err) });
  }
  const status = statusOf(err);
  const detail = err instanceof S3ServiceException ? `${err.name}${status ? ` (HTTP ${status})` : ''}: ${err.message}` : (e?.message ?? String(err));
  return new RepositoryError('BACKEND', `s3 ${what} at ${where}: ${detail}`, { cause: bare(err) });
}

export class S3Backend implements Backend {
  readonly kind = 's3';
  /** Whether the bucket has Object Lock: retention can then be set on objects (see `lockUntil`). */
  readonly objectLock: boolean;
  /** Requests sent, by command (retries not counted): what this backend costs at a per-request price. */
  readonly requests = new Map<string, number>();
  private readonly prefix: string;
  private readonly partBytes: number;

  private constructor(
    private readonly s3: S3Client,
    private readonly opts: S3Options,
    objectLock: boolean,
  ) {
    this.objectLock = objectLock;
    const p = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.prefix = p ? `${p}/` : '';
    this.partBytes = Math.max(5 * MiB, opts.partBytes ?? 16 * MiB);
    s3.middlewareStack.add(
      (next, context) => (args) => {
        const name = context.commandName ?? 'unknown';
        this.requests.set(name, (this.requests.get(name) ?? 0) + 1);
        return next(args);
      },
      { step: 'initialize', name: 'vaultlineRequestCount' },
    );
  }

  /** Object Lock, when the bucket has it (else absent: nothing can be made immutable there). */
  get retention(): Retention | undefined {
    return this.objectLock ? this : undefined;
  }

  get cannotLock(): string | undefined {
    return this.objectLock ? undefined : `bucket ${this.opts.bucket} has no Object Lock, so the storage cannot keep restore points from being deleted; create the bucket with Object Lock enabled, or turn immutability off for this job`;
  }

  get location(): string {
    return `s3://${this.opts.bucket}/${this.prefix}${this.opts.endpoint ? ` at ${this.opts.endpoint}` : ''}`;
  }

  /** Opens the bucket: it must exist and be reachable with these credentials, and keep versions. */
  static async connect(opts: S3Options): Promise<S3Backend> {
    const s3 = new S3Client({
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      region: opts.region,
      forcePathStyle: opts.forcePathStyle ?? !!opts.endpoint,
      credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
      maxAttempts: opts.maxAttempts ?? 6,
      retryMode: 'adaptive',
    });
    const where = `s3://${opts.bucket}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
    try {
      try {
        await s3.send(new HeadBucketCommand({ Bucket: opts.bucket }));
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) throw new RepositoryError('BACKEND', `bucket ${opts.bucket} does not exist at ${opts.endpoint ?? 'AWS'}`, { cause: bare(err) });
        if (status === 403) throw new RepositoryError('BACKEND', `the object storage refused these credentials for bucket ${opts.bucket} (HTTP 403)`, { cause: bare(err) });
        throw err;
      }
      const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: opts.bucket }));
      if (versioning.Status !== 'Enabled') {
        try {
          await s3.send(new PutBucketVersioningCommand({ Bucket: opts.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
        } catch (err) {
          throw new RepositoryError('BACKEND', `bucket ${opts.bucket} does not keep versions and these credentials may not turn versioning on; enable it on the bucket (a repository needs it)`, { cause: bare(err) });
        }
      }
      let objectLock = false;
      try {
        const cfg = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: opts.bucket }));
        objectLock = cfg.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
      } catch (err) {
        if ((err as { name?: string }).name !== 'ObjectLockConfigurationNotFoundError' && statusOf(err) !== 404) throw err;
      }
      return new S3Backend(s3, opts, objectLock);
    } catch (err) {
      s3.destroy();
      throw mapErr(err, 'opening the bucket', where);
    }
  }

  private key(p: string): string {
    return `${this.prefix}${p}`;
  }

  private async send<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapErr(err, what, this.location);
    }
  }

  async readFile(p: string): Promise<Buffer> {
    return this.send(p, async () => {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(p) }));
      return Buffer.from(await res.Body!.transformToByteArray());
    });
  }

  async readRange(p: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    if (length === 0) return buf;
    let got: Uint8Array;
    try {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(p), Range: `bytes=${offset}-${offset + length - 1}` }));
      got = await res.Body!.transformToByteArray();
    } catch (err) {
      // A range that starts past the end: the object is shorter than the reader expects.
      if (statusOf(err) === 416) throw new CorruptDataError(`short read: ${p} has fewer than ${offset + length} bytes`, { cause: bare(err) });
      throw mapErr(err, p, this.location);
    }
    if (got.length !== length) throw new CorruptDataError(`short read: ${p} has fewer than ${offset + length} bytes`);
    buf.set(got);
    return buf;
  }

  async writeFileAtomic(p: string, data: Uint8Array): Promise<void> {
    const put = await this.send(p, () => this.s3.send(new PutObjectCommand({ Bucket: this.opts.bucket, Key: this.key(p), Body: data })));
    await this.deleteVersions(p, (v) => v !== put.VersionId, 'replaced').catch(() => undefined); // a leftover version costs space, not correctness
  }

  async createExclusive(p: string, data: Uint8Array): Promise<boolean> {
    const put = await this.send(p, () => this.s3.send(new PutObjectCommand({ Bucket: this.opts.bucket, Key: this.key(p), Body: data })));
    const live = await this.liveVersions(p);
    if (live.length > 0 && live[live.length - 1] === put.VersionId) return true;
    // Someone else's version came first (or a remove took ours away): ours goes.
    await this.send(p, () => this.s3.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.key(p), VersionId: put.VersionId })));
    return false;
  }

  /**
   * The key's versions since its last delete marker, newest first, in the order the storage lists them.
   * That order is the storage's own: a version's place is fixed when its write completes, while its
   * LastModified is taken when the write began, so two racing writers may have times in the opposite order.
   * Sorting by time let two writers each see itself oldest (one listed before the other's write completed,
   * the other sorted by time). Times only place delete markers, which the S3 API lists apart; this backend
   * never writes markers, so they come from other tools, long before.
   */
  private async liveVersions(p: string): Promise<string[]> {
    const { versions, markers } = await this.versions(p);
    const lastMarker = Math.max(-Infinity, ...markers.map((m) => m.at));
    return versions.filter((v) => v.at > lastMarker).map((v) => v.id);
  }

  /** Every version (newest first, as the storage orders them) and delete marker of exactly this key. */
  private async versions(p: string): Promise<{ versions: { id: string; at: number }[]; markers: { id: string; at: number }[] }> {
    const key = this.key(p);
    const versions: { id: string; at: number }[] = [];
    const markers: { id: string; at: number }[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    for (;;) {
      const page = await this.send(p, () =>
        this.s3.send(new ListObjectVersionsCommand({ Bucket: this.opts.bucket, Prefix: key, KeyMarker: keyMarker, VersionIdMarker: versionMarker })),
      );
      for (const v of page.Versions ?? []) if (v.Key === key && v.VersionId) versions.push({ id: v.VersionId, at: v.LastModified?.getTime() ?? 0 });
      for (const m of page.DeleteMarkers ?? []) if (m.Key === key && m.VersionId) markers.push({ id: m.VersionId, at: m.LastModified?.getTime() ?? 0 });
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      versionMarker = page.NextVersionIdMarker;
    }
    return { versions, markers };
  }

  private async deleteVersions(p: string, which: (versionId: string) => boolean, why: string): Promise<void> {
    const { versions, markers } = await this.versions(p);
    for (const v of [...versions, ...markers]) {
      if (!which(v.id)) continue;
      try {
        await this.s3.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.key(p), VersionId: v.id }));
      } catch (err) {
        if (isMissing(err)) continue;
        if (statusOf(err) === 403 && this.objectLock) {
          const until = await this.lockedUntil(p, v.id).catch(() => null);
          throw new ImmutableError(`${p} is under Object Lock${until ? ` until ${until.toISOString()}` : ''}; the object storage refuses to delete it (${why}) before then`);
        }
        throw mapErr(err, `deleting ${p}`, this.location);
      }
    }
  }

  async openWriter(p: string): Promise<FileWriter> {
    const Bucket = this.opts.bucket;
    const Key = this.key(p);
    const partBytes = this.partBytes;
    let uploadId: string | undefined;
    const parts: CompletedPart[] = [];
    const inFlight: Promise<void>[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let size = 0;
    let failed: Error | null = null;

    const startUpload = async () => {
      if (uploadId) return uploadId;
      const res = await this.send(p, () => this.s3.send(new CreateMultipartUploadCommand({ Bucket, Key })));
      uploadId = res.UploadId!;
      return uploadId;
    };
    const sendPart = async (body: Buffer) => {
      const id = await startUpload();
      const PartNumber = parts.length + 1;
      const slot: CompletedPart = { PartNumber };
      parts.push(slot);
      const upload = this.send(`${p} part ${PartNumber}`, () => this.s3.send(new UploadPartCommand({ Bucket, Key, UploadId: id, PartNumber, Body: body })))
        .then((r) => {
          slot.ETag = r.ETag;
        })
        .catch((err: Error) => {
          failed ??= err;
        });
      inFlight.push(upload);
      // Two parts in flight: the next one fills while the last one travels.
      if (inFlight.length >= 2) await inFlight.shift();
      if (failed) throw failed;
    };
    const take = (n: number): Buffer => {
      const all = Buffer.concat(pending, pendingBytes);
      pending = n < all.length ? [all.subarray(n)] : [];
      pendingBytes = all.length - n;
      return all.subarray(0, n);
    };
    const abort = async () => {
      await Promise.all(inFlight).catch(() => undefined);
      if (uploadId) await this.s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId })).catch(() => undefined);
      uploadId = undefined;
      pending = [];
      pendingBytes = 0;
    };

    return {
      get size() {
        return size;
      },
      write: async (data: Uint8Array, pad = 0) => {
        if (failed) throw failed;
        // Copies: the caller may reuse `data` once this resolves.
        if (pad > 0) pending.push(Buffer.alloc(pad));
        pending.push(Buffer.from(data));
        pendingBytes += pad + data.length;
        size += pad + data.length;
        while (pendingBytes >= partBytes) await sendPart(take(partBytes));
      },
      commit: async () => {
        if (!uploadId) {
          // Small enough for one PUT.
          await this.writeFileAtomic(p, take(pendingBytes));
          return;
        }
        if (pendingBytes > 0) await sendPart(take(pendingBytes));
        await Promise.all(inFlight);
        if (failed) {
          await abort();
          throw failed;
        }
        const id = uploadId;
        await this.send(p, () => this.s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: id, MultipartUpload: { Parts: parts } })));
        uploadId = undefined;
      },
      abort,
    };
  }

  async list(dir: string): Promise<string[]> {
    const prefix = dir ? `${this.key(dir)}/` : this.prefix;
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.send(`listing ${dir || '/'}`, () =>
        this.s3.send(new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token })),
      );
      for (const o of page.Contents ?? []) if (o.Key) names.push(o.Key.slice(prefix.length));
      for (const cp of page.CommonPrefixes ?? []) if (cp.Prefix) names.push(cp.Prefix.slice(prefix.length, -1));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return names.filter((n) => n !== '').sort();
  }

  async stat(p: string): Promise<FileStat | null> {
    try {
      const h = await this.s3.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.key(p) }));
      return { size: h.ContentLength ?? 0, mtimeMs: h.LastModified?.getTime() ?? 0 };
    } catch (err) {
      if (isMissing(err)) return null;
      throw mapErr(err, p, this.location);
    }
  }

  async remove(p: string): Promise<void> {
    await this.deleteVersions(p, () => true, 'remove');
  }

  async removeDir(): Promise<void> {
    // No directories in object storage: a prefix exists while objects are under it.
  }

  async mkdirp(): Promise<void> {
    // As removeDir.
  }

  /**
   * Object Lock (compliance mode) on the current version of `p` until `until`, or later if it is locked
   * longer already: retention is only ever extended, as the storage itself allows.
   */
  async lockUntil(p: string, until: Date): Promise<void> {
    if (!this.objectLock) throw new RepositoryError('BACKEND', `bucket ${this.opts.bucket} has no Object Lock: its objects cannot be made immutable (create the bucket with Object Lock enabled)`);
    try {
      await this.s3.send(new PutObjectRetentionCommand({ Bucket: this.opts.bucket, Key: this.key(p), Retention: { Mode: 'COMPLIANCE', RetainUntilDate: until } }));
    } catch (err) {
      // One request per object in the usual case; a refusal is fine when the object is locked longer already.
      if (statusOf(err) === 403) {
        const current = await this.lockedUntil(p);
        if (current && current.getTime() >= until.getTime()) return;
      }
      throw mapErr(err, `locking ${p}`, this.location);
    }
  }

  /** Until when the storage refuses to delete `p` (its current version, or `versionId`); null when it does not. */
  async lockedUntil(p: string, versionId?: string): Promise<Date | null> {
    if (!this.objectLock) return null;
    try {
      const r = await this.s3.send(new GetObjectRetentionCommand({ Bucket: this.opts.bucket, Key: this.key(p), ...(versionId ? { VersionId: versionId } : {}) }));
      const until = r.Retention?.RetainUntilDate;
      return until && until.getTime() > Date.now() ? until : null;
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'NoSuchObjectLockConfiguration' || name === 'ObjectLockConfigurationNotFoundError') return null;
      throw mapErr(err, `reading the retention of ${p}`, this.location);
    }
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }
}
