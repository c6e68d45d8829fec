import { HealthResponseSchema, PublicHealthSchema, TransporterLoadSchema, type TransporterLoad } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { HealthMonitor } from '../health/monitor.ts';
import { viewer } from '../auth/guard.ts';

export async function healthRoutes(app: FastifyInstance, deps: { health: HealthMonitor; db: Db }): Promise<void> {
  // Public so load balancers and `curl` can use it, with the reason a component is
  // down (the UI cannot sign anyone in while Postgres is away); Transporter
  // details only for signed-in users.
  const Health = z.union([HealthResponseSchema, PublicHealthSchema]).meta({ description: 'The full health for a signed-in user, else the public part' });
  app.get('/health', { config: { public: true }, schema: { response: { 200: Health, 503: Health } } }, async (request, reply) => {
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

  /** Every Transporter seen, online or not, with the VMs and disks it is working on now (from Postgres). */
  app.get('/transporters', { ...viewer, schema: { response: { 200: z.array(TransporterLoadSchema) } } }, async (): Promise<TransporterLoad[]> => {
    const transporters = (await deps.health.check()).transporters;
    const [vms, disks, rows] = await Promise.all([
      deps.db.runVm.groupBy({ by: ['transporterId'], where: { status: 'running', transporterId: { not: null } }, _count: { _all: true } }),
      deps.db.runDisk.findMany({
        where: { finishedAt: null, phase: { in: ['opening', 'reading'] }, runVm: { status: 'running', transporterId: { not: null } } },
        select: { runVm: { select: { transporterId: true } } },
      }),
      deps.db.transporter.findMany({ select: { id: true, serveAddress: true, servedRepositories: true, tlsCert: true } }),
    ]);
    // It serves once it has both an address and the certificate clients will pin.
    const serves = new Map(rows.filter((r) => r.serveAddress && r.tlsCert && r.servedRepositories.length > 0).map((r) => [r.id, { address: r.serveAddress!, repositories: r.servedRepositories }]));
    const vmCount = new Map(vms.map((v) => [v.transporterId, v._count._all]));
    const diskCount = new Map<string, number>();
    for (const d of disks) diskCount.set(d.runVm.transporterId!, (diskCount.get(d.runVm.transporterId!) ?? 0) + 1);
    return transporters.map((t) => ({ ...t, runningVms: vmCount.get(t.id) ?? 0, runningDisks: diskCount.get(t.id) ?? 0, serves: serves.get(t.id) ?? null }));
  });
}
