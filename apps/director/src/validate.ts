import type { z } from 'zod';
import { AppError } from './errors.ts';

/** Parses a request part with a contracts schema; bad input → 400 naming each field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const details = result.error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
  throw new AppError('bad_request', details.map((d) => `${d.path}: ${d.message}`).join('; '), details);
}
