import { io as connect, type Socket } from 'socket.io-client';
import type { RunEventOf } from '@vaultline/contracts';
import { EventBus } from '@vaultline/queue';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachRealtime } from '../src/realtime/socket.ts';
import { SESSION_IDLE_MS } from '../src/auth/sessions.ts';
import { REDIS_URL, sessionCookie, signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';

/** A disk.progress event as a Transporter publishes it. */
const progress = (runId: string, bytesRead: number): RunEventOf<'disk.progress'> => ({
  type: 'disk.progress',
  runId,
  runVmId: 'v-1',
  deviceKey: 2000,
  phase: 'reading',
  transport: 'nbdssl',
  bytesRead,
  bytesWritten: 0,
  bytesSkipped: 0,
  bytesTotal: 100,
  bytesVerified: 0,
  verifyTotal: 0,
  bytesPerSecond: 1,
  peakBytesPerSecond: 1,
  etaSeconds: null,
  bottleneck: { source: 1, processing: 0, target: 0 },
});

describe('live events over socket.io (real Redis relay)', () => {
  let d: TestDirector;
  let url: string;
  let cookie: string;
  let bus: EventBus;
  let realtime: { close(): Promise<void> };
  const sockets: Socket[] = [];
  beforeAll(async () => {
    d = await startTestDirector();
    cookie = await signInAdmin(d);
    bus = new EventBus(REDIS_URL, d.database.name);
    realtime = attachRealtime(d.app.fastify.server, { db: d.db, health: d.app.health, log: memoryLogger('realtime').log, events: new EventBus(REDIS_URL, d.database.name), intervalMs: 200, sessionCheckMs: 200 });
    url = await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await realtime?.close();
    await bus?.close();
    await d?.close();
  });

  const open = (headers: Record<string, string>) => {
    const s = connect(url, { transports: ['websocket'], extraHeaders: headers, reconnection: false, ca: d.tls.cert });
    sockets.push(s);
    return s;
  };

  it('refuses a connection without a session', async () => {
    const s = open({});
    const err = await new Promise<Error>((resolve) => s.once('connect_error', resolve));
    expect(err.message).toBe('unauthenticated');
  });

  it('refuses a connection from another origin, even with a valid session, and takes one from its own', async () => {
    const foreign: Record<string, string>[] = [{ origin: 'https://evil.example' }, { origin: url.replace('127.0.0.1', 'localhost') }, { 'sec-fetch-site': 'cross-site' }];
    for (const headers of foreign) {
      const s = open({ cookie, ...headers });
      const err = await new Promise<Error>((resolve) => s.once('connect_error', resolve));
      expect(err.message, JSON.stringify(headers)).toBe('websocket error');
      expect(s.connected).toBe(false);
    }
    const own = open({ cookie, origin: url, 'sec-fetch-site': 'same-origin' });
    const health = await new Promise<{ postgres: { ok: boolean } }>((resolve) => own.once('health', resolve));
    expect(health.postgres.ok).toBe(true);
  });

  it('pushes health and relays Transporter events to signed-in browsers', async () => {
    const s = open({ cookie });
    const health = await new Promise<{ postgres: { ok: boolean } }>((resolve) => s.once('health', resolve));
    expect(health.postgres.ok).toBe(true);
    const got = new Promise<{ runId: string; bytesRead: number }>((resolve) => s.once('disk.progress', resolve));
    // The relay subscribes asynchronously; publish until it is heard.
    const timer = setInterval(() => void bus.publish(progress('r-1', 42)), 50);
    try {
      expect(await got).toMatchObject({ runId: 'r-1', bytesRead: 42 });
    } finally {
      clearInterval(timer);
    }
  });

  it('drops a socket once its session ends (sign-out), telling it why; other sessions keep theirs', async () => {
    const login = await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: 'correct-horse-battery' } });
    expect(login.statusCode, login.body).toBe(200);
    const second = sessionCookie(login);
    const kept = open({ cookie });
    const leaving = open({ cookie: second });
    await Promise.all([kept, leaving].map((s) => new Promise((resolve) => s.once('health', resolve))));
    const ended = new Promise<{ reason: string }>((resolve) => leaving.once('session.ended', resolve));
    const gone = new Promise<string>((resolve) => leaving.once('disconnect', resolve));
    expect((await d.app.fastify.inject({ method: 'POST', url: '/api/auth/logout', headers: { cookie: second } })).statusCode).toBe(200);
    expect(await ended).toEqual({ reason: 'signed out or session expired' });
    expect(await gone).toBe('io server disconnect');
    // The other session is still connected and still hears events.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(kept.connected).toBe(true);
    const got = new Promise<{ runId: string }>((resolve) => kept.once('disk.progress', resolve));
    const timer = setInterval(() => void bus.publish(progress('r-2', 1)), 50);
    try {
      expect(await got).toMatchObject({ runId: 'r-2' });
    } finally {
      clearInterval(timer);
    }
  });

  it('drops a socket whose session sat idle past the idle timeout: an open socket is not activity', async () => {
    const login = await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: 'correct-horse-battery' } });
    const idle = open({ cookie: sessionCookie(login) });
    await new Promise((resolve) => idle.once('health', resolve));
    const ended = new Promise<{ reason: string }>((resolve) => idle.once('session.ended', resolve));
    const newest = await d.db.session.findFirstOrThrow({ orderBy: { createdAt: 'desc' } });
    await d.db.session.update({ where: { id: newest.id }, data: { lastSeenAt: new Date(Date.now() - SESSION_IDLE_MS - 1000) } });
    expect(await ended).toEqual({ reason: 'signed out or session expired' });
  });
});
