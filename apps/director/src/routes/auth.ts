import {
  ChangePasswordRequestSchema,
  LoginRequestSchema,
  LoginResponseSchema,
  MeSchema,
  OkSchema,
  TotpConfirmRequestSchema,
  TotpDisableRequestSchema,
  TotpEnrollmentSchema,
  TotpLoginRequestSchema,
  type LoginResponse,
  type Me,
  type TotpEnrollment,
} from '@vaultline/contracts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Db, UserModel as User } from '@vaultline/db';
import { AppError } from '../errors.ts';
import { admin, currentUser } from '../auth/guard.ts';
import type { Credentials } from '../auth/credentials.ts';
import { SESSION_COOKIE, SESSION_TTL_MS, createSession, deleteSession, deleteUserSessions } from '../auth/sessions.ts';
import { newTotpSecret, totpUri } from '../auth/totp.ts';
import { parse } from '../validate.ts';
import type { AuditLog } from '../services/audit.ts';

/** The session cookie's attributes (its __Host- prefix needs Secure and Path=/). */
const COOKIE_ATTRIBUTES = { path: '/', httpOnly: true, secure: true, sameSite: 'strict' } as const;

export interface AuthRouteDeps {
  db: Db;
  audit: AuditLog;
  credentials: Credentials;
  onFirstPasswordChanged?: () => Promise<void>;
}

const meOf = (u: Pick<User, 'id' | 'username' | 'role' | 'mustChangePassword' | 'totpEnabledAt'>): Me => ({
  id: u.id,
  username: u.username,
  role: u.role,
  mustChangePassword: u.mustChangePassword,
  totpEnabled: u.totpEnabledAt !== null,
});

export async function authRoutes(app: FastifyInstance, deps: AuthRouteDeps): Promise<void> {
  const { db, audit, credentials } = deps;

  const startSession = async (request: FastifyRequest, reply: FastifyReply, user: User): Promise<Me> => {
    const session = await createSession(db, user.id);
    await db.user.update({ where: { id: user.id }, data: { lastLoginAt: new Date() } });
    await audit.record({ actor: user.username, action: 'auth.login', ...(user.totpEnabledAt ? { detail: { secondFactor: 'totp' } } : {}), ip: request.ip });
    reply.setCookie(SESSION_COOKIE, session.token, { ...COOKIE_ATTRIBUTES, maxAge: Math.floor(SESSION_TTL_MS / 1000) });
    return meOf(user);
  };

  app.post('/auth/login', { config: { public: true }, schema: { body: LoginRequestSchema, response: { 200: LoginResponseSchema } } }, async (request, reply): Promise<LoginResponse> => {
    const body = parse(LoginRequestSchema, request.body);
    const user = await db.user.findUnique({ where: { username: body.username } });
    if (!(await credentials.passwordMatches(body.username, user, body.password)) || !user) {
      await audit.record({ actor: body.username, action: 'auth.login-failed', ip: request.ip });
      throw new AppError('unauthenticated', 'wrong username or password');
    }
    // A second factor: no session until the code is right.
    if (user.totpEnabledAt) return { secondFactor: 'totp', challenge: credentials.loginChallenge(user.id) };
    return startSession(request, reply, user);
  });

  app.post('/auth/login/totp', { config: { public: true }, schema: { body: TotpLoginRequestSchema, response: { 200: MeSchema } } }, async (request, reply): Promise<Me> => {
    const body = parse(TotpLoginRequestSchema, request.body);
    const userId = credentials.openLoginChallenge(body.challenge);
    const user = userId ? await db.user.findUnique({ where: { id: userId } }) : null;
    if (!user || !user.totpEnabledAt) throw new AppError('unauthenticated', 'this sign-in has expired; enter your username and password again');
    if (!(await credentials.totpMatches(user, body.code))) {
      await audit.record({ actor: user.username, action: 'auth.login-failed', detail: { secondFactor: 'totp' }, ip: request.ip });
      throw new AppError('unauthenticated', 'wrong or already used code');
    }
    return startSession(request, reply, user);
  });

  app.post('/auth/logout', { config: { minRole: 'viewer', allowPendingPasswordChange: true }, schema: { response: { 200: OkSchema } } }, async (request, reply) => {
    if (request.sessionToken) await deleteSession(db, request.sessionToken);
    reply.clearCookie(SESSION_COOKIE, COOKIE_ATTRIBUTES);
    return { ok: true };
  });

  app.get('/auth/me', { config: { minRole: 'viewer', allowPendingPasswordChange: true }, schema: { response: { 200: MeSchema } } }, async (request) => {
    const user = await db.user.findUnique({ where: { id: currentUser(request).id } });
    if (!user) throw new AppError('unauthenticated', 'sign in first');
    return meOf(user);
  });

  app.post('/auth/change-password', { config: { minRole: 'viewer', allowPendingPasswordChange: true }, schema: { body: ChangePasswordRequestSchema, response: { 200: OkSchema } } }, async (request) => {
    const body = parse(ChangePasswordRequestSchema, request.body);
    const user = await db.user.findUniqueOrThrow({ where: { id: currentUser(request).id } });
    if (!(await credentials.passwordMatches(user.username, user, body.currentPassword))) {
      throw new AppError('bad_request', 'the current password is wrong', [{ path: 'currentPassword', message: 'wrong password' }]);
    }
    if (body.newPassword === body.currentPassword) {
      throw new AppError('bad_request', 'choose a password different from the current one', [{ path: 'newPassword', message: 'same as current' }]);
    }
    const wasFirst = user.mustChangePassword;
    await db.user.update({ where: { id: user.id }, data: { passwordHash: await credentials.hash(body.newPassword), mustChangePassword: false } });
    // Every other session of this user ends: a changed password must lock out whoever knew the old one.
    await deleteUserSessions(db, user.id, request.sessionToken ?? undefined);
    await audit.record({ actor: user.username, action: 'auth.password-changed', ip: request.ip });
    if (wasFirst) await deps.onFirstPasswordChanged?.();
    return { ok: true };
  });

  /** Starts (or restarts) enrolment: a new secret, shown this once; it counts only after /auth/totp/confirm. */
  app.post('/auth/totp/enroll', { ...admin, schema: { response: { 200: TotpEnrollmentSchema } } }, async (request): Promise<TotpEnrollment> => {
    const user = await db.user.findUniqueOrThrow({ where: { id: currentUser(request).id } });
    if (user.totpEnabledAt) throw new AppError('conflict', 'two-factor sign-in is already on; turn it off first to enrol a new authenticator');
    const secret = newTotpSecret();
    await db.user.update({ where: { id: user.id }, data: { totpSecretSealed: credentials.sealTotpSecret(user.id, secret), totpLastStep: null } });
    await audit.record({ actor: user.username, action: 'auth.totp-enroll', ip: request.ip });
    return { secret, uri: totpUri(secret, user.username) };
  });

  app.post('/auth/totp/confirm', { ...admin, schema: { body: TotpConfirmRequestSchema, response: { 200: MeSchema } } }, async (request): Promise<Me> => {
    const body = parse(TotpConfirmRequestSchema, request.body);
    const user = await db.user.findUniqueOrThrow({ where: { id: currentUser(request).id } });
    if (user.totpEnabledAt) throw new AppError('conflict', 'two-factor sign-in is already on');
    if (!user.totpSecretSealed) throw new AppError('conflict', 'start the enrolment first');
    if (!(await credentials.totpMatches(user, body.code))) {
      throw new AppError('bad_request', 'that code is not right; check the authenticator app and the clock', [{ path: 'code', message: 'wrong code' }]);
    }
    const updated = await db.user.update({ where: { id: user.id }, data: { totpEnabledAt: new Date() } });
    await audit.record({ actor: user.username, action: 'auth.totp-enabled', ip: request.ip });
    return meOf(updated);
  });

  /** Turning the second factor off needs both the password and a current code. */
  app.post('/auth/totp/disable', { ...admin, schema: { body: TotpDisableRequestSchema, response: { 200: MeSchema } } }, async (request): Promise<Me> => {
    const body = parse(TotpDisableRequestSchema, request.body);
    const user = await db.user.findUniqueOrThrow({ where: { id: currentUser(request).id } });
    if (!user.totpEnabledAt) throw new AppError('conflict', 'two-factor sign-in is not on');
    const refuse = async (reason: string, err: AppError): Promise<never> => {
      await audit.record({ actor: user.username, action: 'auth.totp-disable.refused', detail: { reason }, ip: request.ip });
      throw err;
    };
    if (!(await credentials.passwordMatches(user.username, user, body.currentPassword))) {
      await refuse('wrong password', new AppError('reauth_failed', 'your password is wrong; two-factor sign-in stays on'));
    }
    if (!(await credentials.totpMatches(user, body.code))) await refuse('wrong code', new AppError('reauth_failed', 'that code is not right; two-factor sign-in stays on'));
    const updated = await db.user.update({ where: { id: user.id }, data: { totpEnabledAt: null, totpSecretSealed: null, totpLastStep: null } });
    await audit.record({ actor: user.username, action: 'auth.totp-disabled', ip: request.ip });
    return meOf(updated);
  });
}
