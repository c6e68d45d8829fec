/**
 * The API documents itself: every route the Director registers (collected by its onRoute hook) declares
 * the zod schemas of what it takes and answers, and GET /api/docs turns them into an OpenAPI 3.1
 * document listing exactly those routes, for signed-in users only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiRoute } from '../src/auth/guard.ts';
import type { RouteSchema } from '../src/openapi.ts';
import { signInAdmin, signInAs, startTestDirector, type TestDirector } from './helpers.ts';

/** POST routes whose only input is the path: actions on the thing it names. */
const NO_BODY = new Set([
  'POST /api/auth/logout',
  'POST /api/auth/totp/enroll',
  'POST /api/jobs/:id/run',
  'POST /api/runs/:id/cancel',
  'POST /api/runs/:id/retry',
  'POST /api/drills/:id/run',
  'POST /api/instant-recoveries/:id/discard',
  'POST /api/copy-jobs/:id/run',
  'POST /api/repositories/:id/gc',
  'POST /api/notifications/:id/test',
  'POST /api/restore-points/:id/browse',
  'POST /api/transporters/remote/:id/deploy',
  'POST /api/transporters/remote/:id/upgrade',
  'POST /api/transporters/remote/:id/restart',
]);

type Operation = {
  operationId: string;
  parameters?: { name: string; in: string; required: boolean; schema: object }[];
  requestBody?: { required: boolean; content: Record<string, { schema: Record<string, unknown> }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: object }> }>;
  security?: unknown[];
};
type Document = { openapi: string; info: { title: string; version: string }; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, object> } };

const isZod = (s: unknown) => typeof (s as { safeParse?: unknown })?.safeParse === 'function';
const pathParams = (url: string) => [...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!).sort();

describe('API documentation', () => {
  let d: TestDirector;
  let viewerCookie: string;
  let routes: ApiRoute[];

  beforeAll(async () => {
    d = await startTestDirector();
    viewerCookie = await signInAs(d, await signInAdmin(d), 'reader', 'viewer');
    // Fastify answers HEAD for each GET by itself.
    routes = d.app.routes.filter((r) => r.method !== 'HEAD');
  });
  afterAll(async () => {
    await d?.close();
  });

  it('every route declares its answers, its path parameters and its body, as zod schemas', () => {
    expect(routes.length).toBeGreaterThan(60);
    const problems: string[] = [];
    for (const route of routes) {
      const name = `${route.method} ${route.url}`;
      const schema = route.schema as RouteSchema | undefined;
      if (!schema?.response) {
        problems.push(`${name}: no response schema`);
        continue;
      }
      const statuses = Object.keys(schema.response);
      if (!statuses.some((s) => /^2\d\d$/.test(s))) problems.push(`${name}: no 2xx answer`);
      for (const s of statuses) if (!isZod(schema.response[Number(s)])) problems.push(`${name}: answer ${s} is not a zod schema`);
      for (const part of ['params', 'querystring', 'body'] as const) if (schema[part] !== undefined && !isZod(schema[part])) problems.push(`${name}: ${part} is not a zod schema`);
      const params = pathParams(route.url);
      const declared = schema.params ? Object.keys((schema.params as unknown as { shape: object }).shape).sort() : [];
      if (params.join() !== declared.join()) problems.push(`${name}: path parameters ${params.join(', ') || 'none'}, schema declares ${declared.join(', ') || 'none'}`);
      const takesBody = ['POST', 'PUT', 'PATCH'].includes(route.method) && !NO_BODY.has(name);
      if (takesBody && !schema.body) problems.push(`${name}: no body schema`);
      if (NO_BODY.has(name) && schema.body) problems.push(`${name}: has a body schema but is listed as taking none`);
    }
    expect(problems).toEqual([]);
    // The list above names routes that exist.
    const names = new Set(routes.map((r) => `${r.method} ${r.url}`));
    expect([...NO_BODY].filter((n) => !names.has(n))).toEqual([]);
  });

  it('GET /api/docs answers a signed-in viewer with an OpenAPI 3.1 document of exactly the registered routes', async () => {
    const res = await d.app.fastify.inject({ method: 'GET', url: '/api/docs', headers: { cookie: viewerCookie } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = res.json<Document>();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: 'test' });

    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    const registered = routes.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
    expect(documented.sort()).toEqual(registered.sort());

    const ids = new Set<string>();
    const problems: string[] = [];
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const name = `${method.toUpperCase()} ${p}`;
        if (ids.has(op.operationId)) problems.push(`${name}: operationId ${op.operationId} used twice`);
        ids.add(op.operationId);
        if (!Object.keys(op.responses).some((s) => /^2\d\d$/.test(s))) problems.push(`${name}: no 2xx response`);
        for (const [status, r] of Object.entries(op.responses)) {
          if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(status) || typeof r.description !== 'string') problems.push(`${name}: response ${status} is malformed`);
        }
        for (const param of [...p.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!)) {
          if (!op.parameters?.some((x) => x.in === 'path' && x.name === param && x.required)) problems.push(`${name}: path parameter ${param} is not documented`);
        }
        for (const x of op.parameters ?? []) if (!['path', 'query'].includes(x.in) || typeof x.schema !== 'object') problems.push(`${name}: parameter ${x.name} is malformed`);
      }
    }
    expect(problems).toEqual([]);
    // Every reference resolves.
    for (const [, ref] of JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) expect(doc.components.schemas).toHaveProperty(ref!);

    // The contracts' shapes, as the clients send them.
    const login = doc.paths['/api/auth/login']!.post!;
    expect(login.security).toEqual([]);
    expect(login.requestBody).toMatchObject({ required: true, content: { 'application/json': { schema: { type: 'object', required: ['username', 'password'] } } } });
    // Only the password again, which a client may leave out (and is then asked for).
    expect(doc.paths['/api/users/{id}']!.delete!.requestBody).toMatchObject({ required: false });
    expect(doc.paths['/api/runs']!.get!.parameters!.map((x) => x.name)).toEqual(expect.arrayContaining(['limit', 'jobId', 'status']));
    expect(Object.keys(doc.paths['/api/restore-points/{id}/ova']!.get!.responses['200']!.content!)).toEqual(['application/x-tar']);
    expect(doc.paths['/api/jobs/{id}']!.delete!.responses['4XX']!.content!['application/json']!.schema).toEqual({ $ref: '#/components/schemas/ApiError' });
    // Shapes only: nothing the appliance holds.
    expect(res.body).not.toContain(d.adminPassword);
    expect(res.body).not.toContain(d.database.name);
  });

  it('is refused without a session, and with a made-up one', async () => {
    for (const headers of [{}, { cookie: '__Host-vl_session=not-a-session' }]) {
      const res = await d.app.fastify.inject({ method: 'GET', url: '/api/docs', headers });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'unauthenticated' });
    }
  });
});
