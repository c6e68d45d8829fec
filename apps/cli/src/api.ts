/** A small client of the Director's HTTP API that keeps its session cookie. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export class DirectorClient {
  private cookie: string | null = null;

  constructor(readonly baseUrl: string) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(this.cookie ? { cookie: this.cookie } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(120_000),
      });
    } catch (err) {
      throw new ApiError(0, 'unreachable', `cannot reach the Director at ${this.baseUrl}: ${(err as Error).message}`, null);
    }
    const setCookie = res.headers.get('set-cookie');
    if (setCookie) this.cookie = setCookie.split(';')[0] ?? null;
    const text = await res.text();
    const data: unknown = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const b = (data ?? {}) as { code?: string; message?: string };
      throw new ApiError(res.status, b.code ?? `http_${res.status}`, b.message ?? res.statusText, data);
    }
    return data as T;
  }

  /** Signs in; an account with two-factor sign-in also needs the current code (`totp`). */
  async login(username: string, password: string, totp?: string): Promise<{ mustChangePassword: boolean }> {
    const res = await this.call<{ mustChangePassword: boolean } | { secondFactor: 'totp'; challenge: string }>('POST', '/api/auth/login', { username, password });
    if (!('secondFactor' in res)) return res;
    if (!totp) throw new ApiError(0, 'totp_required', `${username} signs in with a second factor: set VAULTLINE_TOTP to the current code of the authenticator app`, null);
    return this.call<{ mustChangePassword: boolean }>('POST', '/api/auth/login/totp', { challenge: res.challenge, code: totp });
  }
}
