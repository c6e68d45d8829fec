import type { Db, Prisma } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import { z } from 'zod';
import { AppError } from '../errors.ts';

const Sources = z.array(z.object({ moref: z.string(), name: z.string(), instanceUuid: z.string().optional() }));

/**
 * Starts a run of a job: the run and one item per VM are rows first, then the
 * queue gets the item ids. Refuses when the job already has a run in progress.
 */
export async function startJobRun(db: Db, queue: WorkQueue, jobId: string, trigger: 'manual' | 'schedule', requestedBy: string | null) {
  const job = await db.backupJob.findUnique({ where: { id: jobId } });
  if (!job) throw new AppError('not_found', 'no such job');
  const active = await db.jobRun.findFirst({ where: { jobId, status: { in: ['queued', 'running'] } } });
  if (active) throw new AppError('conflict', `job ${job.name} is already running (run ${active.id})`);
  const sources = Sources.parse(job.sources);
  const run = await db.jobRun.create({
    data: {
      jobId,
      kind: 'backup',
      trigger,
      requestedBy,
      vms: { create: sources.map((s) => ({ vmMoref: s.moref, vmName: s.name, vmInstanceUuid: s.instanceUuid ?? null })) },
    },
    include: { vms: true },
  });
  for (const vm of run.vms) await queue.enqueueBackupVm({ runVmId: vm.id });
  return { job, run };
}

type ItemRunKind = 'restore' | 'drill' | 'verify' | 'gc' | 'copy';

/**
 * A run of one item that carries its request on the run row — restores,
 * drills, verify and GC — written first, then queued (the queue gets the item
 * id only). `item` names what the run acts on (the new VM, the repository).
 */
export async function startItemRun(
  db: Db,
  enqueue: (payload: { runVmId: string }) => Promise<void>,
  run: { kind: ItemRunKind; trigger: 'manual' | 'schedule'; requestedBy: string | null; request: Prisma.InputJsonObject; item: { name: string; instanceUuid?: string | null; log?: Prisma.InputJsonArray }; drillJobId?: string },
) {
  const created = await db.jobRun.create({
    data: {
      kind: run.kind,
      trigger: run.trigger,
      requestedBy: run.requestedBy,
      request: run.request,
      ...(run.drillJobId ? { drillJobId: run.drillJobId } : {}),
      vms: { create: [{ vmMoref: '', vmName: run.item.name, vmInstanceUuid: run.item.instanceUuid ?? null, ...(run.item.log ? { log: run.item.log } : {}) }] },
    },
    include: { vms: true },
  });
  await enqueue({ runVmId: created.vms[0]!.id });
  return created;
}
