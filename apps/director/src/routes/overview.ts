/**
 * The console's overview: which VMs are protected, computed here from a few grouped queries (the latest
 * finished backup item per VM, restore points counted per VM, runs of the last 24 hours by result) and the
 * vCenters' inventories (kept for a minute by the inventory cache; a vCenter that does not answer is shown
 * as it last answered, with the problem), so the browser makes one call whatever the number of VMs.
 */
import { expandSources, JobSourceSchema, ProtectionOverviewSchema, ProtectionQuerySchema, type InventoryVm, type LastBackup, type ProtectionOverview, type RunStatus, type VmProtection } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { viewer } from '../auth/guard.ts';
import type { InventoryCache } from '../services/inventory-cache.ts';
import { nextOccurrences, scheduleProblem } from '../services/schedules.ts';
import { parse } from '../validate.ts';
import { connectionOf } from './vcenters.ts';

interface LatestItem {
  k: string;
  run_id: string;
  status: string;
  at: Date;
  error: string | null;
  bytes_written: bigint;
  incremental: boolean | null;
}

/** The latest finished backup item of every VM (keyed like VmProtection.key), with what its disks moved. */
async function latestBackups(db: Db): Promise<Map<string, LastBackup>> {
  // Incremental: every disk that opened was read as its CBT changes since the parent point (the engine records
  // how it read each disk); null when no disk opened.
  // vm_latest_backups holds each VM's latest finished backup item (a trigger keeps it as items finish): one row
  // per VM, whatever the number of backups run.
  const rows = await db.$queryRaw<LatestItem[]>`
    SELECT l.vm_key AS k, v.run_id::text AS run_id, v.status::text AS status, l.at, v.error,
           COALESCE(SUM(d.bytes_written), 0)::bigint AS bytes_written,
           bool_and(d.read_mode = 'changed') AS incremental
    FROM vm_latest_backups l JOIN run_vms v ON v.id = l.run_vm_id LEFT JOIN run_disks d ON d.run_vm_id = v.id
    GROUP BY l.vm_key, v.run_id, v.status, l.at, v.error`;
  return new Map(
    rows.map((r) => [
      r.k,
      {
        runId: r.run_id,
        status: r.status as RunStatus,
        at: r.at.toISOString(),
        mode: r.incremental === null ? null : r.incremental ? 'incremental' : 'full',
        bytesWritten: Number(r.bytes_written),
        error: r.error,
      },
    ]),
  );
}

export async function overviewRoutes(app: FastifyInstance, deps: { db: Db; secretKey: Buffer; inventory: InventoryCache }): Promise<void> {
  const { db } = deps;

  app.get('/overview/protection', { ...viewer, schema: { querystring: ProtectionQuerySchema, response: { 200: ProtectionOverviewSchema } } }, async (request): Promise<ProtectionOverview> => {
    const query = parse(ProtectionQuerySchema, request.query);
    const now = new Date();
    const since = new Date(now.getTime() - 24 * 3600_000);
    const [vcenters, jobs, latest, points, finished, active] = await Promise.all([
      db.vCenter.findMany({ orderBy: { name: 'asc' } }),
      db.backupJob.findMany({ where: { enabled: true }, select: { id: true, name: true, vcenterId: true, sources: true, schedule: true }, orderBy: { name: 'asc' } }),
      latestBackups(db),
      db.restorePoint.groupBy({ by: ['vmInstanceUuid'], where: { pruningAt: null }, _count: { _all: true }, _max: { createdAt: true } }),
      db.jobRun.groupBy({ by: ['status'], where: { kind: 'backup', finishedAt: { gte: since } }, _count: { _all: true } }),
      db.jobRun.count({ where: { kind: 'backup', status: { in: ['queued', 'running'] } } }),
    ]);
    // Async, so a vCenter whose connection cannot even be made (its password does not unseal) is one problem, not a failed page.
    const inventories = await Promise.allSettled(vcenters.map(async (vc) => deps.inventory.listVms(connectionOf(vc, deps.secretKey), vc.name, query.fresh ? { maxAgeMs: 0 } : {})));
    let inventoryAsOf = null as Date | null;

    const vms = new Map<string, VmProtection>();
    /** `<vCenter id>/<moref>` → key, so a job source without an instance UUID finds its inventory VM. */
    const byMoref = new Map<string, string>();
    const vcenterName = new Map(vcenters.map((vc) => [vc.id, vc.name]));
    const entry = (key: string, name: string, vcenterId: string | null, moref: string | null, instanceUuid: string | null, inInventory: boolean): VmProtection => ({
      key,
      name,
      vcenterId,
      vcenterName: vcenterId ? (vcenterName.get(vcenterId) ?? null) : null,
      moref,
      instanceUuid,
      inInventory,
      jobs: [],
      protected: false,
      unprotectedReason: 'no_job',
      lastBackup: null,
      restorePoints: 0,
      newestPointAt: null,
      nextRunAt: null,
    });
    const inventoryProblems: ProtectionOverview['inventoryProblems'] = [];
    inventories.forEach((result, i) => {
      const vc = vcenters[i]!;
      if (result.status === 'rejected') {
        inventoryProblems.push({ vcenterId: vc.id, vcenterName: vc.name, reason: (result.reason as Error).message, asOf: null });
        return;
      }
      const { at, problem } = result.value;
      if (problem) inventoryProblems.push({ vcenterId: vc.id, vcenterName: vc.name, reason: problem, asOf: at.toISOString() });
      if (!inventoryAsOf || at < inventoryAsOf) inventoryAsOf = at;
      for (const vm of result.value.vms as InventoryVm[]) {
        const key = vm.instanceUuid ?? `${vc.id}/${vm.moref}`;
        vms.set(key, entry(key, vm.name, vc.id, vm.moref, vm.instanceUuid ?? null, true));
        byMoref.set(`${vc.id}/${vm.moref}`, key);
      }
    });

    const nextRuns: ProtectionOverview['nextRuns'] = [];
    // A job's containers count with the VMs they hold in the inventory read above (an unread vCenter's hold none).
    const inventoryOf = new Map(vcenters.map((vc, i) => [vc.id, inventories[i]!.status === 'fulfilled' ? inventories[i]!.value : { vms: [], containers: [] }]));
    for (const job of jobs) {
      const sources = z.array(JobSourceSchema).catch([]).parse(job.sources);
      const expanded = expandSources(sources, inventoryOf.get(job.vcenterId) ?? { vms: [], containers: [] }).vms;
      const next = job.schedule && !scheduleProblem(job.schedule) ? nextOccurrences(job.schedule, 1, now)[0]!.toISOString() : null;
      if (next) nextRuns.push({ jobId: job.id, jobName: job.name, at: next, vms: expanded.length });
      for (const { vm: s } of expanded) {
        const key = (s.instanceUuid && vms.has(s.instanceUuid) ? s.instanceUuid : byMoref.get(`${job.vcenterId}/${s.moref}`)) ?? s.instanceUuid ?? `${job.vcenterId}/${s.moref}`;
        let vm = vms.get(key);
        if (!vm) {
          vm = entry(key, s.name, job.vcenterId, s.moref, s.instanceUuid ?? null, false);
          vms.set(key, vm);
        }
        if (!vm.jobs.some((j) => j.id === job.id)) vm.jobs.push({ id: job.id, name: job.name });
        if (next && (!vm.nextRunAt || next < vm.nextRunAt)) vm.nextRunAt = next;
      }
    }

    const pointsOf = new Map(points.map((p) => [p.vmInstanceUuid, p]));
    for (const vm of vms.values()) {
      vm.lastBackup = latest.get(vm.key) ?? null;
      const p = vm.instanceUuid ? pointsOf.get(vm.instanceUuid) : undefined;
      vm.restorePoints = p?._count._all ?? 0;
      vm.newestPointAt = p?._max.createdAt?.toISOString() ?? null;
      vm.unprotectedReason = vm.jobs.length === 0 ? 'no_job' : vm.restorePoints === 0 ? 'no_restore_point' : null;
      vm.protected = vm.unprotectedReason === null;
    }

    const attention = (vm: VmProtection) => vm.lastBackup?.status === 'failed' || vm.lastBackup?.status === 'warning';
    const rank = (vm: VmProtection) => (!vm.protected ? 0 : attention(vm) ? 1 : 2);
    const all = [...vms.values()].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
    const count = (s: RunStatus) => finished.find((f) => f.status === s)?._count._all ?? 0;
    // The filters (state, then name), before paging; the counts stay those of every VM.
    const needle = query.q?.toLocaleLowerCase();
    const matching = all.filter(
      (vm) =>
        (query.status === undefined || (query.status === 'unprotected' ? !vm.protected : query.status === 'protected' ? vm.protected : attention(vm))) &&
        (!needle || vm.name.toLocaleLowerCase().includes(needle)),
    );
    return {
      generatedAt: now.toISOString(),
      total: matching.length,
      counts: { protected: all.filter((v) => v.protected).length, unprotected: all.filter((v) => !v.protected).length, attention: all.filter(attention).length },
      last24h: { succeeded: count('succeeded'), warnings: count('warning'), failed: count('failed'), running: active },
      nextRuns: nextRuns.sort((a, b) => a.at.localeCompare(b.at)).slice(0, 5),
      inventoryAsOf: inventoryAsOf?.toISOString() ?? null,
      inventoryProblems,
      vms: matching.slice(query.offset, query.offset + query.limit),
    };
  });
}
