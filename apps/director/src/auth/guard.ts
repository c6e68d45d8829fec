import type { Role } from '@vaultline/contracts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '@vaultline/db';
import { AppError } from '../errors.ts';
import { SESSION_COOKIE, findSessionUser } from './sessions.ts';

export interface AuthUser {
  id: string;
  username: string;
  role: Role;
  mustChangePassword: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthUser | null;
    sessionToken: string | null;
  }
  interface FastifyContextConfig {
    /** No session needed (login, liveness). */
    public?: boolean;
    /** Least role allowed; default viewer (any signed-in user). */
    minRole?: Role;
    /** Reachable while the user must still change the first-login password. */
    allowPendingPasswordChange?: boolean;
  }
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function hasRole(user: AuthUser, min: Role): boolean {
  return RANK[user.role] >= RANK[min];
}

/** Every /api route is authenticated and authorised here unless it opts out with config.public. */
export function registerAuthGuard(app: FastifyInstance, db: Db): void {
  app.decorateRequest('user', null);
  app.decorateRequest('sessionToken', null);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (!request.url.startsWith('/api/')) return;
    const config = request.routeOptions.config;
    const token = request.cookies[SESSION_COOKIE];
    if (token) {
      const user = await findSessionUser(db, token).catch((err: unknown) => {
        if (config.public) return null;
        throw err;
      });
      if (user) {
        request.user = { id: user.id, username: user.username, role: user.role, mustChangePassword: user.mustChangePassword };
        request.sessionToken = token;
      }
    }
    if (config.public) return;
    if (!request.user) throw new AppError('unauthenticated', 'sign in first');
    if (request.user.mustChangePassword && !config.allowPendingPasswordChange) {
      throw new AppError('password_change_required', 'change the first-login password before doing anything else');
    }
    if (!hasRole(request.user, config.minRole ?? 'viewer')) {
      throw new AppError('forbidden', `this needs the ${config.minRole} role`);
    }
  });
}
