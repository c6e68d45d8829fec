/**
 * Opening a repository described by its database row: local path or
 * sftp://user@host:port/path, with the passphrase and SSH key unsealed with the
 * appliance key (or, on a remote Transporter, its own copies: see Unsealer).
 * Used by the Director (create, browse) and the Transporter (write restore points).
 */
import { openSecret } from '@vaultline/config';
import { LocalBackend, Repository, SftpBackend, type Backend, type OpenOptions } from '@vaultline/repository';
import { SECRET_LABELS, type Unsealer } from './secrets.ts';

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

async function unsealWith(row: RepositoryRow, unseal: Unsealer): Promise<{ passphrase?: string; privateKey?: string }> {
  if (!row.id) throw new Error(`the repository ${row.location} has no id to open its secrets by`);
  const [passphrase, privateKey] = await Promise.all([
    unseal(SECRET_LABELS.repositoryPassphrase, row.id, row.passphraseSealed),
    unseal(SECRET_LABELS.repositorySshKey, row.id, row.sftpKeySealed),
  ]);
  return { ...(passphrase ? { passphrase } : {}), ...(privateKey ? { privateKey } : {}) };
}

/** `key`: the appliance key, or an Unsealer (a remote Transporter's own). */
export async function openRepository(row: RepositoryRow, key: Buffer | Unsealer, opts: Omit<OpenOptions, 'passphrase'> = {}): Promise<Repository> {
  const { passphrase, privateKey } = Buffer.isBuffer(key) ? unsealRepository(row, key) : await unsealWith(row, key);
  return Repository.open(await backendFor(row, privateKey), { ...opts, ...(passphrase ? { passphrase } : {}) });
}
