/**
 * Restore drills: each VM of a drill job gets a run of kind 'drill' whose
 * request names one of its restore points and a throwaway VM name. The
 * Transporter restores it, verifies every disk against the restore point and
 * deletes the VM again, so a drill that fails shows up like a failed backup.
 */
import { randomInt } from 'node:crypto';
import { DrillPointChoiceSchema, DrillVmSchema, type DrillJobDto } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { startItemRun } from './runs.ts';
import { nextOccurrences, scheduleProblem } from './schedules.ts';

type DrillRow = NonNullable<Awaited<ReturnType<Db['drillJob']['findUnique']>>>;

type LastResult = DrillJobDto['lastResults'][number];

/**
 * The drill as listed: with when it runs next and, per VM, its latest drill run
 * (found by the drill's id and the VM's instance UUID; the run's own VM name is the throwaway one).
 */
export async function drillsWithResults(db: Db, where: { id?: string } = {}, now = new Date()): Promise<DrillJobDto[]> {
  const drills = await db.drillJob.findMany({ where, orderBy: { name: 'asc' } });
  if (drills.length === 0) return [];
  const items = await db.runVm.findMany({
    where: { run: { drillJobId: { in: drills.map((x) => x.id) } } },
    orderBy: { run: { createdAt: 'desc' } },
    select: { vmInstanceUuid: true, run: { select: { id: true, drillJobId: true, status: true, createdAt: true, finishedAt: true, error: true } } },
  });
  return drills.map((row) => {
    const dto = drillDto(row, now);
    const lastResults = dto.vms.map((vm): LastResult => {
      const r = items.find((i) => i.run.drillJobId === row.id && i.vmInstanceUuid === vm.instanceUuid)?.run;
      return { ...vm, run: r ? { id: r.id, status: r.status, createdAt: r.createdAt.toISOString(), finishedAt: r.finishedAt?.toISOString() ?? null, error: r.error } : null };
    });
    return { ...dto, lastResults };
  });
}

export function drillDto(d: DrillRow, now = new Date()): DrillJobDto {
  return {
    id: d.id,
    name: d.name,
    vcenterId: d.vcenterId,
    vms: z.array(DrillVmSchema).parse(d.vms),
    pointChoice: DrillPointChoiceSchema.parse(d.pointChoice),
    datastore: d.datastore,
    schedule: d.schedule,
    enabled: d.enabled,
    lastScheduledAt: d.lastScheduledAt?.toISOString() ?? null,
    nextRunAt: d.enabled && d.schedule && !scheduleProblem(d.schedule) ? nextOccurrences(d.schedule, 1, now)[0]!.toISOString() : null,
    lastResults: [],
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

/** "web-01-drill-20261201-0230": unique per minute, within the 80 characters a VM name may have. */
export function drillVmName(vmName: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 13);
  return `${vmName.slice(0, 80 - stamp.length - 7)}-drill-${stamp}`;
}

/**
 * Starts one drill run per VM of the job. A VM without any restore point gets a
 * run that fails at once, saying so, rather than being skipped silently.
 * Refuses while an earlier drill of the job is still queued or running.
 */
export async function startDrillRuns(db: Db, queue: WorkQueue, drillId: string, trigger: 'manual' | 'schedule', requestedBy: string | null, now = new Date()) {
  const drill = await db.drillJob.findUnique({ where: { id: drillId } });
  if (!drill) throw new AppError('not_found', 'no such drill');
  const active = await db.jobRun.findFirst({ where: { drillJobId: drillId, status: { in: ['queued', 'running'] } } });
  if (active) throw new AppError('conflict', `drill ${drill.name} is already running (run ${active.id})`);
  const runIds: string[] = [];
  for (const vm of drillDto(drill).vms) {
    const points = await db.restorePoint.findMany({ where: { vmInstanceUuid: vm.instanceUuid }, orderBy: { createdAt: 'desc' }, select: { id: true, repoPointId: true } });
    const point = drill.pointChoice === 'random' && points.length > 0 ? points[randomInt(points.length)] : points[0];
    const name = drillVmName(vm.name, now);
    const base = { kind: 'drill' as const, trigger, requestedBy, drillJobId: drill.id };
    if (!point) {
      const message = `${vm.name} has no restore point to drill; back it up first`;
      const run = await db.jobRun.create({
        data: {
          ...base,
          status: 'failed',
          error: message,
          finishedAt: now,
          vms: { create: [{ vmMoref: '', vmName: name, vmInstanceUuid: vm.instanceUuid, status: 'failed', phase: 'failed', error: message, finishedAt: now }] },
        },
      });
      runIds.push(run.id);
      continue;
    }
    const request = { restorePointId: point.id, name, powerOn: false, drill: true, vcenterId: drill.vcenterId, ...(drill.datastore ? { datastore: drill.datastore } : {}) };
    const run = await startItemRun(db, (p) => queue.enqueueRestore(p), { ...base, request, item: { name, instanceUuid: vm.instanceUuid } });
    runIds.push(run.id);
  }
  return { drill, runIds };
}
