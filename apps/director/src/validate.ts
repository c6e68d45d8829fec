import type { z } from 'zod';
import { AppError } from './errors.ts';

/** Request parts the route's declared schema has parsed already (schemas.ts), and with which schema. */
const parsedBy = new WeakMap<object, z.ZodType>();

/** Records that `value` is `schema`'s output, so a handler's `parse` of it with that schema is free. */
export function markParsed(value: unknown, schema: z.ZodType): void {
  if (typeof value === 'object' && value !== null) parsedBy.set(value, schema);
}

/**
 * Parses a request part with a contracts schema; bad input → 400 naming each field. A part its route's
 * schema checked already (the usual case) is returned as it is: the handler gets its type, and a
 * transform is never applied twice.
 */
export function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  if (typeof value === 'object' && value !== null && parsedBy.get(value) === schema) return value as z.infer<S>;
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  throw badRequest(result.error);
}

/** A refused request part: one 400 naming each field and what is wrong with it. */
export function badRequest(error: z.ZodError, part = 'body'): AppError {
  const details = error.issues.map((i) => ({ path: i.path.join('.') || `(${part})`, message: i.message }));
  return new AppError('bad_request', details.map((d) => `${d.path}: ${d.message}`).join('; '), details);
}
