/**
 * Raw HTTP/1.1 requests to a listening Director over its TLS, pinned to its
 * certificate, the path sent byte for byte as given (like `curl --path-as-is`):
 * no client-side normalisation of `..`, `//` or percent-escapes, so tests see
 * what the server makes of them.
 */
import type http from 'node:http';
import https from 'node:https';
import { pinnedAgent } from '@vaultline/tls';

export interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RawRequest {
  method: string;
  path: string;
  cookie?: string;
  /** Sent as is; a string or Buffer body gets content-type JSON unless headers say otherwise. */
  body?: string | Buffer;
  headers?: Record<string, string>;
}

export class RawClient {
  private readonly agent: https.Agent;

  constructor(
    private readonly port: number,
    fingerprint: string,
  ) {
    this.agent = pinnedAgent(fingerprint, { maxSockets: 8 });
  }

  send(r: RawRequest): Promise<RawReply> {
    const body = r.body ?? (['POST', 'PUT', 'PATCH'].includes(r.method) ? '{}' : undefined);
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: this.port,
          method: r.method,
          path: r.path,
          agent: this.agent,
          headers: {
            ...(r.cookie ? { cookie: r.cookie } : {}),
            ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
            ...r.headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

const SOME_ID = '00000000-0000-4000-8000-000000000000';

/** A concrete path for a route pattern: every parameter gets a well-formed id. */
export function concretePath(url: string, param: (name: string) => string = () => SOME_ID): string {
  return url
    .split('/')
    .map((seg) => (seg.startsWith(':') ? param(seg.slice(1)) : seg === '*' ? 'x' : seg))
    .join('/');
}
