/**
 * Fastify's schema compilers for the API's routes, whose schemas are zod schemas from @vaultline/contracts
 * (the same ones /api/docs documents and the console and CLI are typed by).
 *
 * - Requests: each declared part (params, querystring, body) is parsed with its schema before the handler
 *   runs; a refusal is one 400 naming each field. The parsed value (defaults filled in, transforms applied)
 *   replaces the raw one, and `parse` in a handler returns it as it is (validate.ts).
 * - Answers: sent as JSON.stringify makes them. Where asked (development and tests), each answer is also
 *   checked against its declared schema, as the client will read it (after JSON), so a declared schema
 *   that no longer says what a route sends fails loudly instead of misleading the docs and the clients.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import type { z } from 'zod';
import { AppError } from './errors.ts';
import { badRequest, markParsed } from './validate.ts';

const PARTS: Record<string, string> = { body: 'body', querystring: 'query', params: 'path' };

export const validatorFor: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  return (data: unknown) => {
    const result = schema.safeParse(data ?? {});
    if (!result.success) return { error: badRequest(result.error, PARTS[httpPart ?? 'body'] ?? httpPart) };
    markParsed(result.data, schema);
    return { value: result.data };
  };
};

export const checkedSerializerFor: FastifySerializerCompiler<z.ZodType> = ({ schema, method, url, httpStatus }) => {
  return (data: unknown) => {
    const json = JSON.stringify(data);
    // A refusal has the one error shape (app.ts), whatever the route declares for its answers.
    if (Number(httpStatus) >= 400) return json;
    const result = schema.safeParse(json === undefined ? undefined : JSON.parse(json));
    if (!result.success) {
      const issues = result.error.issues.map((i) => `${i.path.join('.') || '(answer)'}: ${i.message}`).join('; ');
      throw new AppError('internal', `${method} ${url} answered ${httpStatus} with what its declared schema refuses: ${issues}`);
    }
    return json;
  };
};
