/**
 * A route's declared zod schemas are enforced, not only documented: Fastify parses each request part with
 * them before the handler runs (a refusal names the field), the handler gets the parsed value, and in
 * development and tests an answer its declared schema refuses fails loudly. A small API of its own, in
 * the Director's one API context (apiPlugin), so each behaviour is seen in isolation.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import cookie from '@fastify/cookie';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { apiPlugin } from '../src/auth/guard.ts';
import { AppError } from '../src/errors.ts';
import { parse } from '../src/validate.ts';
import type { Db } from '@vaultline/db';

const Body = z.object({ name: z.string().min(1), copies: z.number().int().default(2), tag: z.string().transform((t) => `#${t}`) });
const Query = z.object({ limit: z.coerce.number().int().max(10).default(5) });
const Answer = z.object({ ok: z.literal(true), count: z.number() });

describe('route schemas', () => {
  let app: FastifyInstance;
  const seen: unknown[] = [];

  beforeAll(async () => {
    app = Fastify();
    await app.register(cookie);
    app.setErrorHandler((err: Error, _request, reply) => {
      if (err instanceof AppError) return reply.code(err.status).send({ code: err.code, message: err.message, details: err.details });
      return reply.code(500).send({ code: 'other', message: err.message });
    });
    const routes = async (api: FastifyInstance) => {
      api.post('/things', { config: { public: true }, schema: { body: Body, querystring: Query, response: { 200: Answer } } }, async (request) => {
        seen.push({ body: request.body, query: request.query, parsedAgain: parse(Body, request.body) });
        return { ok: true, count: (request.query as z.infer<typeof Query>).limit };
      });
      api.get('/drifted', { config: { public: true }, schema: { response: { 200: Answer } } }, async () => ({ ok: true, count: 'three' }));
    };
    // No route here needs a session, so the database is never asked.
    await app.register(apiPlugin(null as unknown as Db, routes, [], { checkAnswers: true }), { prefix: '/api' });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('refuses a body its schema refuses, naming each field, before the handler runs', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/things', payload: { name: '', copies: 1.5 } });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body.code).toBe('bad_request');
    expect(body.details.map((d: { path: string }) => d.path).sort()).toEqual(['copies', 'name', 'tag']);
    const q = await app.inject({ method: 'POST', url: '/api/things?limit=99', payload: { name: 'a', tag: 'x' } });
    expect(q.statusCode).toBe(400);
    expect(q.json().details).toEqual([{ path: 'limit', message: expect.any(String) }]);
    expect(seen).toEqual([]);
  });

  it('hands the handler the parsed value (defaults filled in, transforms applied once, query coerced)', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/things?limit=7', payload: { name: 'a', tag: 'x' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true, count: 7 });
    expect(seen.at(-1)).toEqual({ body: { name: 'a', copies: 2, tag: '#x' }, query: { limit: 7 }, parsedAgain: { name: 'a', copies: 2, tag: '#x' } });
  });

  it('fails an answer its declared schema refuses, saying which route and field', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/drifted' });
    expect(res.statusCode).toBe(500);
    expect(res.json().message).toMatch(/^GET \/api\/drifted answered 200 with what its declared schema refuses: count: /);
  });
});
