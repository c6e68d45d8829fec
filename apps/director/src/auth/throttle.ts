/**
 * Rate limits for everything that checks a password or a second-factor code
 * (sign-in, its code step, change-password, re-authentication): per account and
 * across all accounts. Failures are rows in Postgres, so every Director process
 * sees the same counts and a restart forgets nothing; only failures are written,
 * and Postgres' clock is the only one used.
 */
import type { Db } from '@vaultline/db';
import { AppError } from '../errors.ts';

export interface AuthLimits {
  /** Failures allowed per account within accountWindowMs before it is refused. */
  perAccount: number;
  accountWindowMs: number;
  /** Failures allowed across all accounts within globalWindowMs. */
  global: number;
  globalWindowMs: number;
}

export const AUTH_LIMITS: AuthLimits = { perAccount: 5, accountWindowMs: 15 * 60_000, global: 30, globalWindowMs: 60_000 };

export class AuthThrottle {
  constructor(
    private readonly db: Db,
    private readonly limits: AuthLimits = AUTH_LIMITS,
  ) {}

  /** Throws `rate_limited` (429 with Retry-After) while the account or everyone is over the limit. Call before checking the secret. */
  async check(account: string): Promise<void> {
    const { perAccount, accountWindowMs, global, globalWindowMs } = this.limits;
    // The failure whose ageing-out frees the next attempt: the (count - limit + 1)-th oldest in the window.
    const [row] = await this.db.$queryRaw<{ account_wait: number | null; global_wait: number | null }[]>`
      SELECT
        (SELECT EXTRACT(EPOCH FROM (at + ${accountWindowMs}::int * interval '1 millisecond' - now())) FROM auth_failures
          WHERE account = ${account.toLowerCase()} AND at > now() - ${accountWindowMs}::int * interval '1 millisecond'
          ORDER BY at DESC OFFSET ${perAccount - 1}::int LIMIT 1)::float8 AS account_wait,
        (SELECT EXTRACT(EPOCH FROM (at + ${globalWindowMs}::int * interval '1 millisecond' - now())) FROM auth_failures
          WHERE at > now() - ${globalWindowMs}::int * interval '1 millisecond'
          ORDER BY at DESC OFFSET ${global - 1}::int LIMIT 1)::float8 AS global_wait`;
    const refuse = (seconds: number, message: string) => {
      const wait = Math.max(1, Math.ceil(seconds));
      const err = new AppError('rate_limited', `${message}; try again in ${wait} s`);
      err.retryAfterSeconds = wait;
      throw err;
    };
    if (row?.account_wait != null) refuse(row.account_wait, 'too many failed attempts for this account');
    if (row?.global_wait != null) refuse(row.global_wait, 'too many failed sign-in attempts on this appliance');
  }

  async failed(account: string): Promise<void> {
    const keepMs = Math.max(this.limits.accountWindowMs, this.limits.globalWindowMs);
    await this.db.$executeRaw`DELETE FROM auth_failures WHERE at < now() - ${keepMs}::int * interval '1 millisecond'`;
    await this.db.authFailure.create({ data: { account: account.toLowerCase() } });
  }

  /** A success clears the account's failures (not the global count). */
  async succeeded(account: string): Promise<void> {
    await this.db.authFailure.deleteMany({ where: { account: account.toLowerCase() } });
  }
}
