/** One error type for the API, one code → HTTP status table. */
export type AppErrorCode =
  | 'bad_request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'rate_limited'
  | 'password_change_required'
  | 'reauth_required'
  | 'reauth_failed'
  | 'service_unavailable'
  | 'bad_gateway'
  | 'internal';

const STATUS: Record<AppErrorCode, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  password_change_required: 403,
  reauth_required: 403,
  reauth_failed: 403,
  rate_limited: 429,
  service_unavailable: 503,
  bad_gateway: 502,
  internal: 500,
};

export class AppError extends Error {
  override name = 'AppError';
  /** Sent as Retry-After (rate_limited). */
  retryAfterSeconds?: number;
  constructor(
    readonly code: AppErrorCode,
    message: string,
    readonly details?: { path: string; message: string }[],
  ) {
    super(message);
  }
  get status(): number {
    return STATUS[this.code];
  }
}
