/**
 * Opening repositories for the API. Every open compares what the storage holds
 * with what PostgreSQL recorded (repository id, encryption, KDF parameters,
 * config hash; docs/repository-format.md §2): a repository that is not the one
 * recorded is a 409 naming what differs, never a 500. Rows from before the
 * identity was recorded get it at their first successful open (trust on first
 * use, checked against the encryption flag they always had).
 */
import { identityColumns, openRepository, TransferPeerError, type RepositoryRow } from '@vaultline/appliance';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { RepositoryError, type OpenOptions, type Repository } from '@vaultline/repository';
import { AppError } from '../errors.ts';

/** The storage holds another repository than the one recorded, or a passphrase met an unencrypted one. */
export function identityConflict(err: unknown): AppError | null {
  if (err instanceof RepositoryError && (err.code === 'IDENTITY_MISMATCH' || err.code === 'NOT_ENCRYPTED')) return new AppError('conflict', err.message);
  return null;
}

export async function openRecordedRepository(db: Db, row: RepositoryRow & { id: string }, secretKey: Buffer, opts: Omit<OpenOptions, 'passphrase' | 'expect'> = {}): Promise<Repository> {
  let repo: Repository;
  try {
    repo = await openRepository(row, secretKey, opts);
  } catch (err) {
    // The Transporter serving it is away or refused us: the message says which and what to do.
    if (err instanceof TransferPeerError) throw new AppError('service_unavailable', err.message);
    throw identityConflict(err) ?? err;
  }
  if (!row.repositoryUid) await db.repository.updateMany({ where: { id: row.id, repositoryUid: null }, data: identityColumns(repo.identity) });
  return repo;
}

/** Record the identity of every repository that has none yet (rows from before it was recorded). */
export async function recordRepositoryIdentities(db: Db, secretKey: Buffer, log: Logger): Promise<void> {
  for (const row of await db.repository.findMany({ where: { repositoryUid: null } })) {
    try {
      await (await openRecordedRepository(db, row, secretKey)).close();
      log.info({ repository: row.name }, 'recorded the repository identity');
    } catch (err) {
      log.warn({ err, repository: row.name }, 'the repository identity could not be recorded yet');
    }
  }
}
