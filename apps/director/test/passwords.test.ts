import type { InjectOptions } from 'fastify';
import { JobOptionsSchema } from '@vaultline/contracts';
import { describe, expect, it } from 'vitest';
import { PASSWORD_COST, hashPassword, needsRehash, verifyPassword } from '../src/auth/passwords.ts';
import { base32Decode, base32Encode, hotp, matchTotp, totpCode, totpUri } from '../src/auth/totp.ts';
import { LAST_SEEN_RESOLUTION_MS, SESSION_COOKIE, SESSION_IDLE_MS } from '../src/auth/sessions.ts';
import { sessionCookie, signedInDirector, signInAs, TEST_PASSWORD_COST } from './helpers.ts';

describe('password hashes', () => {
  it('hash with scrypt N = 2^17, r = 8 by default, stored with the parameters, on the thread pool', async () => {
    expect(PASSWORD_COST).toEqual({ N: 131072, r: 8, p: 1 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const stored = await hashPassword('correct horse');
    clearInterval(timer);
    expect(stored).toMatch(/^scrypt\$131072\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    // The event loop kept turning while the hash was computed.
    expect(ticks).toBeGreaterThan(0);
    expect(await verifyPassword('correct horse', stored)).toBe(true);
    expect(await verifyPassword('correct horsf', stored)).toBe(false);
    expect(needsRehash(stored)).toBe(false);
  }, 60_000);

  it('verify older, weaker hashes and say they need hashing again', async () => {
    const old = await hashPassword('pw', { N: 1 << 14, r: 8, p: 1 });
    expect(await verifyPassword('pw', old)).toBe(true);
    expect(needsRehash(old)).toBe(true);
    expect(needsRehash(old, { N: 1 << 14, r: 8, p: 1 })).toBe(false);
    expect(needsRehash('bcrypt$whatever')).toBe(true);
    // A stored hash cannot make the Director allocate gigabytes.
    expect(await verifyPassword('pw', old.replace('$16384$', '$1073741824$'))).toBe(false);
  });
});

describe('TOTP (RFC 6238)', () => {
  // RFC 6238 appendix B: the SHA-1 key is the ASCII "12345678901234567890"; codes are the last 6 of its 8 digits.
  const rfcKey = base32Encode(Buffer.from('12345678901234567890'));

  it('matches the RFC test vectors', () => {
    expect(rfcKey).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    expect(base32Decode(rfcKey).toString()).toBe('12345678901234567890');
    expect(totpCode(rfcKey, 59_000)).toBe('287082');
    expect(totpCode(rfcKey, 1_111_111_109_000)).toBe('081804');
    expect(totpCode(rfcKey, 1_234_567_890_000)).toBe('005924');
    expect(totpCode(rfcKey, 2_000_000_000_000)).toBe('279037');
    // RFC 4226 appendix D, counter 0 and 9.
    expect(hotp(Buffer.from('12345678901234567890'), 0)).toBe('755224');
    expect(hotp(Buffer.from('12345678901234567890'), 9)).toBe('520489');
  });

  it('accepts one step of drift either way, and a code only once', () => {
    const at = 1_234_567_890_000;
    const step = Math.floor(at / 30_000);
    expect(matchTotp(rfcKey, totpCode(rfcKey, at - 30_000), null, at)).toBe(step - 1);
    expect(matchTotp(rfcKey, totpCode(rfcKey, at + 30_000), null, at)).toBe(step + 1);
    expect(matchTotp(rfcKey, totpCode(rfcKey, at - 60_000), null, at)).toBeNull();
    expect(matchTotp(rfcKey, totpCode(rfcKey, at), step, at)).toBeNull();
    expect(matchTotp(rfcKey, '12345', null, at)).toBeNull();
    expect(totpUri(rfcKey, 'admin')).toBe(`otpauth://totp/Vaultline:admin?secret=${rfcKey}&issuer=Vaultline&algorithm=SHA1&digits=6&period=30`);
  });
});

describe('sign-in, sessions, rate limits, TOTP and re-authentication (real Postgres + Redis)', () => {
  const ctx = signedInDirector();
  const inject = (opts: InjectOptions) => ctx.d.app.fastify.inject(opts);
  const login = (username: string, password: string) => inject({ method: 'POST', url: '/api/auth/login', payload: { username, password } });
  const ADMIN_PASSWORD = 'correct-horse-battery';

  it('rehashes a weaker stored hash at sign-in, transparently', async () => {
    const { db } = ctx.d;
    const cookie = await signInAs(ctx.d, ctx.cookie, 'rehash', 'viewer');
    expect(cookie).toBeTruthy();
    const weak = await hashPassword('rehash-chosen-password-2', { N: 1 << 8, r: 4, p: 1 });
    await db.user.update({ where: { username: 'rehash' }, data: { passwordHash: weak } });
    const res = await login('rehash', 'rehash-chosen-password-2');
    expect(res.statusCode).toBe(200);
    const stored = (await db.user.findUniqueOrThrow({ where: { username: 'rehash' } })).passwordHash;
    expect(stored).not.toBe(weak);
    expect(stored.startsWith(`scrypt$${TEST_PASSWORD_COST.N}$${TEST_PASSWORD_COST.r}$1$`)).toBe(true);
    expect((await login('rehash', 'rehash-chosen-password-2')).statusCode).toBe(200);
  });

  it('ends a session idle for longer than the idle timeout, and writes last-seen at most once a minute', async () => {
    const { db } = ctx.d;
    const cookie = sessionCookie(await login('rehash', 'rehash-chosen-password-2'));
    const session = async () => (await db.session.findMany({ where: { user: { username: 'rehash' } }, orderBy: { createdAt: 'desc' }, take: 1 }))[0]!;
    const first = await session();
    // Recent: a request does not write.
    await db.session.update({ where: { id: first.id }, data: { lastSeenAt: new Date(Date.now() - LAST_SEEN_RESOLUTION_MS / 2) } });
    const recent = (await session()).lastSeenAt;
    expect((await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie } })).statusCode).toBe(200);
    expect((await session()).lastSeenAt).toEqual(recent);
    // Over a minute ago: moved to now.
    await db.session.update({ where: { id: first.id }, data: { lastSeenAt: new Date(Date.now() - 5 * 60_000) } });
    expect((await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie } })).statusCode).toBe(200);
    expect(Date.now() - (await session()).lastSeenAt.getTime()).toBeLessThan(10_000);
    // The console's background polls do not count as activity.
    const old = new Date(Date.now() - 5 * 60_000);
    await db.session.update({ where: { id: first.id }, data: { lastSeenAt: old } });
    expect((await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie, 'x-vaultline-background': '1' } })).statusCode).toBe(200);
    expect((await session()).lastSeenAt).toEqual(old);
    // Idle too long: gone, though the absolute expiry is hours away.
    await db.session.update({ where: { id: first.id }, data: { lastSeenAt: new Date(Date.now() - SESSION_IDLE_MS - 1000) } });
    const me = await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie } });
    expect(me.statusCode).toBe(401);
    expect(await db.session.findUnique({ where: { id: first.id } })).toBeNull();
  });

  it('refuses an account after 5 failures in 15 minutes with 429 and Retry-After, also for the right password, and keeps others working', async () => {
    await signInAs(ctx.d, ctx.cookie, 'guessed', 'viewer');
    for (let i = 0; i < 5; i++) expect((await login('Guessed', `guess-${i}`)).statusCode).toBe(401);
    const refused = await login('guessed', 'guessed-chosen-password-2');
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ code: 'rate_limited' });
    expect(refused.json().message).toMatch(/too many failed attempts for this account; try again in \d+ s/);
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(14 * 60);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect((await login('rehash', 'rehash-chosen-password-2')).statusCode).toBe(200);
    // The oldest failure ageing out frees an attempt.
    await ctx.d.db.$executeRaw`UPDATE auth_failures SET at = now() - interval '16 minutes' WHERE account = 'guessed' AND at = (SELECT min(at) FROM auth_failures WHERE account = 'guessed')`;
    expect((await login('guessed', 'guessed-chosen-password-2')).statusCode).toBe(200);
    expect(await ctx.d.db.authFailure.count({ where: { account: 'guessed' } })).toBe(0);
  });

  it('rate limits change-password per account (its failures count with sign-in ones)', async () => {
    const cookie = await signInAs(ctx.d, ctx.cookie, 'changer', 'viewer');
    const change = (currentPassword: string) =>
      inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie }, payload: { currentPassword, newPassword: 'changer-new-password-3' } });
    for (let i = 0; i < 4; i++) expect((await change(`wrong-${i}`)).statusCode).toBe(400);
    expect((await login('changer', 'wrong-again')).statusCode).toBe(401);
    const refused = await change('changer-chosen-password-2');
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBeDefined();
  });

  it('refuses everyone for a while after 30 failures in a minute across accounts', async () => {
    const { db } = ctx.d;
    await db.authFailure.createMany({ data: Array.from({ length: 30 }, (_, i) => ({ account: `sprayed-${i}` })) });
    const refused = await login('rehash', 'rehash-chosen-password-2');
    expect(refused.statusCode).toBe(429);
    expect(refused.json().message).toMatch(/too many failed sign-in attempts on this appliance/);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    await db.$executeRaw`UPDATE auth_failures SET at = now() - interval '2 minutes' WHERE account LIKE 'sprayed-%'`;
    expect((await login('rehash', 'rehash-chosen-password-2')).statusCode).toBe(200);
    await db.authFailure.deleteMany({ where: { account: { startsWith: 'sprayed-' } } });
  });

  describe('TOTP second factor', () => {
    let secret = '';
    let cookie = '';
    // The code of the current 30 s step (or the next); a code works once, so tests forget the last used step.
    const code = (steps = 0) => totpCode(secret, Date.now() + steps * 30_000);
    const forgetUsedCodes = () => ctx.d.db.user.update({ where: { username: 'totp-admin' }, data: { totpLastStep: null } });

    it('is only for admins', async () => {
      const op = await signInAs(ctx.d, ctx.cookie, 'totp-op', 'operator');
      expect((await inject({ method: 'POST', url: '/api/auth/totp/enroll', headers: { cookie: op } })).statusCode).toBe(403);
    });

    it('enrols: the secret is shown once and sealed at rest; a wrong code does not turn it on', async () => {
      cookie = await signInAs(ctx.d, ctx.cookie, 'totp-admin', 'admin');
      const enrolled = await inject({ method: 'POST', url: '/api/auth/totp/enroll', headers: { cookie } });
      expect(enrolled.statusCode).toBe(200);
      ({ secret } = enrolled.json() as { secret: string });
      expect(secret).toMatch(/^[A-Z2-7]{32}$/);
      expect(enrolled.json().uri).toBe(totpUri(secret, 'totp-admin'));
      const row = await ctx.d.db.user.findUniqueOrThrow({ where: { username: 'totp-admin' } });
      expect(row.totpSecretSealed).toMatch(/^v1\./);
      expect(row.totpSecretSealed).not.toContain(secret);
      expect(row.totpEnabledAt).toBeNull();
      // Not on yet: signing in needs no code.
      expect((await login('totp-admin', 'totp-admin-chosen-password-2')).json()).toMatchObject({ username: 'totp-admin', totpEnabled: false });
      const wrong = await inject({ method: 'POST', url: '/api/auth/totp/confirm', headers: { cookie }, payload: { code: String((Number(code()) + 1) % 1e6).padStart(6, '0') } });
      expect(wrong.statusCode).toBe(400);
      const ok = await inject({ method: 'POST', url: '/api/auth/totp/confirm', headers: { cookie }, payload: { code: code() } });
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toMatchObject({ totpEnabled: true });
      const users = (await inject({ method: 'GET', url: '/api/users', headers: { cookie: ctx.cookie } })).json() as { username: string; totpEnabled: boolean }[];
      expect(users.filter((u) => u.totpEnabled).map((u) => u.username)).toEqual(['totp-admin']);
      expect((await inject({ method: 'POST', url: '/api/auth/totp/enroll', headers: { cookie } })).statusCode).toBe(409);
    });

    it('sign-in asks for the code: no session before it, each code once, wrong codes rate limited', async () => {
      await forgetUsedCodes();
      const first = await login('totp-admin', 'totp-admin-chosen-password-2');
      expect(first.statusCode).toBe(200);
      expect(first.cookies.find((c) => c.name === SESSION_COOKIE)).toBeUndefined();
      const { secondFactor, challenge } = first.json() as { secondFactor: string; challenge: string };
      expect(secondFactor).toBe('totp');
      const step = (c: string, ch = challenge) => inject({ method: 'POST', url: '/api/auth/login/totp', payload: { challenge: ch, code: c } });
      const forged = await step(code(), 'v1.AAAA.BBBB.CCCC');
      expect(forged.statusCode).toBe(401);
      const used = code();
      const ok = await step(used);
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toMatchObject({ username: 'totp-admin', totpEnabled: true });
      const session = sessionCookie(ok);
      expect((await inject({ method: 'GET', url: '/api/auth/me', headers: { cookie: session } })).statusCode).toBe(200);
      // The same code again (replay): refused.
      const replay = await step(used);
      expect(replay.statusCode).toBe(401);
      expect(replay.json().message).toBe('wrong or already used code');
      for (let i = 0; i < 4; i++) expect((await step('000000')).statusCode).toBe(401);
      expect((await step(code(1))).statusCode).toBe(429);
      await ctx.d.db.authFailure.deleteMany({ where: { account: 'totp-admin' } });
    });

    it('turning it off needs the password and a code', async () => {
      await forgetUsedCodes();
      const off = (payload: object) => inject({ method: 'POST', url: '/api/auth/totp/disable', headers: { cookie }, payload });
      const noPassword = await off({ currentPassword: 'wrong-password', code: code() });
      expect(noPassword.statusCode).toBe(403);
      expect(noPassword.json().code).toBe('reauth_failed');
      const noCode = await off({ currentPassword: 'totp-admin-chosen-password-2', code: '000000' });
      expect(noCode.statusCode).toBe(403);
      const ok = await off({ currentPassword: 'totp-admin-chosen-password-2', code: code() });
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toMatchObject({ totpEnabled: false });
      expect((await login('totp-admin', 'totp-admin-chosen-password-2')).json()).toMatchObject({ username: 'totp-admin' });
      const audit = await ctx.d.db.auditEvent.findMany({ where: { actor: 'totp-admin' }, orderBy: { id: 'asc' } });
      expect(audit.map((a) => a.action)).toEqual(
        expect.arrayContaining(['auth.totp-enroll', 'auth.totp-enabled', 'auth.totp-disable.refused', 'auth.totp-disabled']),
      );
      await ctx.d.db.authFailure.deleteMany({ where: { account: 'totp-admin' } });
    });
  });

  describe('destructive actions need the current password again', () => {
    const audit = (action: string) => ctx.d.db.auditEvent.findMany({ where: { action }, orderBy: { id: 'asc' } });

    it('deleting a user: none → 403 reauth_required, wrong → 403 reauth_failed (counted), right → done; all audited', async () => {
      await signInAs(ctx.d, ctx.cookie, 'doomed', 'viewer');
      const { id } = await ctx.d.db.user.findUniqueOrThrow({ where: { username: 'doomed' } });
      const del = (payload?: object) => inject({ method: 'DELETE', url: `/api/users/${id}`, headers: { cookie: ctx.cookie }, ...(payload ? { payload } : {}) });
      const none = await del();
      expect(none.statusCode).toBe(403);
      expect(none.json()).toMatchObject({ code: 'reauth_required' });
      expect(none.json().message).toMatch(/current password/);
      const wrong = await del({ currentPassword: 'not-it' });
      expect(wrong.statusCode).toBe(403);
      expect(wrong.json().code).toBe('reauth_failed');
      expect(await ctx.d.db.authFailure.count({ where: { account: 'admin' } })).toBe(1);
      expect(await ctx.d.db.user.findUnique({ where: { id } })).not.toBeNull();
      const ok = await del({ currentPassword: ADMIN_PASSWORD });
      expect(ok.statusCode).toBe(200);
      expect(await ctx.d.db.user.findUnique({ where: { id } })).toBeNull();
      expect((await audit('user.delete.refused')).map((a) => (a.detail as { reason: string }).reason)).toEqual(['no password', 'wrong password']);
      expect((await audit('user.delete')).map((a) => a.subject)).toEqual(['doomed']);
      expect(JSON.stringify((await ctx.d.db.auditEvent.findMany()).map((a) => [a.subject, a.detail]))).not.toContain(ADMIN_PASSWORD);
    });

    it('wrong passwords for re-authentication hit the rate limit like sign-ins', async () => {
      await signInAs(ctx.d, ctx.cookie, 'doomed2', 'viewer');
      const { id } = await ctx.d.db.user.findUniqueOrThrow({ where: { username: 'doomed2' } });
      const del = (currentPassword: string) => inject({ method: 'DELETE', url: `/api/users/${id}`, headers: { cookie: ctx.cookie }, payload: { currentPassword } });
      for (let i = 0; i < 5; i++) expect((await del(`nope-${i}`)).statusCode).toBe(403);
      const limited = await del(ADMIN_PASSWORD);
      expect(limited.statusCode).toBe(429);
      expect((await audit('user.delete.refused')).at(-1)?.detail).toEqual({ reason: 'rate limited' });
      await ctx.d.db.authFailure.deleteMany({ where: { account: 'admin' } });
      expect((await del(ADMIN_PASSWORD)).statusCode).toBe(200);
    });

    it('deleting a vCenter', async () => {
      const vc = await ctx.d.db.vCenter.create({ data: { name: 'vc-doomed', url: 'https://vc.invalid', username: 'u', passwordSealed: 'x' } });
      const del = (payload?: object) => inject({ method: 'DELETE', url: `/api/vcenters/${vc.id}`, headers: { cookie: ctx.cookie }, ...(payload ? { payload } : {}) });
      expect((await del()).json().code).toBe('reauth_required');
      expect((await del({ currentPassword: ADMIN_PASSWORD })).statusCode).toBe(200);
      expect((await audit('vcenter.delete.refused')).map((a) => a.subject)).toEqual(['vc-doomed']);
    });

    it('lowering a job\'s immutability or keeping fewer restore points (raising them or other changes need nothing)', async () => {
      const { db } = ctx.d;
      const vc = await db.vCenter.create({ data: { name: 'vc-imm', url: 'https://vc.invalid', username: 'u', passwordSealed: 'x' } });
      const repo = await db.repository.create({ data: { name: 'imm-repo', location: '/srv/imm' } });
      // Made in the database: the API would ask this (unreachable) vCenter for the job's VM first.
      const row = await db.backupJob.create({ data: { name: 'imm', vcenterId: vc.id, repositoryId: repo.id, sources: [{ moref: 'vm-1', name: 'a' }], options: JobOptionsSchema.parse({ retention: { immutableDays: 7 } }) } });
      const created = await inject({ method: 'GET', url: `/api/jobs/${row.id}`, headers: { cookie: ctx.cookie } });
      expect(created.statusCode).toBe(200);
      const job = created.json() as { id: string; options: { retention: Record<string, number> } };
      const patch = (payload: object) => inject({ method: 'PATCH', url: `/api/jobs/${job.id}`, headers: { cookie: ctx.cookie }, payload });
      const withDays = (immutableDays: number) => ({ ...job.options, retention: { ...job.options.retention, immutableDays } });
      expect((await patch({ name: 'imm2' })).statusCode).toBe(200);
      expect((await patch({ options: withDays(14) })).statusCode).toBe(200);
      const refused = await patch({ options: withDays(0) });
      expect(refused.statusCode).toBe(403);
      expect(refused.json().code).toBe('reauth_required');
      expect((await patch({ options: withDays(0), currentPassword: 'nope' })).statusCode).toBe(403);
      await db.authFailure.deleteMany({ where: { account: 'admin' } });
      const ok = await patch({ options: withDays(0), currentPassword: ADMIN_PASSWORD });
      expect(ok.statusCode).toBe(200);
      expect(ok.json().options.retention.immutableDays).toBe(0);
      expect((await audit('job.retention-lowered')).map((a) => a.detail)).toEqual([{ immutableDays: { from: 14, to: 0 } }]);
      expect((await audit('job.update')).at(-1)?.detail).toEqual({ fields: ['options'] });
      expect((await patch({ currentPassword: ADMIN_PASSWORD })).statusCode).toBe(400);
      // Keeping fewer points deletes some at the next prune: the same confirmation; keeping more needs none.
      const withKeep = (keep: Record<string, number>) => ({ ...ok.json().options, retention: { ...ok.json().options.retention, ...keep } });
      expect((await patch({ options: withKeep({ keepLast: 30, keepWeekly: 4 }) })).statusCode).toBe(200);
      const fewer = await patch({ options: withKeep({ keepLast: 3, keepWeekly: 4 }) });
      expect(fewer.statusCode).toBe(403);
      expect(fewer.json().code).toBe('reauth_required');
      expect((await db.backupJob.findUniqueOrThrow({ where: { id: job.id } })).options).toMatchObject({ retention: { keepLast: 30, keepWeekly: 4 } });
      expect((await patch({ options: withKeep({ keepLast: 3, keepWeekly: 0 }), currentPassword: ADMIN_PASSWORD })).statusCode).toBe(200);
      expect((await audit('job.retention-lowered')).at(-1)?.detail).toEqual({ keepLast: { from: 30, to: 3 }, keepWeekly: { from: 4, to: 0 } });
    });
  });
});
