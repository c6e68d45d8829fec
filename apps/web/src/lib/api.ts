import type { ApiError } from '@vaultline/contracts';
import { reportApi } from './connection.ts';

export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError & Record<string, unknown>,
  ) {
    super(body.message);
  }
}

// Requests made while nobody has touched the console for a minute (its polling) say so, and the
// Director does not count them as activity: an unattended console still reaches the idle timeout.
let lastInputAt = Date.now();
if (typeof window !== 'undefined') {
  for (const type of ['pointerdown', 'keydown']) window.addEventListener(type, () => (lastInputAt = Date.now()), { capture: true, passive: true });
}
const unattended = () => Date.now() - lastInputAt > 60_000;

/** How long a read waits for the Director before giving up (a write may take longer: it does the work before answering). */
export const READ_TIMEOUT_SECONDS = 15;
const WRITE_TIMEOUT_SECONDS = 300;

/** The Director did not answer: no connection, or no answer within the request's timeout. */
export class DirectorUnreachableError extends Error {}

/** Proxies' and load balancers' answers when the Director behind them is not there. */
const NOT_THERE = new Set([502, 503, 504]);

/**
 * fetch with the session cookie and a timeout (reads READ_TIMEOUT_SECONDS unless `timeoutSeconds` says otherwise);
 * non-2xx becomes ApiRequestError carrying the server's message, no answer DirectorUnreachableError. Each outcome is
 * reported to the connection state (lib/connection.ts) that the shell's banner shows.
 */
export async function api<T>(path: string, init: { method?: string; body?: unknown; timeoutSeconds?: number } = {}): Promise<T> {
  const method = init.method ?? 'GET';
  const timeoutSeconds = init.timeoutSeconds ?? (method === 'GET' ? READ_TIMEOUT_SECONDS : WRITE_TIMEOUT_SECONDS);
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: { ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(unattended() ? { 'x-vaultline-background': '1' } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      signal: AbortSignal.timeout(timeoutSeconds * 1000),
    });
  } catch (err) {
    reportApi('down');
    if (err instanceof DOMException && err.name === 'TimeoutError') throw new DirectorUnreachableError(`The Director did not answer within ${timeoutSeconds} s.`);
    throw new DirectorUnreachableError('The Director is not answering (no connection).');
  }
  reportApi(NOT_THERE.has(res.status) ? 'down' : 'up');
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const body = (data as (ApiError & Record<string, unknown>) | null) ?? { code: 'http_' + res.status, message: res.statusText || `HTTP ${res.status}` };
    throw new ApiRequestError(res.status, body);
  }
  return data as T;
}

/** What to tell the operator about a failed call: the server's own words when it answered. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiRequestError || err instanceof DirectorUnreachableError) return err.message;
  return 'The Director is not answering.';
}
