import { z } from 'zod';
import { RoleSchema } from './auth.ts';

export const UserSchema = z.object({
  id: z.string(),
  username: z.string(),
  role: RoleSchema,
  mustChangePassword: z.boolean(),
  /** Signs in with a TOTP code as well. */
  totpEnabled: z.boolean(),
  lastLoginAt: z.string().nullable(),
});
export type User = z.infer<typeof UserSchema>;
