import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { viewer, type ApiRoute } from '../auth/guard.ts';
import { openApiDocument } from '../openapi.ts';

/**
 * GET /api/docs: the OpenAPI document of every API route, for any signed-in user. It holds the routes'
 * shapes only (no settings, no data); built on the first request, when every route is registered.
 */
export async function docsRoutes(app: FastifyInstance, deps: { routes: readonly ApiRoute[]; version: string }): Promise<void> {
  let document: Record<string, unknown> | undefined;
  app.get('/docs', { ...viewer, schema: { response: { 200: z.record(z.string(), z.unknown()).meta({ description: 'An OpenAPI 3.1 document' }) } } }, async () => {
    document ??= openApiDocument(deps.routes, deps.version);
    return document;
  });
}
