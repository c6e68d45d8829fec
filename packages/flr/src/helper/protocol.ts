/**
 * The file-level restore helper's protocol: HTTP/1.1 over a unix socket
 * (`<run dir>/flr.sock`, mode 0660), every request carrying the per-start
 * token from `<run dir>/token` (mode 0640) as `Authorization: Bearer …`.
 * Only the helper's user and group (the Director's) can connect or read the
 * token; the token additionally ties requests to this start of the helper.
 *
 *   GET    /v1/health                      { missing: [] } — what stops it from mounting
 *   POST   /v1/sweep        {owner}        closes every session of another Director instance, sweeps the journal
 *   POST   /v1/sessions     MountRequest   mounts a restore point served by the Director's NBD socket → MountedView
 *   DELETE /v1/sessions/:id                unmounts it
 *   POST   /v1/sessions/:id/list     {partition, ref, cursor?, limit}   → Listing
 *   POST   /v1/sessions/:id/stat     {partition, ref}                   → FileStat
 *   POST   /v1/sessions/:id/read     {partition, ref, start, end}       → the bytes [start, end]
 *   POST   /v1/sessions/:id/archive  {partition, ref}                   → tar; stats in a trailer
 *
 * Paths travel as `ref` (base64url of the raw bytes) and are validated again
 * by the helper. Errors are `{ code, message, errno?, missing? }` with the
 * matching status. No repository secret crosses this socket: the helper gets
 * a socket path to read disks from, never a repository location or key.
 */
export const SOCKET_NAME = 'flr.sock';
export const TOKEN_NAME = 'token';
export const ARCHIVE_STATS_TRAILER = 'x-vaultline-archive-stats';

export interface HelperErrorBody {
  code: string;
  message: string;
  /** A filesystem error's code (EIO, EACCES, …). */
  errno?: string;
  /** With code service_unavailable: what stops the helper from mounting. */
  missing?: string[];
}

export interface FileStat {
  size: number;
  mtime: string;
}

const STATUS: Record<string, number> = { bad_request: 400, unauthorized: 401, forbidden: 403, not_found: 404, conflict: 409, rate_limited: 429, service_unavailable: 503 };

export const statusOf = (code: string): number => STATUS[code] ?? 500;
