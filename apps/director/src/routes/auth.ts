import { ChangePasswordRequestSchema, LoginRequestSchema, type Me } from '@vaultline/contracts';
import type { FastifyInstance } from 'fastify';
import type { Db } from '@vaultline/db';
import { AppError } from '../errors.ts';
import { currentUser } from '../auth/guard.ts';
import { hashPassword, verifyPassword } from '../auth/passwords.ts';
import { SESSION_COOKIE, SESSION_TTL_MS, createSession, deleteSession, deleteUserSessions } from '../auth/sessions.ts';
import { parse } from '../validate.ts';
import type { AuditLog } from '../services/audit.ts';
import { LoginThrottle } from '../auth/throttle.ts';

/** The session cookie's attributes (its __Host- prefix needs Secure and Path=/). */
const COOKIE_ATTRIBUTES = { path: '/', httpOnly: true, secure: true, sameSite: 'strict' } as const;

// A well-formed hash of a random password, so unknown usernames cost as much as known ones.
const DUMMY_HASH = hashPassword('vaultline-timing-equaliser');

export interface AuthRouteDeps {
  db: Db;
  audit: AuditLog;
  onFirstPasswordChanged?: () => Promise<void>;
}

export async function authRoutes(app: FastifyInstance, deps: AuthRouteDeps): Promise<void> {
  const { db, audit } = deps;
  const throttle = new LoginThrottle();

  app.post('/auth/login', { config: { public: true } }, async (request, reply) => {
    const body = parse(LoginRequestSchema, request.body);
    const key = `${request.ip}|${body.username.toLowerCase()}`;
    const wait = throttle.retryAfterMs(key);
    if (wait > 0) throw new AppError('rate_limited', `too many failed sign-ins; try again in ${Math.ceil(wait / 1000)} s`);
    const user = await db.user.findUnique({ where: { username: body.username } });
    const ok = user ? await verifyPassword(body.password, user.passwordHash) : (await verifyPassword(body.password, await DUMMY_HASH), false);
    if (!user || !ok) {
      throttle.failed(key);
      await audit.record({ actor: body.username, action: 'auth.login-failed', ip: request.ip });
      throw new AppError('unauthenticated', 'wrong username or password');
    }
    throttle.succeeded(key);
    const session = await createSession(db, user.id);
    await db.user.update({ where: { id: user.id }, data: { lastLoginAt: new Date() } });
    await audit.record({ actor: user.username, action: 'auth.login', ip: request.ip });
    reply.setCookie(SESSION_COOKIE, session.token, { ...COOKIE_ATTRIBUTES, maxAge: Math.floor(SESSION_TTL_MS / 1000) });
    const me: Me = { id: user.id, username: user.username, role: user.role, mustChangePassword: user.mustChangePassword };
    return me;
  });

  app.post('/auth/logout', { config: { minRole: 'viewer', allowPendingPasswordChange: true } }, async (request, reply) => {
    if (request.sessionToken) await deleteSession(db, request.sessionToken);
    reply.clearCookie(SESSION_COOKIE, COOKIE_ATTRIBUTES);
    return { ok: true };
  });

  app.get('/auth/me', { config: { minRole: 'viewer', allowPendingPasswordChange: true } }, async (request) => {
    const u = currentUser(request);
    const me: Me = { id: u.id, username: u.username, role: u.role, mustChangePassword: u.mustChangePassword };
    return me;
  });

  app.post('/auth/change-password', { config: { minRole: 'viewer', allowPendingPasswordChange: true } }, async (request) => {
    const body = parse(ChangePasswordRequestSchema, request.body);
    const user = await db.user.findUniqueOrThrow({ where: { id: currentUser(request).id } });
    if (!(await verifyPassword(body.currentPassword, user.passwordHash))) {
      throw new AppError('bad_request', 'the current password is wrong', [{ path: 'currentPassword', message: 'wrong password' }]);
    }
    if (body.newPassword === body.currentPassword) {
      throw new AppError('bad_request', 'choose a password different from the current one', [{ path: 'newPassword', message: 'same as current' }]);
    }
    const wasFirst = user.mustChangePassword;
    await db.user.update({ where: { id: user.id }, data: { passwordHash: await hashPassword(body.newPassword), mustChangePassword: false } });
    // Every other session of this user ends: a changed password must lock out whoever knew the old one.
    await deleteUserSessions(db, user.id, request.sessionToken ?? undefined);
    await audit.record({ actor: user.username, action: 'auth.password-changed', ip: request.ip });
    if (wasFirst) await deps.onFirstPasswordChanged?.();
    return { ok: true };
  });
}
