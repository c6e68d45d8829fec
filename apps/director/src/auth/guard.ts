import type { Role } from '@vaultline/contracts';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, RouteOptions } from 'fastify';
import type { Db } from '@vaultline/db';
import { AppError } from '../errors.ts';
import { crossSiteReason } from '../https.ts';
import { SESSION_COOKIE, findSessionUser } from './sessions.ts';
import { checkedSerializerFor, validatorFor } from '../schemas.ts';

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
    /** Least role allowed. Every API route declares this or `public`; one that declares neither stops the Director at start. */
    minRole?: Role;
    /** Reachable while the user must still change the first-login password. */
    allowPendingPasswordChange?: boolean;
  }
}

/** Sent by the console on requests nobody asked for just now (polling): they do not count as activity. */
export const BACKGROUND_HEADER = 'x-vaultline-background';

/** Route options for the three roles: `app.get('/jobs', viewer, handler)`. */
export const viewer = { config: { minRole: 'viewer' } } as const;
export const operator = { config: { minRole: 'operator' } } as const;
export const admin = { config: { minRole: 'admin' } } as const;

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
/** Methods that change nothing; every other one is checked for a cross-site origin. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function hasRole(user: AuthUser, min: Role): boolean {
  return RANK[user.role] >= RANK[min];
}

/** The signed-in user of a request; a handler that somehow runs without one fails closed. */
export function currentUser(request: FastifyRequest): AuthUser {
  if (!request.user) throw new AppError('unauthenticated', 'sign in first');
  return request.user;
}

/** One API route as registered, with the access it declared. */
export interface ApiRoute {
  method: string;
  url: string;
  access: Role | 'public';
  allowPendingPasswordChange: boolean;
  /** What it takes and answers (zod schemas, see openapi.ts), for /api/docs. */
  schema?: RouteOptions['schema'];
}

/** Throws at registration (so the Director does not start) when a route declares neither a role nor `public`. */
export function requireDeclaredAccess(route: RouteOptions): void {
  const config = (route.config ?? {}) as { public?: boolean; minRole?: Role };
  if (config.public === true) return;
  if (config.minRole && config.minRole in RANK) return;
  const methods = Array.isArray(route.method) ? route.method.join(',') : route.method;
  throw new Error(`API route ${methods} ${route.url} declares no access: give it config.minRole (viewer, operator or admin) or config.public`);
}

/**
 * Registers `routes` under /api inside one encapsulated context whose hooks run
 * for the route the router matched, never by looking at the raw URL (which may
 * be percent-encoded, doubled or dotted). Deny by default: a route must declare
 * its role, and the check refuses unless the signed-in user has it. A request
 * that changes state is refused first when a browser says it came from another
 * site (CSRF), whatever its cookie.
 */
export function apiPlugin(db: Db, routes: FastifyPluginAsync, table: ApiRoute[] = [], opts: { sessionIdleMs?: number; publicOrigin?: string | null; checkAnswers?: boolean } = {}): FastifyPluginAsync {
  return async (api: FastifyInstance) => {
    api.addHook('onRoute', (route) => {
      requireDeclaredAccess(route);
      const config = (route.config ?? {}) as { public?: boolean; minRole?: Role; allowPendingPasswordChange?: boolean };
      for (const method of [route.method].flat()) {
        table.push({ method, url: route.url, access: config.public === true ? 'public' : config.minRole!, allowPendingPasswordChange: config.allowPendingPasswordChange === true, schema: route.schema });
      }
    });
    // A route's schema (zod, from @vaultline/contracts) is what Fastify checks its request against, before
    // the handler runs (after the access check), and what /api/docs documents; see schemas.ts.
    api.setValidatorCompiler(validatorFor);
    api.setSerializerCompiler(opts.checkAnswers ? checkedSerializerFor : () => (data) => JSON.stringify(data));
    api.addHook('onRequest', async (request: FastifyRequest) => {
      if (!SAFE_METHODS.has(request.method)) {
        const crossSite = crossSiteReason(request.headers, opts.publicOrigin ?? null);
        if (crossSite) throw new AppError('forbidden', `${crossSite}; the Director only takes changes from its own console`);
      }
      const config = request.routeOptions.config;
      request.user = null;
      request.sessionToken = null;
      const token = request.cookies[SESSION_COOKIE];
      if (token) {
        // The console marks polls made while nobody touches it, so they do not keep an idle session alive.
        const touch = request.headers[BACKGROUND_HEADER] === undefined;
        const user = await findSessionUser(db, token, opts.sessionIdleMs, touch).catch((err: unknown) => {
          if (config.public === true) return null;
          throw err;
        });
        if (user) {
          request.user = { id: user.id, username: user.username, role: user.role, mustChangePassword: user.mustChangePassword };
          request.sessionToken = token;
        }
      }
      if (config.public === true) return;
      const min = config.minRole;
      if (!min) throw new AppError('forbidden', 'this route declares no access');
      if (!request.user) throw new AppError('unauthenticated', 'sign in first');
      if (request.user.mustChangePassword && config.allowPendingPasswordChange !== true) {
        throw new AppError('password_change_required', 'change the first-login password before doing anything else');
      }
      if (!hasRole(request.user, min)) throw new AppError('forbidden', `this needs the ${min} role`);
    });
    // PostgreSQL text cannot hold NUL; refuse it in any input before a handler stores or looks it up.
    api.addHook('preHandler', async (request) => {
      for (const [part, value] of [['path', request.params], ['query', request.query], ['body', request.body]] as const) {
        if (containsNul(value)) throw new AppError('bad_request', `the request ${part} contains a NUL character`);
      }
    });
    await api.register(routes);
  };
}

function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 32 || value === null || typeof value !== 'object') return false;
  if (Buffer.isBuffer(value)) return false;
  for (const [k, v] of Object.entries(value)) if (k.includes('\u0000') || containsNul(v, depth + 1)) return true;
  return false;
}

/** Request decorations shared by every context (the API plugin fills them in). */
export function decorateAuth(app: FastifyInstance): void {
  app.decorateRequest('user', null);
  app.decorateRequest('sessionToken', null);
}
