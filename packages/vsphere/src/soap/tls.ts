/**
 * TLS trust for vCenter/ESXi endpoints.
 *
 * Three modes, chosen per connection:
 *  - `thumbprintSha256`: the certificate chain is NOT validated (vCenter certs
 *    are often self-signed); instead the leaf certificate's SHA-256 over its
 *    DER encoding must equal the pinned value. Checked in a custom undici
 *    connector right after the handshake, before any byte of HTTP is sent, and
 *    with TLS session caching off so every new socket is checked.
 *  - `caPem`: normal chain + hostname validation against the given CA(s).
 *  - neither: normal validation against Node's default CA store.
 *
 * `probeThumbprint()` is the first-contact helper: it connects without trust,
 * reads the presented certificate and returns its thumbprints for an operator
 * to confirm. It never sends HTTP.
 */
import { isIP } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import { ConnectError, InsecureTransportError, ThumbprintMismatchError, TimeoutError, TlsError } from './faults.ts';

export interface TrustOptions {
  /** "AB:CD:…" colon hex of SHA-256 over the certificate DER (case and separators are normalised) */
  thumbprintSha256?: string | undefined;
  /** CA certificate(s), PEM */
  caPem?: string | undefined;
  /** permit http:// URLs (labs only) */
  allowHttp?: boolean | undefined;
  /** SHA-1 pin (ESXi service tickets report SHA-1 thumbprints) */
  thumbprintSha1?: string | undefined;
}

export interface Thumbprints {
  sha256: string;
  sha1: string;
  subject: string;
  issuer: string;
  validTo: string;
}

/** "ab cd:EF" -> "AB:CD:EF" */
export function normalizeThumbprint(t: string): string {
  const hex = t.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
  return (hex.match(/.{2}/g) ?? []).join(':');
}

/** Rejects http:// unless allowed, and anything that is not http(s). */
export function checkScheme(url: URL, allowHttp: boolean | undefined): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:') {
    if (allowHttp) return;
    throw new InsecureTransportError(
      `refusing plain HTTP to ${url.host}: vSphere credentials and session cookies must travel over HTTPS ` +
        `(use https://, or set allowHttp for a lab)`,
    );
  }
  throw new InsecureTransportError(`unsupported URL scheme ${url.protocol} (expected https:)`);
}

/** The undici connector implementing the trust options. */
export function makeConnector(trust: TrustOptions, connectTimeoutMs: number): buildConnector.connector {
  const pinned = trust.thumbprintSha256 ? normalizeThumbprint(trust.thumbprintSha256) : trust.thumbprintSha1 ? normalizeThumbprint(trust.thumbprintSha1) : undefined;
  const sha1 = !trust.thumbprintSha256 && !!trust.thumbprintSha1;
  if (pinned !== undefined && pinned.length !== (sha1 ? 59 : 95)) {
    throw new TlsError(sha1 ? 'thumbprintSha1 must be 20 bytes of hex' : 'thumbprintSha256 must be 32 bytes of hex (64 hex digits)');
  }
  const base = buildConnector({
    timeout: connectTimeoutMs,
    maxCachedSessions: pinned ? 0 : 100,
    ...(pinned ? { rejectUnauthorized: false } : trust.caPem ? { ca: trust.caPem, rejectUnauthorized: true } : {}),
  });
  return (opts, cb) => {
    base(opts, (err, socket) => {
      if (err || !socket) {
        cb(translateConnectError(err ?? new Error('no socket'), `${opts.hostname}:${opts.port}`), null);
        return;
      }
      if (pinned && opts.protocol === 'https:') {
        const cert = (socket as TLSSocket).getPeerCertificate();
        const fp = sha1 ? cert?.fingerprint : cert?.fingerprint256;
        const actual = fp ? normalizeThumbprint(fp) : '(no certificate)';
        if (actual !== pinned) {
          socket.destroy();
          cb(new ThumbprintMismatchError(`${opts.hostname}:${opts.port}`, pinned, actual), null);
          return;
        }
      }
      cb(null, socket);
    });
  };
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/** Maps socket-level errors to typed errors. */
export function translateConnectError(e: unknown, where: string): Error {
  if (e instanceof TlsError || e instanceof ConnectError || e instanceof TimeoutError) return e;
  const err = e as NodeJS.ErrnoException & { code?: string };
  const code = err?.code ?? '';
  if (TLS_CODES.has(code)) {
    return new TlsError(
      `TLS certificate of ${where} is not trusted (${code}); supply the vCenter CA certificate or pin its SHA-256 thumbprint`,
      { cause: e },
    );
  }
  // A TLS client hello answered by a plain-HTTP server: OpenSSL reads "HTTP/1.1 400" as a record header.
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_HTTP_REQUEST') {
    return new TlsError(`${where} does not speak TLS (it answered like a plain-HTTP server): check the port, or use http:// for a lab that has no TLS`, { cause: e });
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    return new TimeoutError(`connecting to ${where} timed out`, { cause: e });
  }
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'connection refused (nothing listens on that port)',
    ECONNRESET: 'connection reset by peer',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ENOTFOUND: 'host name not found',
    EAI_AGAIN: 'host name lookup failed temporarily',
    EPIPE: 'connection closed by peer',
  };
  return new ConnectError(`cannot connect to ${where}: ${reasons[code] ?? err?.message ?? String(e)}`, { cause: e });
}

/**
 * Connects once and returns the presented certificate's thumbprints, for the
 * operator to confirm on first contact. Does not trust or validate anything.
 */
export async function probeThumbprint(url: string, opts: { timeoutMs?: number } = {}): Promise<Thumbprints> {
  const u = new URL(url);
  if (u.protocol !== 'https:') throw new InsecureTransportError(`probeThumbprint needs an https:// URL, got ${u.protocol}`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 443);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise<Thumbprints>((resolve, reject) => {
    const sock = tls.connect({ host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized: false });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new TimeoutError(`TLS probe of ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = sock.getPeerCertificate();
      sock.end();
      if (!cert || !cert.fingerprint256) {
        reject(new TlsError(`${host}:${port} presented no certificate`));
        return;
      }
      resolve({
        sha256: normalizeThumbprint(cert.fingerprint256),
        sha1: normalizeThumbprint(cert.fingerprint),
        subject: Object.entries(cert.subject ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(', '),
        issuer: Object.entries(cert.issuer ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(', '),
        validTo: cert.valid_to,
      });
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(translateConnectError(e, `${host}:${port}`));
    });
  });
}
