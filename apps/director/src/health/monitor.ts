/**
 * Health of the things the Director depends on. Each check has its own short
 * timeout, so a dead Postgres or Redis turns its light red with a reason while
 * the Director keeps answering; both reconnect by themselves when they return.
 * Transporters seen in Redis are mirrored into Postgres so that one that went
 * away is still listed, as offline.
 */
import type { HealthResponse, TransporterStatus } from '@vaultline/contracts';
import { pingDatabase, type Db } from '@vaultline/db';
import { pingRedis, type Redis, type TransporterRegistry } from '@vaultline/queue';
import type { Logger } from '@vaultline/logger';

export interface HealthDeps {
  databaseUrl: string;
  db: Db;
  redis: Redis;
  registry: TransporterRegistry;
  version: string;
  log: Logger;
  timeoutMs?: number;
}

function explainPostgres(message: string): string {
  if (/ECONNREFUSED/.test(message)) return `PostgreSQL refused the connection (${message.replace(/^.*ECONNREFUSED\s*/, '')}); is it running?`;
  if (/timeout/i.test(message)) return `PostgreSQL did not answer in time (${message})`;
  return `PostgreSQL: ${message}`;
}

function explainRedis(message: string): string {
  return `Redis: ${message}`;
}

export class HealthMonitor {
  private inflight: Promise<HealthResponse> | null = null;
  private last: HealthResponse | null = null;
  private lastAt = 0;
  /** Heartbeat last written to Postgres per Transporter: a row is written once per new heartbeat, not per check. */
  private readonly mirrored = new Map<string, string>();

  constructor(private readonly deps: HealthDeps) {}

  /** A fresh check; concurrent callers within 500 ms share one. */
  async check(): Promise<HealthResponse> {
    if (this.last && Date.now() - this.lastAt < 500) return this.last;
    this.inflight ??= this.run().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async run(): Promise<HealthResponse> {
    const timeoutMs = this.deps.timeoutMs ?? 2_000;
    const timed = async (fn: () => Promise<string | null>) => {
      const started = Date.now();
      const reason = await fn();
      return { ok: reason === null, ...(reason ? { reason } : {}), latencyMs: Date.now() - started };
    };
    const [postgres, redis] = await Promise.all([
      timed(async () => {
        const r = await pingDatabase(this.deps.databaseUrl, timeoutMs);
        return r && explainPostgres(r);
      }),
      timed(async () => {
        const r = await pingRedis(this.deps.redis, timeoutMs);
        return r && explainRedis(r);
      }),
    ]);
    const transporters = await this.transporters(redis.ok, postgres.ok);
    const result: HealthResponse = {
      ok: postgres.ok && redis.ok && transporters.some((t) => t.online),
      version: this.deps.version,
      time: new Date().toISOString(),
      postgres,
      redis,
      transporters,
    };
    this.last = result;
    this.lastAt = Date.now();
    return result;
  }

  private async transporters(redisOk: boolean, postgresOk: boolean): Promise<TransporterStatus[]> {
    const live = redisOk ? await this.deps.registry.list().catch(() => []) : [];
    if (!postgresOk) return live;
    try {
      await Promise.all(
        live.filter((t) => this.mirrored.get(t.id) !== t.lastHeartbeat).map(async (t) => {
          const fields = {
            name: t.name,
            host: t.host,
            version: t.version,
            capabilities: t.capabilities,
            proxyVmUuid: t.capabilities.proxyVmUuid ?? null,
            maxDiskTasks: t.capabilities.maxDiskTasks,
            lastHeartbeat: new Date(t.lastHeartbeat),
          };
          await this.deps.db.transporter.upsert({ where: { id: t.id }, create: { id: t.id, ...fields }, update: fields });
          this.mirrored.set(t.id, t.lastHeartbeat);
        }),
      );
      const known = await this.deps.db.transporter.findMany();
      const seen = new Set(live.map((t) => t.id));
      const gone: TransporterStatus[] = known
        .filter((k) => !seen.has(k.id))
        .map((k) => ({
          id: k.id,
          name: k.name,
          host: k.host,
          version: k.version,
          pid: 0,
          startedAt: k.registeredAt.toISOString(),
          capabilities: { transports: [], maxDiskTasks: k.maxDiskTasks },
          online: false,
          lastHeartbeat: (k.lastHeartbeat ?? k.registeredAt).toISOString(),
        }));
      return [...live, ...gone].sort((a, b) => a.name.localeCompare(b.name));
    } catch (err) {
      this.deps.log.warn({ err }, 'could not mirror transporters into PostgreSQL');
      return live;
    }
  }
}
