/**
 * socket.io lives here and nowhere else in the Director. A connection is
 * accepted only from the Director's own origin (or from no browser at all) and
 * with a valid session cookie, and dropped once that session
 * ends (sign-out, expiry, idle timeout, user deleted, password changed elsewhere): each
 * socket's session is checked again every few seconds. Signed-in clients get
 * `health` pushed every couple of seconds and every Transporter event (run
 * progress, phases, logs); each page keeps the runs it shows.
 */
import type { Server as HttpServer } from 'node:http';
import { Server } from 'socket.io';
import type { ClientToServerEvents, RunEvent, ServerToClientEvents } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { SESSION_COOKIE, findSessionUser, liveSessionTokens } from '../auth/sessions.ts';
import type { HealthMonitor } from '../health/monitor.ts';
import { crossSiteReason } from '../https.ts';

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

export interface RealtimeEvents {
  subscribe(onEvent: (event: RunEvent) => void): Promise<void>;
}

type Io = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, { token?: string }>;

/**
 * Emits a run event under its own name. Every member of the union pairs its name with its payload, which
 * TypeScript cannot follow through one call with a union argument; the cast states exactly that pairing.
 */
function relay(io: Io, e: RunEvent): void {
  (io.emit as (name: RunEvent['type'], event: RunEvent) => boolean)(e.type, e);
}

export function attachRealtime(
  server: HttpServer,
  deps: { db: Db; health: HealthMonitor; log: Logger; events?: RealtimeEvents; intervalMs?: number; sessionCheckMs?: number; sessionIdleMs?: number; publicOrigin?: string | null },
): { close(): Promise<void> } {
  const io: Io = new Server(server, {
    serveClient: false,
    cors: { origin: false },
    // Cross-site WebSocket hijacking: a page elsewhere would otherwise connect with the user's cookie.
    allowRequest: (req, callback) => {
      const crossSite = crossSiteReason(req.headers, deps.publicOrigin);
      if (crossSite) deps.log.warn({ origin: req.headers.origin }, `socket.io connection refused: ${crossSite}`);
      callback(crossSite, crossSite === null);
    },
  });
  io.use((socket, next) => {
    const token = cookieValue(socket.handshake.headers.cookie, SESSION_COOKIE);
    if (!token) return next(new Error('unauthenticated'));
    findSessionUser(deps.db, token, deps.sessionIdleMs, false)
      .then((user) => {
        if (!user || user.mustChangePassword) return next(new Error('unauthenticated'));
        socket.data.token = token;
        next();
      })
      .catch(() => next(new Error('service unavailable')));
  });
  io.on('connection', (socket) => {
    void deps.health.check().then((h) => socket.emit('health', h)).catch(() => undefined);
  });
  // Transporter events (progress, phases, run logs, finished runs) go to every signed-in browser.
  void deps.events?.subscribe((event) => relay(io, event)).catch((err: unknown) => deps.log.warn({ err }, 'event relay failed'));
  const timer = setInterval(() => {
    if (io.engine.clientsCount === 0) return;
    deps.health
      .check()
      .then((h) => io.emit('health', h))
      .catch((err: unknown) => deps.log.warn({ err }, 'health push failed'));
  }, deps.intervalMs ?? 2_000);
  // A socket whose session has ended hears nothing more: it is told why, then disconnected.
  let checking = false;
  const sessions = setInterval(() => {
    if (checking || io.engine.clientsCount === 0) return;
    checking = true;
    const sockets = [...io.sockets.sockets.values()];
    // One query for every socket; when the database does not answer, nobody is dropped.
    void liveSessionTokens(deps.db, sockets.map((s) => String(s.data.token ?? '')), deps.sessionIdleMs)
      .then((live) => {
        for (const socket of sockets) {
          if (live.has(String(socket.data.token ?? ''))) continue;
          socket.emit('session.ended', { reason: 'signed out or session expired' });
          socket.disconnect(true);
        }
      })
      .catch(() => undefined)
      .finally(() => {
        checking = false;
      });
  }, deps.sessionCheckMs ?? 5_000);
  return {
    async close() {
      clearInterval(timer);
      clearInterval(sessions);
      await io.close();
    },
  };
}
