import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '@vaultline/db';

/** __Host-: browsers keep it only if set Secure, with Path=/ and no Domain, by this very host. */
export const SESSION_COOKIE = '__Host-vl_session';
/** Absolute lifetime of a session, however active. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Default idle timeout (VAULTLINE_SESSION_IDLE_MINUTES). */
export const SESSION_IDLE_MS = 30 * 60 * 1000;
/** last_seen_at is written at most this often per session, not on every request. */
export const LAST_SEEN_RESOLUTION_MS = 60_000;

/** Only a hash of the session token is stored, so a database dump cannot be replayed. */
const digest = (token: string) => createHash('sha256').update(token).digest('hex');

export async function createSession(db: Db, userId: string): Promise<{ token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
  await db.session.create({ data: { id: digest(token), userId, expiresAt } });
  return { token, expiresAt };
}

/**
 * The user of a valid session, or null once it expired or sat idle for longer than idleMs.
 * `touch` (a request the user made) moves last-seen forward, at most once a minute;
 * background checks (live events) pass false so an open socket alone does not keep a session alive.
 */
export async function findSessionUser(db: Db, token: string, idleMs: number = SESSION_IDLE_MS, touch = true) {
  const session = await db.session.findUnique({ where: { id: digest(token) }, include: { user: true } });
  if (!session) return null;
  const now = Date.now();
  if (session.expiresAt.getTime() < now || session.lastSeenAt.getTime() + idleMs < now) {
    await db.session.delete({ where: { id: session.id } }).catch(() => undefined);
    return null;
  }
  if (touch && now - session.lastSeenAt.getTime() >= LAST_SEEN_RESOLUTION_MS) {
    await db.session.updateMany({ where: { id: session.id }, data: { lastSeenAt: new Date(now) } });
  }
  return session.user;
}

/** Of these tokens, the ones whose session is still valid for a signed-in user (not expired or idle, password not pending): one query. */
export async function liveSessionTokens(db: Db, tokens: string[], idleMs: number = SESSION_IDLE_MS): Promise<Set<string>> {
  const byDigest = new Map(tokens.map((t) => [digest(t), t]));
  const rows = await db.session.findMany({
    where: {
      id: { in: [...byDigest.keys()] },
      expiresAt: { gte: new Date() },
      lastSeenAt: { gte: new Date(Date.now() - idleMs) },
      user: { mustChangePassword: false },
    },
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
