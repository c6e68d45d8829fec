/**
 * An HTTPS client that trusts exactly one certificate, named by its SHA-256
 * fingerprint: the TLS handshake is checked before a byte of the request is
 * sent, and a different certificate fails the call with PinMismatchError.
 */
import https from 'node:https';
import { Readable, type Duplex } from 'node:stream';
import tls from 'node:tls';

/** `ab:cd:…`, `ABCD…` or `sha256:abcd…` → `AB:CD:…`; throws on anything but 32 bytes of hex. */
export function normalizeFingerprint(text: string): string {
  const hex = text.trim().replace(/^sha-?256[:=]/i, '').replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new Error(`"${text}" is not a SHA-256 certificate fingerprint (64 hex digits, colons allowed)`);
  return hex.match(/../g)!.join(':');
}

export class PinMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
    host: string,
  ) {
    super(`the TLS certificate of ${host} is not the one pinned: expected SHA-256 ${expected}, got ${actual}`);
    this.name = 'PinMismatchError';
  }
}

/** An https.Agent whose connections are handed over only once the server's certificate has the pinned fingerprint. */
export function pinnedAgent(fingerprint: string, options: https.AgentOptions = {}): https.Agent {
  const expected = normalizeFingerprint(fingerprint);
  const agent = new https.Agent({ keepAlive: true, ...options });
  agent.createConnection = ((options: tls.ConnectionOptions, callback: (err: Error | null, socket?: Duplex) => void) => {
    // The chain is not verified (the certificate is self-signed); the fingerprint stands in for it.
    const socket = tls.connect({ ...options, rejectUnauthorized: false });
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      if (err) {
        socket.destroy();
        callback(err);
      } else callback(null, socket);
    };
    socket.once('error', finish);
    socket.once('secureConnect', () => {
      const actual = socket.getPeerCertificate().fingerprint256 ?? '(none)';
      finish(actual === expected ? null : new PinMismatchError(expected, actual, `${options.host ?? ''}:${options.port ?? ''}`));
    });
    return undefined;
  }) as unknown as https.Agent['createConnection'];
  return agent;
}

export interface PinnedRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
}

/** fetch() for https:// URLs through pinnedAgent(); answers with a standard Response whose body streams (redirects are not followed). */
export function pinnedFetch(fingerprint: string): (url: string | URL, init?: PinnedRequest) => Promise<Response> {
  const agent = pinnedAgent(fingerprint);
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') return reject(new Error(`${target.origin} is not https: the pinned client only speaks TLS`));
      // A body goes with its length: some servers refuse a chunked DELETE.
      const headers = init.body !== undefined ? { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) } : init.headers;
      const req = https.request(target, { method: init.method ?? 'GET', headers, agent, signal: init.signal }, (res) => {
        const headers = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        const status = res.statusCode ?? 0;
        const nullBody = status === 204 || status === 205 || status === 304;
        if (nullBody) res.resume();
        const body = nullBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers }));
      });
      req.once('error', reject);
      req.end(init.body);
    });
}
