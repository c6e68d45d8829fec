/**
 * Every check of a password or a TOTP code goes through here: sign-in and its
 * code step, change-password, TOTP enrolment, and the re-authentication that
 * destructive actions need. Each check is rate limited (throttle.ts) and a weaker
 * stored hash is redone once the password is known to be right.
 */
import { openSecret, sealSecret } from '@vaultline/config';
import { SECRET_LABELS } from '@vaultline/appliance';
import { REAUTH_FIELD } from '@vaultline/contracts';
import type { Db, UserModel as User } from '@vaultline/db';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';
import type { AuditLog } from '../services/audit.ts';
import { currentUser } from './guard.ts';
import { PASSWORD_COST, hashPassword, needsRehash, verifyPassword, type PasswordCost } from './passwords.ts';
import { AuthThrottle } from './throttle.ts';
import { matchTotp } from './totp.ts';

/** How long the code step of a sign-in may follow its password step. */
export const LOGIN_CHALLENGE_TTL_MS = 5 * 60_000;

export class Credentials {
  readonly throttle: AuthThrottle;
  // A well-formed hash of a random password, so unknown usernames cost as much as known ones.
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
    private readonly secretKey: Buffer,
    readonly cost: PasswordCost = PASSWORD_COST,
    throttle?: AuthThrottle,
  ) {
    this.throttle = throttle ?? new AuthThrottle(db);
  }

  hash(password: string): Promise<string> {
    return hashPassword(password, this.cost);
  }

  /**
   * Whether `password` is this user's (or, for an unknown name, spends the same time and says no).
   * Refused with 429 while the account or the appliance is over its failure limit; a failure counts.
   */
  async passwordMatches(account: string, user: User | null, password: string): Promise<boolean> {
    await this.throttle.check(account);
    const ok = user ? await verifyPassword(password, user.passwordHash) : (await verifyPassword(password, await (this.dummyHash ??= this.hash('vaultline-timing-equaliser'))), false);
    if (!ok || !user) {
      await this.throttle.failed(account);
      return false;
    }
    await this.throttle.succeeded(account);
    if (needsRehash(user.passwordHash, this.cost)) {
      // Only if nobody changed it meanwhile.
      await this.db.user.updateMany({ where: { id: user.id, passwordHash: user.passwordHash }, data: { passwordHash: await this.hash(password) } });
    }
    return true;
  }

  /** Whether `code` is the user's current TOTP code (each code works once); rate limited like passwords. */
  async totpMatches(user: User, code: string): Promise<boolean> {
    await this.throttle.check(user.username);
    const secret = user.totpSecretSealed ? this.openTotpSecret(user.id, user.totpSecretSealed) : null;
    const step = secret ? matchTotp(secret, code, user.totpLastStep) : null;
    // The step is claimed in the same statement that checks it, so two requests cannot both use one code.
    const claimed =
      step !== null &&
      (await this.db.user.updateMany({ where: { id: user.id, OR: [{ totpLastStep: null }, { totpLastStep: { lt: step } }] }, data: { totpLastStep: step } })).count === 1;
    if (!claimed) {
      await this.throttle.failed(user.username);
      return false;
    }
    await this.throttle.succeeded(user.username);
    return true;
  }

  sealTotpSecret(userId: string, secret: string): string {
    return sealSecret(this.secretKey, `${SECRET_LABELS.totpSecret}:${userId}`, secret);
  }

  openTotpSecret(userId: string, sealed: string): string {
    return openSecret(this.secretKey, `${SECRET_LABELS.totpSecret}:${userId}`, sealed);
  }

  /** The token that carries a sign-in from its password step to its code step; sealed, so it cannot be made up. */
  loginChallenge(userId: string): string {
    return sealSecret(this.secretKey, SECRET_LABELS.loginChallenge, JSON.stringify({ userId, expiresAt: Date.now() + LOGIN_CHALLENGE_TTL_MS }));
  }

  /** The user id a challenge was issued for, or null when it is forged or too old. */
  openLoginChallenge(challenge: string): string | null {
    try {
      const { userId, expiresAt } = JSON.parse(openSecret(this.secretKey, SECRET_LABELS.loginChallenge, challenge)) as { userId: string; expiresAt: number };
      return typeof userId === 'string' && expiresAt > Date.now() ? userId : null;
    } catch {
      return null;
    }
  }

  /**
   * Destructive actions need the signed-in user's password again, in the body field `currentPassword`.
   * Missing or wrong: 403, and the refusal is in the audit log like the success the caller records.
   */
  async reauthenticate(request: FastifyRequest, action: string, subject: string): Promise<void> {
    const me = currentUser(request);
    const given = (request.body as Record<string, unknown> | undefined)?.[REAUTH_FIELD];
    const refuse = async (reason: string, err: AppError) => {
      await this.audit.record({ actor: me.username, action: `${action}.refused`, subject, detail: { reason }, ip: request.ip });
      throw err;
    };
    if (typeof given !== 'string' || given === '') {
      await refuse('no password', new AppError('reauth_required', `this cannot be undone: confirm it with your current password (the ${REAUTH_FIELD} field)`));
      return;
    }
    const user = await this.db.user.findUnique({ where: { id: me.id } });
    let ok: boolean;
    try {
      ok = await this.passwordMatches(me.username, user, given);
    } catch (err) {
      if (err instanceof AppError && err.code === 'rate_limited') await refuse('rate limited', err);
      throw err;
    }
    if (!ok) await refuse('wrong password', new AppError('reauth_failed', 'your password is wrong; nothing was changed'));
  }
}
