/**
 * Transporters announce themselves in Redis: one hash field per Transporter
 * holding its info and last heartbeat. Online = heard from within
 * HEARTBEATS_BEFORE_OFFLINE intervals. The Director mirrors what it sees into
 * Postgres, so a Transporter that went away is still listed (offline).
 */
import {
  HEARTBEATS_BEFORE_OFFLINE,
  TransporterInfoSchema,
  type TransporterInfo,
  type TransporterStatus,
} from '@vaultline/contracts';
import type { Redis } from 'ioredis';

export interface RegistryOptions {
  /** Redis key namespace, so several appliances (or test runs) can share one Redis. */
  namespace?: string;
  now?: () => Date;
}

export class TransporterRegistry {
  private readonly key: string;
  private readonly now: () => Date;

  constructor(
    private readonly redis: Redis,
    private readonly heartbeatMs: number,
    opts: RegistryOptions = {},
  ) {
    this.key = `${opts.namespace ?? 'vaultline'}:transporters`;
    this.now = opts.now ?? (() => new Date());
  }

  async heartbeat(info: TransporterInfo): Promise<void> {
    const record = { ...TransporterInfoSchema.parse(info), lastHeartbeat: this.now().toISOString() };
    await this.redis.hset(this.key, info.id, JSON.stringify(record));
  }

  async remove(id: string): Promise<void> {
    await this.redis.hdel(this.key, id);
  }

  async list(): Promise<TransporterStatus[]> {
    const all = await this.redis.hgetall(this.key);
    const limit = this.heartbeatMs * HEARTBEATS_BEFORE_OFFLINE;
    const out: TransporterStatus[] = [];
    for (const raw of Object.values(all)) {
      try {
        const parsed = JSON.parse(raw) as TransporterInfo & { lastHeartbeat: string };
        const info = TransporterInfoSchema.parse(parsed);
        const age = this.now().getTime() - Date.parse(parsed.lastHeartbeat);
        out.push({ ...info, lastHeartbeat: parsed.lastHeartbeat, online: age <= limit });
      } catch {
        // A malformed entry (another version?) is skipped rather than failing health.
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
}
