/**
 * The OpenAPI 3.1 document of the API (GET /api/docs), built from the routes as registered: each route's
 * `schema` holds the zod schemas of @vaultline/contracts it parses and answers with (the ones the console
 * and the CLI are typed by), turned into JSON Schema by zod itself.
 */
import { ApiErrorSchema } from '@vaultline/contracts';
import { z } from 'zod';
import type { ApiRoute } from './auth/guard.ts';
import { SESSION_COOKIE } from './auth/sessions.ts';

/** A route's `schema` option: its request parts and its answers by status, as zod schemas. */
export interface RouteSchema {
  params?: z.ZodType;
  querystring?: z.ZodType;
  body?: z.ZodType;
  response: Record<number, z.ZodType>;
}

const MEDIA_TYPES = new WeakMap<z.ZodType, string[]>();

/** An answer that is not JSON (a download), in one of these media types: documented as bytes. */
export function binary(...mediaTypes: string[]): z.ZodType {
  const schema = z.string().meta({ format: 'binary' });
  MEDIA_TYPES.set(schema, mediaTypes);
  return schema;
}

/** An answer without a body (204). */
export const NoContent = z.undefined().meta({ description: 'no body' });

type JsonSchema = Record<string, unknown>;

/** Requests are documented as clients send them (before defaults and coercion), answers as sent. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): JsonSchema[] {
  if (!schema) return [];
  const object = jsonSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(object.properties ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || (object.required ?? []).includes(name),
    schema: property,
    ...(typeof property.description === 'string' ? { description: property.description } : {}),
  }));
}

function answer(schema: z.ZodType): JsonSchema {
  if (schema === NoContent) return { description: 'No content' };
  const mediaTypes = MEDIA_TYPES.get(schema);
  const body = { schema: jsonSchema(schema, 'output') };
  if (!mediaTypes) return { description: 'JSON', content: { 'application/json': body } };
  return { description: `Bytes, streamed (${mediaTypes.join(' or ')})`, content: Object.fromEntries(mediaTypes.map((m) => [m, body])) };
}

const ACCESS: Record<ApiRoute['access'], string> = {
  public: 'Public: no session needed.',
  viewer: 'Needs a session with the viewer role or above.',
  operator: 'Needs a session with the operator role or above.',
  admin: 'Needs a session with the admin role.',
};

/** The document for `routes` (the API's onRoute table). A route without a schema is listed with its access only. */
export function openApiDocument(routes: readonly ApiRoute[], version: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const error = { $ref: '#/components/schemas/ApiError' };
  for (const route of routes) {
    // Fastify answers HEAD for every GET by itself; the GET documents both.
    if (route.method === 'HEAD') continue;
    const schema = route.schema as RouteSchema | undefined;
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const responses: Record<string, JsonSchema> = {};
    for (const [status, s] of Object.entries(schema?.response ?? {})) responses[status] = answer(s);
    // Every refusal has one shape (the error handler in app.ts, with the domain-errors.ts table).
    responses['4XX'] ??= { description: 'Refused (see code and message)', content: { 'application/json': { schema: error } } };
    responses['5XX'] ??= { description: 'Failed on the appliance (see code and message)', content: { 'application/json': { schema: error } } };
    const params = [...parameters(schema?.params, 'path'), ...parameters(schema?.querystring, 'query')];
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      operationId: `${route.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      tags: [path.split('/')[2] ?? 'api'],
      description: ACCESS[route.access],
      'x-vaultline-access': route.access,
      ...(route.access === 'public' ? { security: [] } : {}),
      ...(params.length ? { parameters: params } : {}),
      // validate.ts parses an absent body as {}: a body is required when {} is not enough.
      ...(schema?.body ? { requestBody: { required: !schema.body.safeParse({}).success, content: { 'application/json': { schema: jsonSchema(schema.body, 'input') } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Vaultline Director API', version, description: 'Every route of the Director. Sign in with POST /api/auth/login; the session cookie it sets authenticates the rest.' },
    servers: [{ url: '/' }],
    security: [{ session: [] }],
    paths,
    components: {
      schemas: { ApiError: jsonSchema(ApiErrorSchema, 'output') },
      securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE } },
    },
  };
}
