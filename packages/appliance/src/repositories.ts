/**
 * Opening a repository described by its database row: local path or
 * sftp://user@host:port/path, with the passphrase and SSH key unsealed with the
 * appliance key. Used by the Director (create, browse) and the Transporter
 * (write restore points).
 */
import { openSecret } from '@vaultline/config';
import { LocalBackend, Repository, SftpBackend, type Backend, type ExpectedIdentity, type OpenOptions, type RepositoryIdentity } from '@vaultline/repository';
import { SECRET_LABELS } from './secrets.ts';

export interface RepositoryRow {
  kind: string;
  location: string;
  /** SFTP: the pinned host key fingerprint; a connection to any other key is refused. */
  sftpHostKeySha256?: string | null;
  encrypted: boolean;
  passphraseSealed: string | null;
  sftpKeySealed: string | null;
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

export async function backendFor(row: Pick<RepositoryRow, 'kind' | 'location' | 'sftpHostKeySha256'>, privateKey?: string): Promise<Backend> {
  if (row.kind === 'local') return new LocalBackend(row.location);
  if (row.kind === 'sftp') {
    const u = new URL(row.location);
    if (!privateKey) throw new Error(`the SFTP repository ${row.location} has no SSH key`);
    if (!row.sftpHostKeySha256) throw new Error(`the SFTP server of ${row.location} has no pinned host key; remove the repository and add it again to confirm the server's key`);
    return SftpBackend.connect({ host: u.hostname, port: Number(u.port || 22), username: decodeURIComponent(u.username), privateKey, root: decodeURIComponent(u.pathname), hostKeySha256: row.sftpHostKeySha256 });
  }
  throw new Error(`unknown repository kind ${row.kind}`);
}

export function unsealRepository(row: RepositoryRow, secretKey: Buffer): { passphrase?: string; privateKey?: string } {
  return {
    ...(row.passphraseSealed ? { passphrase: openSecret(secretKey, SECRET_LABELS.repositoryPassphrase, row.passphraseSealed) } : {}),
    ...(row.sftpKeySealed ? { privateKey: openSecret(secretKey, SECRET_LABELS.repositorySshKey, row.sftpKeySealed) } : {}),
  };
}

export async function openRepository(row: RepositoryRow, secretKey: Buffer, opts: Omit<OpenOptions, 'passphrase'> = {}): Promise<Repository> {
  const { passphrase, privateKey } = unsealRepository(row, secretKey);
  return Repository.open(await backendFor(row, privateKey), { ...opts, ...(passphrase ? { passphrase } : {}), expect: recordedIdentity(row) });
}
