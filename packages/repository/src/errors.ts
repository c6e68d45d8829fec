/**
 * Typed errors of the repository. Callers branch on `code` (or `instanceof`),
 * never on message text.
 */
export type RepositoryErrorCode =
  | 'WRONG_PASSPHRASE'
  | 'PASSPHRASE_REQUIRED'
  | 'NOT_A_REPOSITORY'
  | 'ALREADY_EXISTS'
  | 'UNSUPPORTED_VERSION'
  /** The storage holds another repository than the one recorded (id, encryption, KDF or config changed). */
  | 'IDENTITY_MISMATCH'
  /** A passphrase was given for a repository that is not encrypted. */
  | 'NOT_ENCRYPTED'
  | 'CORRUPT'
  | 'NOT_FOUND'
  | 'NO_SPACE'
  | 'LOCKED'
  | 'LOCK_LOST'
  | 'IMMUTABLE'
  | 'INVALID_ARGUMENT'
  | 'ABORTED'
  | 'BACKEND';

export class RepositoryError extends Error {
  readonly code: RepositoryErrorCode;
  constructor(code: RepositoryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The passphrase does not unwrap the master key (AES-GCM authentication failed). */
export class WrongPassphraseError extends RepositoryError {
  constructor() {
    super('WRONG_PASSPHRASE', 'wrong passphrase: the repository master key could not be unwrapped');
  }
}
/** A structure failed its checksum / authentication, or is truncated. */
export class CorruptDataError extends RepositoryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CORRUPT', message, options);
  }
}
export class NotFoundError extends RepositoryError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('NOT_FOUND', `not found: ${what}`, options);
  }
}
/** The storage ran out of space (ENOSPC / EDQUOT). The write was rolled back. */
export class RepositoryFullError extends RepositoryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NO_SPACE', message, options);
  }
}
export class LockedError extends RepositoryError {
  constructor(message: string) {
    super('LOCKED', message);
  }
}
export class LockLostError extends RepositoryError {
  constructor(message: string) {
    super('LOCK_LOST', message);
  }
}
/** A restore point is under an immutability lock and cannot be removed before its lock date. */
export class ImmutableError extends RepositoryError {
  constructor(message: string) {
    super('IMMUTABLE', message);
  }
}

/** Map a Node errno error into a typed repository error where one applies. */
export function classifyFsError(err: unknown, what: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new RepositoryFullError(`no space left on the repository storage while writing ${what}`, { cause: err });
  if (code === 'ENOENT') return new NotFoundError(what, { cause: err });
  return err;
}
