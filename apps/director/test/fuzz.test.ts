/**
 * Bad input never breaks the Director: every API route, called as an admin (so
 * the handlers themselves run), gets malformed JSON, a body over the limit,
 * wrong types and odd parameters; random paths go to the router. Each reply is
 * one clear JSON refusal with a 4xx status (or a 502/503 naming a dependency that
 * is not there) — never a 500, never a stack — and
 * the Director still answers its health check afterwards. Bounded: a seeded
 * generator (VAULTLINE_FUZZ_SEED picks another seed), a fixed number of cases,
 * loopback only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concretePath, RawClient, type RawReply } from './raw-http.ts';
import { signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD_STRINGS = ['', ' ', '0', '-1', '1e309', 'null', 'true', '💾', '\u0000', 'a'.repeat(5000), '../../etc/passwd', '%00', '<script>', "' OR 1=1 --", '{"$gt":""}', 'Ω≈ç√'];

function oddValue(next: () => number, depth = 0): unknown {
  const pick = Math.floor(next() * (depth > 2 ? 6 : 9));
  switch (pick) {
    case 0: return null;
    case 1: return next() < 0.5;
    case 2: return [0, -1, 1.5, Number.MAX_SAFE_INTEGER, -2147483649, 1e308][Math.floor(next() * 6)];
    case 3:
    case 4: return ODD_STRINGS[Math.floor(next() * ODD_STRINGS.length)];
    case 5: return {};
    case 6: return Array.from({ length: Math.floor(next() * 4) }, () => oddValue(next, depth + 1));
    default: {
      const keys = ['name', 'id', 'url', 'password', 'role', 'kind', 'location', 'vms', 'schedule', 'options', 'repositoryId', 'username', '__proto__', 'constructor'];
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 5); i > 0; i--) o[keys[Math.floor(next() * keys.length)]!] = oddValue(next, depth + 1);
      return o;
    }
  }
}

const ODD_PARAMS = ['x', '1', '-1', '00000000-0000-0000-0000-000000000000', 'not-a-uuid', '%E2%82', '%25', 'a%2Fb', '..', '.', 'x'.repeat(3000), '%00', '%F0%9F%92%BE', '%C0%AF'];

/** What makes a reply acceptable for bad input: a 4xx (or 2xx where the input happened to be fine) with a JSON message and no stack. */
function problem(r: RawReply, method: string): string | null {
  // A dependency that is down or not configured is a clear 502/503; anything else at 5xx is a bug.
  if (r.status >= 500 && !((r.status === 502 || r.status === 503) && /"code":"(service_unavailable|bad_gateway)"/.test(r.body))) return `status ${r.status}`;
  if (/\n\s+at [^\n]+:\d+:\d+/.test(r.body) || /node_modules|\/src\/[a-z-]+\.ts/.test(r.body)) return 'a stack trace or source path in the reply';
  if (r.status >= 400 && method !== 'HEAD') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.body);
    } catch {
      return `a ${r.status} whose body is not JSON`;
    }
    const p = parsed as { code?: unknown; message?: unknown };
    if (typeof p.code !== 'string' || typeof p.message !== 'string' || !p.message) return `a ${r.status} without code and message`;
  }
  return null;
}

describe('fuzzing every route leaves a Director that answers and never shows a stack', () => {
  let d: TestDirector;
  let client: RawClient;
  let cookie = '';

  beforeAll(async () => {
    d = await startTestDirector();
    cookie = await signInAdmin(d);
    await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    client = new RawClient((d.app.fastify.server.address() as { port: number }).port, d.tls.fingerprint);
  });

  afterAll(async () => {
    client?.close();
    await d?.close();
  });

  it('malformed JSON, oversized bodies, wrong types and odd parameters get 4xx messages; random paths 404', async () => {
    const next = rng(Number(process.env.VAULTLINE_FUZZ_SEED ?? 20261205));
    const failures: string[] = [];
    let cases = 0;
    const check = async (method: string, path: string, body?: string | Buffer, headers?: Record<string, string>) => {
      const r = await client.send({ method, path, cookie, ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) });
      cases++;
      const why = problem(r, method);
      if (why) failures.push(`${method} ${path.slice(0, 120)} body ${String(body ?? '').slice(0, 60)}: ${why} — ${r.body.slice(0, 160)}`);
      return r;
    };
    const huge = Buffer.alloc(2 * 1024 * 1024 + 17, 0x20);
    huge.write('{"name":"');
    for (const route of d.app.routes) {
      // Signing out would end the session the other cases use.
      if (route.url === '/api/auth/logout' || route.method === 'HEAD') continue;
      const withBody = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(route.method);
      for (let i = 0; i < 3; i++) {
        const path = concretePath(route.url, () => ODD_PARAMS[Math.floor(next() * ODD_PARAMS.length)]!);
        const query = next() < 0.5 ? `?${['limit', 'offset', 'status', 'jobId', 'format', 'path', 'sample'][Math.floor(next() * 7)]}=${encodeURIComponent(JSON.stringify(oddValue(next)) ?? "")}` : '';
        await check(route.method, path + query, withBody ? JSON.stringify(oddValue(next)) : undefined);
      }
      if (!withBody) continue;
      const path = concretePath(route.url);
      const malformed = await check(route.method, path, '{"name": "x", ');
      if (malformed.status !== 400) failures.push(`${route.method} ${route.url}: malformed JSON answered ${malformed.status}, not 400`);
      const tooBig = await check(route.method, path, huge);
      if (tooBig.status !== 413) failures.push(`${route.method} ${route.url}: a 2 MiB body answered ${tooBig.status}, not 413`);
      await check(route.method, path, 'name=x&role=admin', { 'content-type': 'application/x-www-form-urlencoded' });
      await check(route.method, path, JSON.stringify(oddValue(next)));
      await check(route.method, path, JSON.stringify([oddValue(next), oddValue(next)]));
    }
    for (let i = 0; i < 150; i++) {
      const segs = Array.from({ length: 1 + Math.floor(next() * 5) }, () => ODD_PARAMS[Math.floor(next() * ODD_PARAMS.length)]!);
      const method = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'][Math.floor(next() * 6)]!;
      const r = await check(method, `/api/${segs.join('/')}`, method === 'GET' || method === 'OPTIONS' ? undefined : JSON.stringify(oddValue(next)));
      if (r.status < 400) failures.push(`${method} /api/${segs.join('/').slice(0, 80)}: a random path answered ${r.status}`);
    }
    expect(failures).toEqual([]);
    expect(cases).toBeGreaterThan(500);
    const health = await client.send({ method: 'GET', path: '/api/health' });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ postgres: { ok: true }, redis: { ok: true } });
    // The admin session survived it all: the Director did not lose its state either.
    const me = await client.send({ method: 'GET', path: '/api/auth/me', cookie });
    expect(me.status).toBe(200);
  }, 300_000);
});
