/**
 * The Director speaks HTTPS only. Its one port takes both: a connection whose
 * first byte starts a TLS handshake (0x16) goes to the HTTPS server; anything
 * else is plain HTTP and only ever gets a redirect to the same address over
 * https, so `http://appliance:8080` typed by hand still lands on the console and
 * no API answer ever leaves unencrypted. Every response carries the security
 * headers below; state-changing API requests and socket.io connections must come
 * from the Director's own origin.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type net from 'node:net';
import type { FastifyInstance } from 'fastify';

/** The first byte of a TLS record carrying a handshake (the ClientHello). */
const TLS_HANDSHAKE = 0x16;

/** How long a plain-HTTP connection may take to send its request (it only ever gets a redirect). */
export const PLAIN_HTTP_TIMEOUT_MS = 10_000;

/** A Host header we are willing to echo into a Location header: a name or address and an optional port. */
const SAFE_HOST = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/** Answers every plain-HTTP request with a redirect to the same host, port and path over https, and nothing else. */
export function httpsRedirectServer(): http.Server {
  // A plain-HTTP client gets seconds, not the defaults' minutes, to say what it wants.
  const server = http.createServer({ requestTimeout: PLAIN_HTTP_TIMEOUT_MS, headersTimeout: PLAIN_HTTP_TIMEOUT_MS, connectionsCheckingInterval: 1_000 }, (req, res) => {
    const host = req.headers.host ?? '';
    const location = SAFE_HOST.test(host) && req.url?.startsWith('/') ? `https://${host}${req.url}` : null;
    res.setHeader('connection', 'close');
    if (!location) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('This address serves HTTPS only: use https://\n');
      return;
    }
    res.writeHead(301, { location, 'content-type': 'text/plain; charset=utf-8' }).end(`Use ${location}\n`);
  });
  server.setTimeout(PLAIN_HTTP_TIMEOUT_MS, (socket) => socket.destroy());
  return server;
}

/**
 * Puts a first-byte check in front of a TLS server's connections: TLS goes on to
 * the server's own handlers, plain HTTP to `plain`. The byte read is pushed back,
 * so either side sees the connection from its start.
 */
export function acceptPlainHttpOn(server: net.Server, plain: http.Server): void {
  const tlsHandlers = server.listeners('connection') as ((socket: net.Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: net.Socket) => {
    // Until it has said something, a client that stays silent is dropped, and its errors are ours.
    const drop = () => socket.destroy();
    socket.setTimeout(30_000, drop);
    socket.once('error', drop);
    socket.once('readable', () => {
      socket.setTimeout(0);
      socket.off('timeout', drop);
      socket.off('error', drop);
      const first = socket.read(1) as Buffer | null;
      if (!first) return void socket.destroy();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) for (const handler of tlsHandlers) handler.call(server, socket);
      else plain.emit('connection', socket);
    });
  });
}

/** The headers every response carries (the console's build has no inline script or style). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'strict-transport-security': 'max-age=31536000',
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

export function addSecurityHeaders(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
  });
}

/**
 * Why a request from a browser must be refused as cross-site, or null to let it
 * through. Browsers send Sec-Fetch-Site and Origin on every state-changing
 * request; the CLI and curl send neither and pass. The Director's own origin is
 * https:// and the Host the request was sent to, or the configured public URL.
 */
export function crossSiteReason(headers: IncomingHttpHeaders, publicOrigin?: string | null): string | null {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin') return `this request came from another site (Sec-Fetch-Site: ${site})`;
  const origin = headers.origin;
  if (typeof origin === 'string') {
    const own = [`https://${headers.host ?? ''}`.toLowerCase(), publicOrigin?.toLowerCase()];
    if (!own.includes(origin.toLowerCase())) return `this request came from another origin (${origin})`;
  }
  return null;
}
