/**
 * A small client of the Director's HTTPS API that keeps its session cookie. The
 * Director's certificate is trusted by its SHA-256 fingerprint only: from
 * VAULTLINE_TLS_FINGERPRINT, or, for a Director on this machine, read from its
 * certificate file (VAULTLINE_TLS_CERT, else tls/cert.pem in VAULTLINE_DATA_DIR).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { LoginResponse, Me } from '@vaultline/contracts';
import { PinMismatchError, SELF_SIGNED_CERT, certificateFingerprint, normalizeFingerprint, pinnedFetch } from '@vaultline/tls';

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

const isLoopback = (host: string) => host === 'localhost' || (net.isIP(host.replace(/^\[|\]$/g, '')) !== 0 && /^(127\.|::1$)/.test(host.replace(/^\[|\]$/g, '')));

/** The fingerprint to pin for this Director, or an error saying how to give it. */
export function directorFingerprint(baseUrl: string, env: NodeJS.ProcessEnv = process.env): string {
  const url = new URL(baseUrl);
  if (url.protocol !== 'https:') throw new ApiError(0, 'usage', `VAULTLINE_URL must start with https:// (the Director serves HTTPS only): ${baseUrl}`, null);
  if (env.VAULTLINE_TLS_FINGERPRINT) {
    try {
      return normalizeFingerprint(env.VAULTLINE_TLS_FINGERPRINT);
    } catch (err) {
      throw new ApiError(0, 'usage', `VAULTLINE_TLS_FINGERPRINT: ${(err as Error).message}`, null);
    }
  }
  const certFile = env.VAULTLINE_TLS_CERT || path.join(env.VAULTLINE_DATA_DIR || '.vaultline', SELF_SIGNED_CERT);
  if (isLoopback(url.hostname)) {
    try {
      return certificateFingerprint(readFileSync(certFile, 'utf8'));
    } catch {
      /* not readable here: asked for below */
    }
  }
  throw new ApiError(
    0,
    'no_fingerprint',
    `set VAULTLINE_TLS_FINGERPRINT to the SHA-256 fingerprint of the Director's certificate (npm start and the appliance console print it)${isLoopback(url.hostname) ? `; ${certFile} is not readable` : ''}`,
    null,
  );
}

export class DirectorClient {
  private cookie: string | null = null;
  private readonly fetch: ReturnType<typeof pinnedFetch>;

  constructor(
    readonly baseUrl: string,
    fingerprint: string,
  ) {
    this.fetch = pinnedFetch(fingerprint);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await this.fetch(new URL(path, this.baseUrl), {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(this.cookie ? { cookie: this.cookie } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(120_000),
      });
    } catch (err) {
      if (err instanceof PinMismatchError) throw new ApiError(0, 'tls_pin_mismatch', `${err.message}; if the Director's certificate was replaced on purpose, set VAULTLINE_TLS_FINGERPRINT to the new one`, null);
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
  async login(username: string, password: string, totp?: string): Promise<Me> {
    const res = await this.call<LoginResponse>('POST', '/api/auth/login', { username, password });
    if (!('secondFactor' in res)) return res;
    if (!totp) throw new ApiError(0, 'totp_required', `${username} signs in with a second factor: set VAULTLINE_TOTP to the current code of the authenticator app`, null);
    return this.call<Me>('POST', '/api/auth/login/totp', { challenge: res.challenge, code: totp });
  }
}
