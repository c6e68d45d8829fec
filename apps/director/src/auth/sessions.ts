import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '@vaultline/db';

/** __Host-: browsers keep it only if set Secure, with Path=/ and no Domain, by this very host. */
export const SESSION_COOKIE = '__Host-vl_session';
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** Only a hash of the session token is stored, so a database dump cannot be replayed. */
const digest = (token: string) => createHash('sha256').update(token).digest('hex');

export async function createSession(db: Db, userId: string): Promise<{ token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
  await db.session.create({ data: { id: digest(token), userId, expiresAt } });
  return { token, expiresAt };
}

export async function findSessionUser(db: Db, token: string) {
  const session = await db.session.findUnique({ where: { id: digest(token) }, include: { user: true } });
  if (!session) return null;
  if (session.expiresAt.getTime() < Date.now()) {
    await db.session.delete({ where: { id: session.id } }).catch(() => undefined);
    return null;
  }
  return session.user;
}

/** Of these tokens, the ones whose session is still valid for a signed-in user (not expired, password not pending): one query. */
export async function liveSessionTokens(db: Db, tokens: string[]): Promise<Set<string>> {
  const byDigest = new Map(tokens.map((t) => [digest(t), t]));
  const rows = await db.session.findMany({
    where: { id: { in: [...byDigest.keys()] }, expiresAt: { gte: new Date() }, user: { mustChangePassword: false } },
    select: { id: true },
  });
  return new Set(rows.map((r) => byDigest.get(r.id)!));
}

export async function deleteSession(db: Db, token: string): Promise<void> {
  await db.session.deleteMany({ where: { id: digest(token) } });
}

export async function deleteUserSessions(db: Db, userId: string, exceptToken?: string): Promise<void> {
  await db.session.deleteMany({
    where: { userId, ...(exceptToken ? { NOT: { id: digest(exceptToken) } } : {}) },
  });
}
