/**
 * Announces this Transporter in Redis and keeps doing so every interval. A
 * missed beat (Redis away) is only logged: the next one re-registers, so the
 * Director sees the Transporter come back online by itself.
 */
import type { TransporterInfo } from '@vaultline/contracts';
import type { Logger } from '@vaultline/logger';
import type { TransporterRegistry } from '@vaultline/queue';

export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  private failing = false;

  constructor(
    private readonly registry: TransporterRegistry,
    private readonly info: TransporterInfo,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  async beat(): Promise<boolean> {
    try {
      await this.registry.heartbeat(this.info);
      if (this.failing) this.log.info('heartbeat restored');
      this.failing = false;
      return true;
    } catch (err) {
      if (!this.failing) this.log.warn({ err: (err as Error).message }, 'heartbeat failed; will keep trying');
      this.failing = true;
      return false;
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.registry.remove(this.info.id).catch(() => undefined);
  }
}
