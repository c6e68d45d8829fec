import type { FastifyInstance } from 'fastify';
import type { HealthMonitor } from '../health/monitor.ts';

export async function healthRoutes(app: FastifyInstance, deps: { health: HealthMonitor }): Promise<void> {
  // Public so load balancers and `curl` can use it, with the reason a component is
  // down (the UI cannot sign anyone in while Postgres is away); Transporter
  // details only for signed-in users.
  app.get('/api/health', { config: { public: true } }, async (request, reply) => {
    const h = await deps.health.check();
    reply.code(h.postgres.ok && h.redis.ok ? 200 : 503);
    if (request.user) return h;
    return {
      ok: h.ok,
      version: h.version,
      time: h.time,
      postgres: { ok: h.postgres.ok, ...(h.postgres.reason ? { reason: h.postgres.reason } : {}) },
      redis: { ok: h.redis.ok, ...(h.redis.reason ? { reason: h.redis.reason } : {}) },
      transporters: { online: h.transporters.filter((t) => t.online).length, total: h.transporters.length },
    };
  });

  app.get('/api/transporters', async () => (await deps.health.check()).transporters);
}
