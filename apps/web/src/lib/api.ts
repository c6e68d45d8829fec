import type { ApiError } from '@vaultline/contracts';

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

/** fetch with the session cookie; non-2xx becomes ApiRequestError carrying the server's message. */
export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    credentials: 'same-origin',
    headers: { ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(unattended() ? { 'x-vaultline-background': '1' } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
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
  if (err instanceof ApiRequestError) return err.message;
  return 'The Director is not answering.';
}
