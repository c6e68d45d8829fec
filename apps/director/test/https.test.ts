/**
 * HTTPS by default, over real sockets on 127.0.0.1: the Director serves the
 * certificate it is given, plain HTTP on the same port gets a redirect and
 * nothing else, every response carries the security headers, the session cookie
 * is __Host-/Secure/HttpOnly/SameSite=Strict, and browsers from other sites
 * cannot change anything.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { certificateFingerprint, loadTlsIdentity, makeSelfSignedCertificate, pinnedFetch, type TlsIdentity } from '@vaultline/tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../src/auth/sessions.ts';
import { SECURITY_HEADERS, crossSiteReason } from '../src/https.ts';
import { signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';

/** The certificate a TLS client is shown at this port. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once('error', reject);
  });
}

/** Bytes sent as they are over plain TCP; the whole answer once the server closes. */
function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.end(request));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.once('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer over plain HTTP')));
  });
}

describe('HTTPS by default (real sockets)', () => {
  let d: TestDirector;
  let own: TlsIdentity;
  let dir: string;
  let port: number;
  let base: string;
  let cookie: string;
  let get: ReturnType<typeof pinnedFetch>;

  beforeAll(async () => {
    // The operator's own certificate and key, given as files (VAULTLINE_TLS_CERT / VAULTLINE_TLS_KEY).
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-https-'));
    const made = makeSelfSignedCertificate({ dns: ['backup.example.com', 'localhost'], ip: ['127.0.0.1'] });
    await writeFile(path.join(dir, 'own.crt'), made.cert);
    await writeFile(path.join(dir, 'own.key'), made.key);
    own = await loadTlsIdentity({ dataDir: dir, certFile: path.join(dir, 'own.crt'), keyFile: path.join(dir, 'own.key') });
    d = await startTestDirector({ extra: () => ({ tls: own }) });
    cookie = await signInAdmin(d);
    base = await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    port = Number(new URL(base).port);
    get = pinnedFetch(own.fingerprint);
  });
  afterAll(async () => {
    await d?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves TLS with the certificate it was given', async () => {
    expect(base).toBe(`https://127.0.0.1:${port}`);
    expect(await servedFingerprint(port)).toBe(certificateFingerprint(own.cert));
    expect((await get(`${base}/api/health`)).status).toBe(200);
  });

  it('serves the self-signed certificate of its data dir, the same one after a restart', async () => {
    const dataDir = path.join(dir, 'data');
    const first = await loadTlsIdentity({ dataDir });
    const a = await startTestDirector({ extra: () => ({ tls: first }) });
    try {
      const url = await a.app.fastify.listen({ host: '127.0.0.1', port: 0 });
      expect(await servedFingerprint(Number(new URL(url).port))).toBe(first.fingerprint);
    } finally {
      await a.close();
    }
    const restarted = await loadTlsIdentity({ dataDir });
    expect(restarted.generated).toBe(false);
    const b = await startTestDirector({ extra: () => ({ tls: restarted }) });
    try {
      const url = await b.app.fastify.listen({ host: '127.0.0.1', port: 0 });
      expect(await servedFingerprint(Number(new URL(url).port))).toBe(first.fingerprint);
    } finally {
      await b.close();
    }
  });

  it('answers plain HTTP on the same port with a redirect to https and no API data', async () => {
    const list = await rawHttp(port, `GET /api/users HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\n\r\n`);
    expect(list).toMatch(/^HTTP\/1\.1 301 /);
    expect(list).toContain(`\r\nlocation: https://127.0.0.1:${port}/api/users\r\n`);
    expect(list).not.toContain('admin');
    const console = await rawHttp(port, `GET /jobs?x=1 HTTP/1.1\r\nHost: backup.example.com:8080\r\n\r\n`);
    expect(console).toContain('\r\nlocation: https://backup.example.com:8080/jobs?x=1\r\n');
    // A sign-in over plain HTTP is not carried out: no session, no cookie.
    const sessions = await d.db.session.count();
    const body = JSON.stringify({ username: 'admin', password: 'correct-horse-battery' });
    const login = await rawHttp(port, `POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(login).toMatch(/^HTTP\/1\.1 301 /);
    expect(login.toLowerCase()).not.toContain('set-cookie');
    expect(await d.db.session.count()).toBe(sessions);
    // A Host header that could smuggle anything into the Location is not echoed.
    expect(await rawHttp(port, `GET / HTTP/1.1\r\nHost: evil.example/x?\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('sends the security headers on API answers, errors and the console', async () => {
    for (const url of ['/api/health', '/api/users', '/api/nothing-here', '/']) {
      const res = await get(`${base}${url}`);
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(name), `${name} on ${url}`).toBe(value);
    }
    const csp = SECURITY_HEADERS['content-security-policy']!;
    expect(csp).toMatch(/(^|; )script-src 'self'(;|$)/);
    expect(csp).not.toContain('unsafe-inline');
    expect(SECURITY_HEADERS['strict-transport-security']).toMatch(/max-age=(\d+)/);
    expect(Number(/max-age=(\d+)/.exec(SECURITY_HEADERS['strict-transport-security']!)![1])).toBeGreaterThanOrEqual(365 * 24 * 3600);
  });

  it('sets the session cookie as __Host-, Secure, HttpOnly, SameSite=Strict, Path=/ and clears it the same way', async () => {
    const res = await get(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'correct-horse-battery' }) });
    expect(res.status).toBe(200);
    const [set] = res.headers.getSetCookie();
    expect(SESSION_COOKIE).toBe('__Host-vl_session');
    expect(set).toMatch(/^__Host-vl_session=[A-Za-z0-9_-]{43}; /);
    const attrs = set!.split('; ').slice(1).sort();
    expect(attrs).toEqual(['HttpOnly', 'Max-Age=43200', 'Path=/', 'SameSite=Strict', 'Secure']);
    const out = await get(`${base}/api/auth/logout`, { method: 'POST', headers: { cookie: set!.split(';')[0]! } });
    const [clear] = out.headers.getSetCookie();
    expect(clear).toMatch(/^__Host-vl_session=; /);
    expect(clear!.split('; ').slice(1).filter((a) => !a.startsWith('Expires=')).sort()).toEqual(['HttpOnly', 'Max-Age=0', 'Path=/', 'SameSite=Strict', 'Secure']);
  });

  it('refuses a state-changing request from another site, and takes one from its own console or from no browser', async () => {
    const create = (username: string, headers: Record<string, string>) =>
      get(`${base}/api/users`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ username, password: 'csrf-password-1', role: 'viewer' }) });
    const refused: Record<string, string>[] = [
      { origin: 'https://evil.example' },
      { origin: `http://127.0.0.1:${port}` },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: base },
      { 'sec-fetch-site': 'none' },
    ];
    for (const [i, headers] of refused.entries()) {
      const res = await create(`csrf-${i}`, headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(((await res.json()) as { message: string }).message).toMatch(/^this request came from another (site|origin) .*; the Director only takes changes from its own console$/);
    }
    expect(await d.db.user.count({ where: { username: { startsWith: 'csrf-' } } })).toBe(0);
    // Signing in is a change too (login CSRF).
    const login = await get(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: JSON.stringify({ username: 'admin', password: 'correct-horse-battery' }) });
    expect(login.status).toBe(403);
    expect(login.headers.getSetCookie()).toEqual([]);
    // Reading stays possible from anywhere the cookie goes (SameSite=Strict keeps it home).
    expect((await get(`${base}/api/users`, { headers: { cookie, 'sec-fetch-site': 'cross-site' } })).status).toBe(200);

    expect((await create('own-console', { origin: base, 'sec-fetch-site': 'same-origin' })).status).toBe(201);
    expect((await create('cli-user', {})).status).toBe(201);
  });

  it('also takes changes from the configured public URL\'s origin (a console reached through a proxy), and from no other', () => {
    const proxied = { host: '10.0.0.5:8080', origin: 'https://backup.example.com', 'sec-fetch-site': 'same-origin' };
    expect(crossSiteReason(proxied, 'https://backup.example.com')).toBeNull();
    expect(crossSiteReason(proxied, null)).toBe('this request came from another origin (https://backup.example.com)');
    expect(crossSiteReason({ ...proxied, origin: 'https://backup.example.com.evil.example' }, 'https://backup.example.com')).not.toBeNull();
  });
});
