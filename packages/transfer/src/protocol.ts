/**
 * What TransporterBackend and RepositoryServer agree on. One HTTPS request per Backend call:
 * `/r/<repository>/<op>?path=<relative path>` (the path travels in the query, so no URL
 * normalisation of `..` or `%2e%2e` can ever move it), bodies are the file bytes themselves, and a
 * refusal is a status with `{ code, message }` in JSON that the client turns back into the
 * repository's error classes.
 */

export type Op = 'file' | 'range' | 'create' | 'upload' | 'list' | 'stat' | 'dir' | 'mkdir' | 'lacking';

/**
 * An upload ends with this trailer: `commit <size>` names the file, anything else (or none, when the
 * connection breaks) discards it. A body that merely stops can therefore never become a pack.
 */
export const END_TRAILER = 'vaultline-end';

/** Reads are streamed in slices of this size, so a request holds about this much memory and no more. */
export const SLICE_BYTES = 1024 * 1024;

/** Ids per `lacking` request: 512 KiB of ids in, 2 KiB of bitmap out. */
export const LACKING_BATCH = 16_384;

/** createExclusive bodies are buffered whole (the call takes a buffer); they are lock files and the config. */
export const MAX_CREATE_BYTES = 4 * 1024 * 1024;

/** Same alphabet as the repository's own names (assertSafeName), so a name never needs escaping. */
export const REPOSITORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Why `p` is no path inside a repository, or null when it is one: relative, '/'-separated, without
 * empty, '.' or '..' segments, NUL or backslash. '' (the repository folder itself) only where a
 * directory is meant.
 */
export function pathProblem(p: string, directory: boolean): string | null {
  if (p === '') return directory ? null : 'an empty path names no file';
  if (p.length > 1024) return 'the path is longer than 1024 characters';
  if (p.includes('\0')) return 'the path contains NUL';
  if (p.includes('\\')) return 'the path contains a backslash';
  if (p.startsWith('/')) return 'the path is absolute';
  if (p.split('/').some((s) => s === '' || s === '.' || s === '..')) return 'the path has an empty, "." or ".." segment';
  return null;
}

/** The body of every refusal. `code` is a RepositoryErrorCode, or one of the server's own (FORBIDDEN, NO_SUCH_REPOSITORY, ...). */
export interface WireError {
  code: string;
  message: string;
}
