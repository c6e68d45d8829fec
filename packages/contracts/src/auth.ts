import { z } from 'zod';

export const RoleSchema = z.enum(['admin', 'operator', 'viewer']);
export type Role = z.infer<typeof RoleSchema>;

export const LoginRequestSchema = z.object({
  username: z.string().min(1).max(128),
  password: z.string().min(1).max(1024),
});
export type LoginRequest = z.infer<typeof LoginRequestSchema>;

export const MeSchema = z.object({
  id: z.string(),
  username: z.string(),
  role: RoleSchema,
  mustChangePassword: z.boolean(),
});
export type Me = z.infer<typeof MeSchema>;

export const PASSWORD_MIN_LENGTH = 10;

export const ChangePasswordRequestSchema = z.object({
  currentPassword: z.string().min(1).max(1024),
  newPassword: z.string().min(PASSWORD_MIN_LENGTH, `at least ${PASSWORD_MIN_LENGTH} characters`).max(1024),
});
export type ChangePasswordRequest = z.infer<typeof ChangePasswordRequestSchema>;

export const CreateUserRequestSchema = z.object({
  username: z.string().regex(/^[a-zA-Z0-9._-]{2,64}$/, '2–64 letters, digits, dot, dash or underscore'),
  password: z.string().min(PASSWORD_MIN_LENGTH).max(1024),
  role: RoleSchema,
});
export type CreateUserRequest = z.infer<typeof CreateUserRequestSchema>;
