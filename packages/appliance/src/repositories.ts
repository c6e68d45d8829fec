/**
 * Opening a repository described by its database row: local path,
 * sftp://user@host:port/path, s3://<access key id>@<bucket>/<prefix>?endpoint=…&region=…
 * or transporter://<transporter id>/<name> (served by another Transporter: transfer.ts),
 * with the passphrase and the storage credential (SSH key, S3 secret access key) unsealed
 * with the appliance key (or, on a remote Transporter, its own copies: see Unsealer).
 * Used by the Director (create, browse) and the Transporter (write restore points).
 */
import { lstat, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { openSecret } from '@vaultline/config';
import { LocalBackend, Repository, S3Backend, SftpBackend, type Backend, type ExpectedIdentity, type OpenOptions, type RepositoryIdentity } from '@vaultline/repository';
import { RepositoryLocationError } from './location-error.ts';
import { SECRET_LABELS, type Unsealer } from './secrets.ts';
import { transporterBackend } from './transfer.ts';

export interface RepositoryRow {
  /** Needed to open a remote Transporter's copies of the secrets. */
  id?: string;
  kind: string;
  location: string;
  /** SFTP: the pinned host key fingerprint; a connection to any other key is refused. */
  sftpHostKeySha256?: string | null;
  encrypted: boolean;
  passphraseSealed: string | null;
  sftpKeySealed: string | null;
  /** S3: the sealed secret access key. */
  s3SecretSealed?: string | null;
  /** Local: files of locked restore points are made immutable by the root helper (LocalBackend hardened). */
  hardened?: boolean;
  /** Recorded identity (null on rows from before it was recorded): the config's id, scrypt parameters and file hash. */
  repositoryUid?: string | null;
  kdfParams?: unknown;
  configSha256?: string | null;
}

/** What a row says the storage must hold: always the encryption flag, the rest once recorded. */
export function recordedIdentity(row: Pick<RepositoryRow, 'encrypted' | 'repositoryUid' | 'kdfParams' | 'configSha256'>): ExpectedIdentity {
  if (!row.repositoryUid) return { encrypted: row.encrypted };
  return {
    encrypted: row.encrypted,
    id: row.repositoryUid,
    kdf: (row.kdfParams ?? null) as RepositoryIdentity['kdf'],
    ...(row.configSha256 ? { configSha256: row.configSha256 } : {}),
  };
}

/** The columns that record `identity` (kdfParams stays NULL for an unencrypted repository). */
export function identityColumns(identity: RepositoryIdentity): { repositoryUid: string; configSha256: string; kdfParams?: NonNullable<RepositoryIdentity['kdf']> } {
  return { repositoryUid: identity.id, configSha256: identity.configSha256, ...(identity.kdf ? { kdfParams: identity.kdf } : {}) };
}

export { RepositoryLocationError };

/** Kernel filesystems: nothing there is storage (and Node's recursive mkdir spins forever on procfs). */
const KERNEL_TREES = ['/proc', '/sys', '/dev'];
const kernelTree = (p: string) => KERNEL_TREES.find((t) => p === t || p.startsWith(`${t}/`));

/**
 * Where a local repository path really leads, found with asynchronous calls only
 * (the event loop never waits on the filesystem): the deepest existing ancestor
 * is resolved with realpath and the rest appended. A path under /proc, /sys or
 * /dev, as written or once its symbolic links are followed, and a path through
 * a dangling symbolic link are refused with a RepositoryLocationError.
 */
export async function resolveLocalLocation(location: string): Promise<string> {
  if (!path.isAbsolute(location)) throw new RepositoryLocationError(`${location} is not an absolute path`);
  const written = path.resolve(location);
  const kernel = (p: string, how: string) => {
    const tree = kernelTree(p);
    if (tree) throw new RepositoryLocationError(`${location} ${how} under ${tree}, a kernel filesystem, not storage; choose a folder on a disk of the appliance`);
  };
  kernel(written, 'lies');
  const rest: string[] = [];
  let existing = written;
  for (;;) {
    try {
      const resolved = path.join(await realpath(existing), ...rest);
      kernel(resolved, `leads (through symbolic links) to ${resolved},`);
      return resolved;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (err instanceof RepositoryLocationError) throw err;
      if (code === 'ELOOP') throw new RepositoryLocationError(`${location} goes through a loop of symbolic links at ${existing}`);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // It exists but cannot be resolved: a symbolic link whose target does not exist.
      const link = await lstat(existing).catch(() => null);
      if (link?.isSymbolicLink()) {
        const target = await readlink(existing).catch(() => '?');
        throw new RepositoryLocationError(`${location} goes through the dangling symbolic link ${existing} (its target ${target} does not exist)`);
      }
      rest.unshift(path.basename(existing));
      existing = path.dirname(existing);
    }
  }
}

/** s3://<access key id>@<bucket>/<prefix>?endpoint=…&region=… (what parseS3Location reads back). */
export function formatS3Location(b: { accessKeyId: string; bucket: string; prefix: string; endpoint?: string | undefined; region: string }): string {
  const q = new URLSearchParams({ ...(b.endpoint ? { endpoint: b.endpoint } : {}), region: b.region });
  const prefix = b.prefix.replace(/\/+$/, '').split('/').filter(Boolean).map(encodeURIComponent).join('/');
  return `s3://${encodeURIComponent(b.accessKeyId)}@${b.bucket}/${prefix}?${q.toString()}`;
}

/** Where an S3 repository is, as its location says: s3://<access key id>@<bucket>/<prefix>?endpoint=<url>&region=<region>. */
export function parseS3Location(location: string): { bucket: string; prefix: string; accessKeyId: string; endpoint?: string; region: string } {
  let u: URL;
  try {
    u = new URL(location);
  } catch {
    throw new RepositoryLocationError(`${location} is not an s3://<access key id>@<bucket>/<prefix> location`);
  }
  if (u.protocol !== 's3:' || !u.hostname || !u.username) throw new RepositoryLocationError(`${location} is not an s3://<access key id>@<bucket>/<prefix> location`);
  const endpoint = u.searchParams.get('endpoint') ?? undefined;
  if (endpoint && !/^https?:\/\//.test(endpoint)) throw new RepositoryLocationError(`the S3 endpoint ${endpoint} is not an http(s) URL`);
  return {
    bucket: u.hostname,
    prefix: decodeURIComponent(u.pathname.replace(/^\/+/, '')),
    accessKeyId: decodeURIComponent(u.username),
    ...(endpoint ? { endpoint } : {}),
    region: u.searchParams.get('region') ?? 'us-east-1',
  };
}

/** A row's storage, opened with its credential: the SSH private key of an SFTP repository, the secret access key of an S3 one. */
export async function backendFor(row: Pick<RepositoryRow, 'kind' | 'location' | 'sftpHostKeySha256' | 'hardened'>, credential?: string): Promise<Backend> {
  if (row.kind === 'local') {
    await resolveLocalLocation(row.location);
    return row.hardened ? LocalBackend.open(row.location, { hardened: true }) : new LocalBackend(row.location);
  }
  if (row.kind === 'sftp') {
    const u = new URL(row.location);
    if (!credential) throw new Error(`the SFTP repository ${row.location} has no SSH key`);
    if (!row.sftpHostKeySha256) throw new Error(`the SFTP server of ${row.location} has no pinned host key; remove the repository and add it again to confirm the server's key`);
    return SftpBackend.connect({ host: u.hostname, port: Number(u.port || 22), username: decodeURIComponent(u.username), privateKey: credential, root: decodeURIComponent(u.pathname), hostKeySha256: row.sftpHostKeySha256 });
  }
  if (row.kind === 's3') {
    if (!credential) throw new Error(`the S3 repository ${row.location} has no secret access key`);
    return S3Backend.connect({ ...parseS3Location(row.location), secretAccessKey: credential });
  }
  if (row.kind === 'transporter') return transporterBackend(row.location);
  throw new Error(`unknown repository kind ${row.kind}`);
}

/** The row's secrets: its passphrase, and its storage credential (the SSH key of an SFTP repository, the secret access key of an S3 one). */
export function unsealRepository(row: RepositoryRow, secretKey: Buffer): { passphrase?: string; credential?: string } {
  const credential =
    row.kind === 's3'
      ? row.s3SecretSealed && openSecret(secretKey, SECRET_LABELS.repositoryS3Secret, row.s3SecretSealed)
      : row.sftpKeySealed && openSecret(secretKey, SECRET_LABELS.repositorySshKey, row.sftpKeySealed);
  return {
    ...(row.passphraseSealed ? { passphrase: openSecret(secretKey, SECRET_LABELS.repositoryPassphrase, row.passphraseSealed) } : {}),
    ...(credential ? { credential } : {}),
  };
}

async function unsealWith(row: RepositoryRow, unseal: Unsealer): Promise<{ passphrase?: string; credential?: string }> {
  if (!row.id) throw new Error(`the repository ${row.location} has no id to open its secrets by`);
  const [passphrase, credential] = await Promise.all([
    unseal(SECRET_LABELS.repositoryPassphrase, row.id, row.passphraseSealed),
    row.kind === 's3' ? unseal(SECRET_LABELS.repositoryS3Secret, row.id, row.s3SecretSealed) : unseal(SECRET_LABELS.repositorySshKey, row.id, row.sftpKeySealed),
  ]);
  return { ...(passphrase ? { passphrase } : {}), ...(credential ? { credential } : {}) };
}

/** `key`: the appliance key, or an Unsealer (a remote Transporter's own). */
export async function openRepository(row: RepositoryRow, key: Buffer | Unsealer, opts: Omit<OpenOptions, 'passphrase'> = {}): Promise<Repository> {
  const { passphrase, credential } = Buffer.isBuffer(key) ? unsealRepository(row, key) : await unsealWith(row, key);
  return Repository.open(await backendFor(row, credential), { ...opts, ...(passphrase ? { passphrase } : {}), expect: recordedIdentity(row) });
}
