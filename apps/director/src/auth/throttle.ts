/** Slows password guessing: after 5 failures for one (ip, username) pair, a doubling wait up to 5 minutes. */
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; until: number; last: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly freeAttempts = 5,
  ) {}

  retryAfterMs(key: string): number {
    const f = this.failures.get(key);
    if (!f) return 0;
    if (this.now() - f.last > 15 * 60_000) {
      this.failures.delete(key);
      return 0;
    }
    return Math.max(0, f.until - this.now());
  }

  failed(key: string): void {
    const f = this.failures.get(key) ?? { count: 0, until: 0, last: 0 };
    f.count += 1;
    f.last = this.now();
    if (f.count >= this.freeAttempts) f.until = this.now() + Math.min(300_000, 1000 * 2 ** (f.count - this.freeAttempts));
    this.failures.set(key, f);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(key: string): void {
    this.failures.delete(key);
  }
}
