/**
 * socket.io lives here and nowhere else in the Director. A connection is
 * accepted only with a valid session cookie; signed-in clients get `health`
 * pushed every couple of seconds (later also run progress, by room).
 */
import type { Server as HttpServer } from 'node:http';
import { Server } from 'socket.io';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { SESSION_COOKIE, findSessionUser } from '../auth/sessions.ts';
import type { HealthMonitor } from '../health/monitor.ts';

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

export interface RealtimeEvents {
  subscribe(onEvent: (event: { type: string; [k: string]: unknown }) => void): Promise<void>;
}

export function attachRealtime(server: HttpServer, deps: { db: Db; health: HealthMonitor; log: Logger; events?: RealtimeEvents; intervalMs?: number }): { close(): Promise<void> } {
  const io = new Server(server, { serveClient: false, cors: { origin: false } });
  io.use((socket, next) => {
    const token = cookieValue(socket.handshake.headers.cookie, SESSION_COOKIE);
    if (!token) return next(new Error('unauthenticated'));
    findSessionUser(deps.db, token)
      .then((user) => (user && !user.mustChangePassword ? next() : next(new Error('unauthenticated'))))
      .catch(() => next(new Error('service unavailable')));
  });
  io.on('connection', (socket) => {
    void deps.health.check().then((h) => socket.emit('health', h)).catch(() => undefined);
  });
  // Transporter events (progress, phases, run logs, finished runs) go to every signed-in browser.
  void deps.events?.subscribe((event) => io.emit(event.type, event)).catch((err: unknown) => deps.log.warn({ err }, 'event relay failed'));
  const timer = setInterval(() => {
    if (io.engine.clientsCount === 0) return;
    deps.health
      .check()
      .then((h) => io.emit('health', h))
      .catch((err: unknown) => deps.log.warn({ err }, 'health push failed'));
  }, deps.intervalMs ?? 2_000);
  return {
    async close() {
      clearInterval(timer);
      await io.close();
    },
  };
}
