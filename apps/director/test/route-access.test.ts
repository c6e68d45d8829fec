/**
 * Deny by default, per matched route: every API route the Director registers
 * (collected by its onRoute hook) is called over a real socket by every kind of
 * caller below its role — no cookie, a made-up cookie, a user who must still
 * change the first-login password, and each role — at its own path and at
 * percent-encoded, doubled-slash, trailing-slash, mixed-case and dot-segment
 * variants of it, sent byte for byte as written (like `curl --path-as-is`).
 * None may succeed, and no row in PostgreSQL or key in the run queue may change.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Role } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fastifyCookie from '@fastify/cookie';
import Fastify, { type FastifyInstance } from 'fastify';
import { apiPlugin, decorateAuth, type ApiRoute } from '../src/auth/guard.ts';
import { concretePath as concrete, RawClient, type RawReply as Reply } from './raw-http.ts';
import { SESSION_COOKIE } from '../src/auth/sessions.ts';
import { sessionCookie, signInAdmin, signInAs, startTestDirector, type TestDirector } from './helpers.ts';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const INDEX_MARK = '<!-- vaultline route-access index -->';

interface Caller {
  name: string;
  cookie?: string;
  role?: Role;
  pending?: boolean;
}

/** Ways the same route may be spelled on the wire. */
export function variants(p: string): string[] {
  const segs = p.split('/').slice(1); // ['api', 'users', ...]
  const rest = segs.slice(1).join('/');
  const encodeFirst = (s: string) => (s ? `%${s.charCodeAt(0).toString(16).padStart(2, '0')}${s.slice(1)}` : s);
  const out = [
    p,
    `/%61pi/${rest}`,
    `/%41PI/${rest}`,
    '/' + segs.map(encodeFirst).join('/'),
    `/${segs.map((s) => s.replace(/[a-z]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)).join('/')}`,
    `/${segs.join('%2f')}`,
    `/${segs.join('%2F')}`,
    `//${segs.join('/')}`,
    `/api//${rest}`,
    `${p}/`,
    `${p}//`,
    `/API/${rest}`,
    `/Api/${rest.charAt(0).toUpperCase()}${rest.slice(1)}`,
    p.toUpperCase(),
    `/api/x/../${rest}`,
    `/api/./${rest}`,
    `/x/../api/${rest}`,
    `/api/%2e%2e/api/${rest}`,
    `/api/${rest};x=1`,
    `${p}%00`,
    `${p}%20`,
  ];
  return [...new Set(out)];
}

function allowed(route: ApiRoute, c: Caller): boolean {
  if (route.access === 'public') return true;
  if (!c.role) return false;
  if (c.pending && !route.allowPendingPasswordChange) return false;
  return RANK[c.role] >= RANK[route.access];
}

/**
 * Per table, a digest of every row: the same before and after means nothing changed.
 * A session's last-seen time is left out: any signed-in request may move it (at most once a minute).
 */
async function fingerprint(db: Db): Promise<Record<string, string>> {
  const tables = await db.$queryRawUnsafe<{ t: string }[]>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
  const out: Record<string, string> = {};
  for (const { t } of tables) {
    const rows = await db.$queryRawUnsafe<{ h: string | null; n: bigint }[]>(
      `SELECT md5(coalesce(string_agg((to_jsonb(x) - 'last_seen_at')::text, '|' ORDER BY (to_jsonb(x) - 'last_seen_at')::text), '')) AS h, count(*) AS n FROM "${t.replace(/"/g, '""')}" x`,
    );
    out[t] = `${rows[0]?.n ?? 0}:${rows[0]?.h ?? ''}`;
  }
  return out;
}

/** Why a reply to a caller below the route's role is acceptable, or null if it is not. */
function refusal(r: Reply, method: string): string | null {
  if (r.status === 401 || r.status === 403) return 'refused';
  if (r.status === 404 && /"message":"no route /.test(r.body)) return 'no such route';
  // HEAD replies carry no body; the same spelling is checked with GET, whose 404 says whether a route matched.
  if (r.status === 404 && method === 'HEAD' && r.body === '') return 'no such route (HEAD)';
  // The console's single-page fallback for a GET outside /api: static HTML, no API data.
  if (r.status === 200 && (method === 'GET' || method === 'HEAD') && (r.body === '' || r.body.includes(INDEX_MARK))) return 'console page';
  return null;
}

describe('every API route refuses callers below its role, however its path is spelled', () => {
  let d: TestDirector;
  let client: RawClient;
  let webDist = '';
  const callers: Caller[] = [];

  beforeAll(async () => {
    webDist = await mkdtemp(path.join(os.tmpdir(), 'vaultline-web-'));
    await writeFile(path.join(webDist, 'index.html'), `<!doctype html>${INDEX_MARK}<title>Vaultline</title>`);
    d = await startTestDirector({ extra: () => ({ webDist }) });
    const adminCookie = await signInAdmin(d);
    const operatorCookie = await signInAs(d, adminCookie, 'ra-operator', 'operator');
    const viewerCookie = await signInAs(d, adminCookie, 'ra-viewer', 'viewer');
    // An admin who has not yet changed the first-login password: only the routes that allow it.
    const created = await d.app.fastify.inject({ method: 'POST', url: '/api/users', headers: { cookie: adminCookie }, payload: { username: 'ra-pending', password: 'ra-pending-first-1', role: 'admin' } });
    expect(created.statusCode).toBe(201);
    const pendingCookie = sessionCookie(await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'ra-pending', password: 'ra-pending-first-1' } }));
    callers.push(
      { name: 'no cookie' },
      { name: 'made-up cookie', cookie: `${SESSION_COOKIE}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA` },
      { name: 'pending admin', cookie: pendingCookie, role: 'admin', pending: true },
      { name: 'viewer', cookie: viewerCookie, role: 'viewer' },
      { name: 'operator', cookie: operatorCookie, role: 'operator' },
      { name: 'admin', cookie: adminCookie, role: 'admin' },
    );
    await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    client = new RawClient((d.app.fastify.server.address() as { port: number }).port, d.tls.fingerprint);
  });

  afterAll(async () => {
    client?.close();
    await d?.close();
    await rm(webDist, { recursive: true, force: true });
  });

  it('collects the routes, each with a declared access', () => {
    const urls = new Set(d.app.routes.map((r) => `${r.method} ${r.url}`));
    expect(d.app.routes.length).toBeGreaterThan(60);
    for (const must of ['GET /api/users', 'POST /api/users', 'DELETE /api/vcenters/:id', 'POST /api/auth/login', 'GET /api/health', 'POST /api/restores']) {
      expect(urls, must).toContain(must);
    }
    for (const r of d.app.routes) expect(['public', 'viewer', 'operator', 'admin']).toContain(r.access);
    // Only sign-in (with its code step) and the liveness check are public.
    expect(d.app.routes.filter((r) => r.access === 'public').map((r) => `${r.method} ${r.url}`).sort()).toEqual(['GET /api/health', 'HEAD /api/health', 'POST /api/auth/login', 'POST /api/auth/login/totp']);
  });

  it('nothing below a route\'s role succeeds or changes a row, at any spelling of its path', async () => {
    const before = await fingerprint(d.db);
    const queueKeys = async () => (await d.redis.keys(`*${d.database.name}*`)).sort();
    const keysBefore = await queueKeys();
    const failures: string[] = [];
    let calls = 0;
    for (const route of d.app.routes) {
      if (route.access === 'public') continue;
      const p = concrete(route.url);
      for (const caller of callers) {
        if (allowed(route, caller)) continue;
        for (const v of variants(p)) {
          const r = await client.send({ method: route.method, path: v, cookie: caller.cookie });
          calls++;
          if (!refusal(r, route.method)) failures.push(`${route.method} ${v} as ${caller.name} (route needs ${route.access}): ${r.status} ${r.body.slice(0, 120)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(1000);
    expect(await fingerprint(d.db)).toEqual(before);
    expect(await queueKeys()).toEqual(keysBefore);
  }, 240_000);

  it('the encoded-prefix bypass is closed: GET and POST /%61pi/users without a cookie are refused', async () => {
    const list = await client.send({ method: 'GET', path: '/%61pi/users' });
    expect(list.status).toBe(401);
    expect(list.body).not.toContain('admin');
    const create = await client.send({ method: 'POST', path: '/%61pi/users' });
    expect(create.status).toBe(401);
  });

  it('a caller with the role a route declares gets past the guard (so the refusals above are the guard\'s)', async () => {
    const failures: string[] = [];
    for (const route of d.app.routes) {
      // Signing out ends the session the later calls use; it is checked on its own below.
      if (route.access === 'public' || route.url === '/api/auth/logout') continue;
      const caller = callers.find((c) => c.role === route.access && !c.pending)!;
      const r = await client.send({ method: route.method, path: concrete(route.url), cookie: caller.cookie });
      if (r.status === 401 || r.status === 403) failures.push(`${route.method} ${route.url} as ${caller.name}: ${r.status} ${r.body.slice(0, 120)}`);
    }
    expect(failures).toEqual([]);
    const out = await client.send({ method: 'POST', path: '/api/auth/logout', cookie: callers.find((c) => c.name === 'viewer')!.cookie });
    expect(out.status).toBe(200);
  });

  it('a route that declares no access stops the Director from starting', async () => {
    const start = async (declare: (api: FastifyInstance) => void) => {
      const f = Fastify();
      await f.register(fastifyCookie);
      decorateAuth(f);
      try {
        await f.register(apiPlugin(d.db, async (api) => declare(api)), { prefix: '/api' });
        await f.ready();
      } finally {
        await f.close();
      }
    };
    await expect(start((api) => api.get('/forgotten', async () => 'x'))).rejects.toThrow(/GET \/api\/forgotten declares no access/);
    await expect(start((api) => api.get('/typo', { config: { minRole: 'superuser' as Role } }, async () => 'x'))).rejects.toThrow(/declares no access/);
    await expect(start((api) => api.post('/ok', { config: { minRole: 'viewer' } }, async () => 'x'))).resolves.toBeUndefined();
  });
});
