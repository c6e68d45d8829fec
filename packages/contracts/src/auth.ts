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
  /** A TOTP code is asked for at sign-in (admins may turn this on). */
  totpEnabled: z.boolean(),
});
export type Me = z.infer<typeof MeSchema>;

/** The password was right but the account has a second factor: send the code with this challenge to /auth/login/totp. */
export const TotpChallengeSchema = z.object({
  secondFactor: z.literal('totp'),
  challenge: z.string(),
});
export type TotpChallenge = z.infer<typeof TotpChallengeSchema>;

export const TotpCodeSchema = z.string().trim().regex(/^\d{6}$/, '6 digits');

export const TotpLoginRequestSchema = z.object({
  challenge: z.string().min(1).max(2048),
  code: TotpCodeSchema,
});
export type TotpLoginRequest = z.infer<typeof TotpLoginRequestSchema>;

/** Shown once when enrolling: the secret as text and as the URI authenticator apps read. */
export const TotpEnrollmentSchema = z.object({
  secret: z.string(),
  uri: z.string(),
});
export type TotpEnrollment = z.infer<typeof TotpEnrollmentSchema>;

export const TotpConfirmRequestSchema = z.object({ code: TotpCodeSchema });
export const TotpDisableRequestSchema = z.object({ currentPassword: z.string().min(1).max(1024), code: TotpCodeSchema });

/**
 * Destructive actions (deleting a vCenter, a user or a remote Transporter, lowering a job's
 * immutability) carry the signed-in user's password again in this body field.
 */
export const REAUTH_FIELD = 'currentPassword';
export const ReauthSchema = z.object({ currentPassword: z.string().min(1).max(1024).optional() });

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

/** POST /api/auth/login: the user (signed in), or the second-factor challenge. */
export const LoginResponseSchema = z.union([MeSchema, TotpChallengeSchema]);
export type LoginResponse = z.infer<typeof LoginResponseSchema>;
