import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionCookie, signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';

describe('authentication and authorisation (real Postgres + Redis)', () => {
  let d: TestDirector;
  beforeAll(async () => {
    d = await startTestDirector();
  });
  afterAll(async () => {
    await d?.close();
  });

  const inject = (opts: InjectOptions) => d.app.fastify.inject(opts);

  it('rejects unauthenticated calls to protected routes', async () => {
    for (const url of ['/api/auth/me', '/api/users', '/api/transporters']) {
      const res = await inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json().code).toBe('unauthenticated');
    }
  });

  it('refuses a wrong password without saying which part was wrong', async () => {
    const res = await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: 'nope' } });
    expect(res.statusCode).toBe(401);
    expect(res.json().message).toBe('wrong username or password');
    const unknown = await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'ghost', password: 'nope' } });
    expect(unknown.json().message).toBe('wrong username or password');
  });

  it('names each bad field of a malformed body', async () => {
    const res = await inject({ method: 'POST', url: '/api/auth/login', payload: { username: '' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().details.map((x: { path: string }) => x.path).sort()).toEqual(['password', 'username']);
  });

  it('forces the first-login password change before anything else', async () => {
    const login = await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: d.adminPassword } });
    expect(login.statusCode).toBe(200);
    expect(login.json().mustChangePassword).toBe(true);
    const cookie = sessionCookie(login);
    const blocked = await inject({ method: 'GET', url: '/api/users', headers: { cookie } });
    expect(blocked.statusCode).toBe(403);
    expect(blocked.json().code).toBe('password_change_required');
    const short = await inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie }, payload: { currentPassword: d.adminPassword, newPassword: 'short' } });
    expect(short.statusCode).toBe(400);
    const ok = await inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie }, payload: { currentPassword: d.adminPassword, newPassword: 'a-much-better-password' } });
    expect(ok.statusCode).toBe(200);
    const users = await inject({ method: 'GET', url: '/api/users', headers: { cookie } });
    expect(users.statusCode).toBe(200);
    // The old password no longer works, and the password never reached the log.
    const old = await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: d.adminPassword } });
    expect(old.statusCode).toBe(401);
    expect(d.logs.join('')).not.toContain(d.adminPassword);
    expect(d.logs.join('')).not.toContain('a-much-better-password');
  });

  it('lets an admin create a viewer, who cannot manage users', async () => {
    const admin = (await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: 'a-much-better-password' } }));
    const cookie = sessionCookie(admin);
    const created = await inject({ method: 'POST', url: '/api/users', headers: { cookie }, payload: { username: 'val', password: 'viewer-password-1', role: 'viewer' } });
    expect(created.statusCode).toBe(201);
    const v = await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'val', password: 'viewer-password-1' } });
    const vCookie = sessionCookie(v);
    await inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie: vCookie }, payload: { currentPassword: 'viewer-password-1', newPassword: 'viewer-password-2' } });
    const list = await inject({ method: 'GET', url: '/api/users', headers: { cookie: vCookie } });
    expect(list.statusCode).toBe(403);
    expect(list.json().code).toBe('forbidden');
    const me = await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie: vCookie } });
    expect(me.json()).toMatchObject({ username: 'val', role: 'viewer' });
  });

  it('logout ends the session', async () => {
    const cookie = await signInAdmin(d, 'a-much-better-password').catch(async () => {
      const r = await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: 'a-much-better-password' } });
      return sessionCookie(r);
    });
    expect((await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie } })).statusCode).toBe(200);
    await inject({ method: 'POST', url: '/api/auth/logout', headers: { cookie } });
    expect((await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie } })).statusCode).toBe(401);
  });

  it('slows down repeated password guessing', async () => {
    let last = 0;
    for (let i = 0; i < 7; i++) {
      last = (await inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'val', password: `guess-${i}` } })).statusCode;
    }
    expect(last).toBe(429);
  });
});
