/**
 * Announces this Transporter in Redis and keeps doing so every interval. A
 * missed beat (Redis away) is only logged: the next one re-registers, so the
 * Director sees the Transporter come back online by itself.
 */
import os from 'node:os';
import type { TransporterInfo } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import type { TransporterRegistry } from '@vaultline/queue';

export interface LoadSampleLimits {
  everyMs: number;
  keepMs: number;
}

export const LOAD_SAMPLE_LIMITS: LoadSampleLimits = { everyMs: 60_000, keepMs: 7 * 86_400_000 };

/**
 * This Transporter's load (transporter_samples) for the Transporters page: the disks it is copying, its
 * process's CPU and memory and the host's load average, at most once per `everyMs`; samples older than
 * `keepMs` are deleted as new ones come. Inserts nothing while the Director has not listed it yet.
 */
export class LoadSampler {
  private last: { at: number; cpu: NodeJS.CpuUsage } | null = null;

  constructor(
    private readonly db: Db,
    private readonly transporterId: string,
    private readonly limits: LoadSampleLimits = LOAD_SAMPLE_LIMITS,
  ) {}

  /** Records a sample when one is due; returns whether it did. */
  async maybeRecord(now = Date.now()): Promise<boolean> {
    if (this.last && now - this.last.at < this.limits.everyMs) return false;
    const cpu = process.cpuUsage();
    const prev = this.last;
    this.last = { at: now, cpu };
    const spentUs = prev ? cpu.user - prev.cpu.user + cpu.system - prev.cpu.system : cpu.user + cpu.system;
    const wallMs = prev ? now - prev.at : Math.max(1, process.uptime() * 1000);
    const cpuPercent = Math.max(0, spentUs / 1000 / Math.max(1, wallMs)) * 100;
    const id = this.transporterId;
    const disks = await this.db.runDisk.count({ where: { finishedAt: null, phase: { notIn: ['queued', 'done', 'failed', 'cancelled'] }, runVm: { status: 'running', transporterId: id } } });
    const at = new Date(now);
    await this.db.$executeRaw`
      INSERT INTO transporter_samples (transporter_id, at, active_disks, cpu_percent, load_1, rss_bytes)
      SELECT id, ${at}, ${disks}, ${cpuPercent}, ${os.loadavg()[0] ?? 0}, ${BigInt(process.memoryUsage.rss())} FROM transporters WHERE id = ${id}`;
    await this.db.transporterSample.deleteMany({ where: { transporterId: id, at: { lt: new Date(now - this.limits.keepMs) } } });
    return true;
  }
}

export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  private failing = false;

  constructor(
    private readonly registry: TransporterRegistry,
    private readonly info: TransporterInfo,
    private readonly intervalMs: number,
    private readonly log: Logger,
    private readonly load: LoadSampler | null = null,
  ) {}

  async beat(): Promise<boolean> {
    try {
      await this.registry.heartbeat(this.info);
      if (this.failing) this.log.info('heartbeat restored');
      this.failing = false;
      void this.load?.maybeRecord().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'load sample not recorded'));
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
