import { describeSource, expandSources, isContainerSource, isTerminalStatus, JobSourceSchema, type ContainerSource, type InventoryContainer, type InventoryVm, type JobSource, type OneOffBackup } from '@vaultline/contracts';
import type { Db, Prisma } from '@vaultline/db';
import type { WorkQueue } from '@vaultline/queue';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { connectionOf } from '../routes/vcenters.ts';
import type { InventoryCache } from './inventory-cache.ts';

const Sources = z.array(JobSourceSchema);

/** How a run start reads a vCenter's inventory to expand a job's containers: through the cache, as of now. */
export interface RunInventory {
  inventory: InventoryCache;
  secretKey: Buffer;
}

type ItemRow = { vmMoref: string; vmName: string; vmInstanceUuid: string | null; log?: Prisma.InputJsonArray; status?: 'failed'; phase?: string; error?: string; finishedAt?: Date };

/**
 * The run items of a job's sources. VMs are taken as they are (a VM the vCenter lost fails in its backup,
 * as always). Containers are expanded against an inventory read made now (new VMs in, deleted ones gone,
 * each VM once whatever the number of sources naming it, exclusions honoured), and each item's log says
 * which sources brought it in. A container the vCenter no longer has (or whose vCenter cannot be read) is
 * an item of its own that fails at once, saying so; the rest of the run goes on.
 */
async function runItems(db: Db, job: { vcenterId: string; name: string }, sources: JobSource[], inv: RunInventory | undefined, now: Date): Promise<ItemRow[]> {
  const at = now.toISOString();
  const containerSources = sources.filter(isContainerSource);
  if (containerSources.length === 0) return sources.map((s) => ({ vmMoref: s.moref, vmName: s.name, vmInstanceUuid: ('instanceUuid' in s && s.instanceUuid) || null }));
  let read: { vms: InventoryVm[]; containers: InventoryContainer[]; tagsError?: string | undefined } | null = null;
  let problem: string | null = null;
  const vcenter = await db.vCenter.findUnique({ where: { id: job.vcenterId } });
  if (!vcenter) problem = 'the job\'s vCenter is no longer registered';
  else if (!inv) problem = `the inventory of vCenter ${vcenter.name} was not available to this run start`;
  else {
    try {
      read = await inv.inventory.listVms(connectionOf(vcenter, inv.secretKey), vcenter.name, { maxAgeMs: 0 });
    } catch (err) {
      problem = `cannot read the inventory of vCenter ${vcenter.name}: ${(err as Error).message}`;
    }
  }
  const failed = (s: ContainerSource, error: string): ItemRow => ({
    vmMoref: s.moref,
    vmName: `${s.kind} ${s.path}`,
    vmInstanceUuid: null,
    status: 'failed',
    phase: 'failed',
    error,
    finishedAt: now,
    log: [{ at, level: 'error', message: error }],
  });
  if (!read) {
    // Without an inventory, the VMs chosen one by one still run; each container fails with the reason.
    const vms = sources.filter((s) => !isContainerSource(s));
    return [
      ...vms.map((s) => ({ vmMoref: s.moref, vmName: s.name, vmInstanceUuid: ('instanceUuid' in s && s.instanceUuid) || null })),
      ...containerSources.map((s) => failed(s, `${describeSource(s)} was not expanded: ${problem}`)),
    ];
  }
  // Tags that could not be read fail with the reason: an unread tag is not an empty one, nor a deleted one.
  const unreadTags = read.tagsError ? containerSources.filter((s) => s.kind === 'tag') : [];
  const expanded = expandSources(
    sources.filter((s) => !unreadTags.includes(s as ContainerSource)),
    read,
  );
  const items: ItemRow[] = expanded.vms.map(({ vm, via }) => {
    const byContainers = via.filter(isContainerSource);
    const chosen = via.length > byContainers.length;
    const message = byContainers.length === 0 ? null : chosen ? `Chosen by itself; also in ${byContainers.map(describeSource).join(', ')}` : `Included by ${byContainers.map(describeSource).join(', ')}`;
    return { vmMoref: vm.moref, vmName: vm.name, vmInstanceUuid: vm.instanceUuid ?? null, ...(message ? { log: [{ at, level: 'info', message }] } : {}) };
  });
  for (const s of unreadTags) items.push(failed(s, `${describeSource(s)} was not expanded: the tags of vCenter ${vcenter!.name} could not be read (${read.tagsError}); the job's other sources were backed up.`));
  for (const s of expanded.missing) {
    items.push(failed(s, `${describeSource(s)} (${s.moref}) no longer exists in vCenter ${vcenter!.name}: it was removed or recreated under another id; the job's other sources were backed up. Choose it again in the job's sources.`));
  }
  if (expanded.excluded.length > 0 && items[0]) {
    const message = `Excluded: ${expanded.excluded.map((x) => `${x.vm.name} (in ${describeSource(x.by)})`).join(', ')}`;
    items[0].log = [...(items[0].log ?? []), { at, level: 'info', message }];
  }
  return items;
}

/**
 * Starts a run of a job: the run and one item per VM are rows first, then the
 * queue gets the item ids. Refuses when the job already has a run in progress.
 * A job with container sources expands them against its vCenter's inventory read now (`inv`).
 */
export async function startJobRun(db: Db, queue: WorkQueue, jobId: string, trigger: 'manual' | 'schedule', requestedBy: string | null, inv?: RunInventory) {
  const job = await db.backupJob.findUnique({ where: { id: jobId } });
  if (!job) throw new AppError('not_found', 'no such job');
  const active = await db.jobRun.findFirst({ where: { jobId, status: { in: ['queued', 'running'] } } });
  if (active) throw new AppError('conflict', `job ${job.name} is already running (run ${active.id})`);
  const sources = Sources.parse(job.sources);
  const now = new Date();
  const items = await runItems(db, job, sources, inv, now);
  const queued = items.filter((i) => i.status !== 'failed');
  // Nothing to queue: the run is over as soon as it is written (failed when a source failed, else a warning: no VM to back up).
  const settled =
    queued.length === 0
      ? items.length > 0
        ? { status: 'failed' as const, error: items.map((i) => i.error).join('; '), finishedAt: now }
        : { status: 'warning' as const, error: `the job's containers hold no VM now`, finishedAt: now }
      : {};
  const run = await db.jobRun.create({
    data: { jobId, kind: 'backup', trigger, requestedBy, ...settled, vms: { create: items } },
    include: { vms: true },
  });
  for (const vm of run.vms) if (vm.status === 'queued') await queue.enqueueBackupVm({ runVmId: vm.id });
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

/** The VM is being backed up now (a run of any job, or another one-off): a second snapshot cycle must not start beside it. */
async function activeBackupOf(db: Db, vm: { moref: string; instanceUuid?: string | undefined }) {
  return db.runVm.findFirst({
    where: { status: { in: ['queued', 'running'] }, run: { kind: 'backup' }, OR: [{ vmMoref: vm.moref }, ...(vm.instanceUuid ? [{ vmInstanceUuid: vm.instanceUuid }] : [])] },
    select: { runId: true },
  });
}

/**
 * A one-off backup ("Back up now"): a run without a job, of one VM, whose request carries the vCenter,
 * repository, transport and options (`backup.vm` already checked against the vCenter). Nothing is scheduled
 * or left behind; no job's retention ever prunes its point. Refused while the VM is being backed up.
 */
export async function startOneOffBackup(db: Db, queue: WorkQueue, backup: OneOffBackup, requestedBy: string | null) {
  const busy = await activeBackupOf(db, backup.vm);
  if (busy) throw new AppError('conflict', `${backup.vm.name} is being backed up now (run ${busy.runId}); watch that run instead`);
  const run = await db.jobRun.create({
    data: {
      kind: 'backup',
      trigger: 'one-off',
      requestedBy,
      request: { oneOff: backup } as unknown as Prisma.InputJsonObject,
      vms: { create: [{ vmMoref: backup.vm.moref, vmName: backup.vm.name, vmInstanceUuid: backup.vm.instanceUuid ?? null }] },
    },
    include: { vms: true },
  });
  await queue.enqueueBackupVm({ runVmId: run.vms[0]!.id });
  return run;
}

/** How many retries lead to `runId` (0 for a run that is not a retry). */
export async function retryDepth(db: Db, runId: string): Promise<number> {
  let depth = 0;
  let id: string | null = runId;
  while (id && depth < 50) {
    const row: { retryOfId: string | null } | null = await db.jobRun.findUnique({ where: { id }, select: { retryOfId: true } });
    id = row?.retryOfId ?? null;
    if (id) depth++;
  }
  return depth;
}

/**
 * A run of only the failed VMs of finished backup run `runId` (`trigger` 'retry' by hand, 'auto-retry' by the
 * job's option): the same job (or the same one-off request), a VM that failed is backed up again, a container
 * source that failed (lost, or not expandable) is expanded again. Cancelled VMs are not retried. A run is retried
 * at most once (its retry can be retried in turn); refused while the job has a run in progress.
 */
export async function startRetryRun(db: Db, queue: WorkQueue, runId: string, how: { trigger: 'retry' | 'auto-retry'; requestedBy: string | null; inv?: RunInventory; now?: Date }) {
  const run = await db.jobRun.findUnique({ where: { id: runId }, include: { vms: true, job: true, retriedBy: { select: { id: true } } } });
  if (!run) throw new AppError('not_found', 'no such run');
  if (run.kind !== 'backup') throw new AppError('bad_request', `only backup runs are retried; this is a ${run.kind} run`);
  if (!isTerminalStatus(run.status)) throw new AppError('conflict', `run ${run.id} is still ${run.status}; retry it once it has finished`);
  if (run.retriedBy) throw new AppError('conflict', `run ${run.id} was already retried by run ${run.retriedBy.id}`);
  const failed = run.vms.filter((v) => v.status === 'failed');
  if (failed.length === 0) throw new AppError('conflict', `run ${run.id} has no failed VM to retry`);
  if (!run.job && !(run.request && typeof run.request === 'object' && 'oneOff' in run.request)) throw new AppError('bad_request', 'the job of this run was deleted; nothing to retry it with');
  if (run.job) {
    const active = await db.jobRun.findFirst({ where: { jobId: run.job.id, status: { in: ['queued', 'running'] } } });
    if (active) throw new AppError('conflict', `job ${run.job.name} is already running (run ${active.id}); retry when it has finished`);
  }
  const now = how.now ?? new Date();
  const at = now.toISOString();
  const sources = run.job ? Sources.parse(run.job.sources) : [];
  const lostSource = (v: { vmMoref: string }) => sources.find((s) => isContainerSource(s) && s.moref === v.vmMoref) as ContainerSource | undefined;
  const items: ItemRow[] = failed
    .filter((v) => !lostSource(v))
    .map((v) => ({ vmMoref: v.vmMoref, vmName: v.vmName, vmInstanceUuid: v.vmInstanceUuid, log: [{ at, level: 'info', message: `Retry of run ${run.id}, where it failed: ${v.error ?? 'no reason recorded'}` }] }));
  const containers = failed.map(lostSource).filter((s): s is ContainerSource => s !== undefined);
  if (containers.length > 0) items.push(...(await runItems(db, run.job!, containers, how.inv, now)));
  const settled =
    items.length === 0
      ? { status: 'warning' as const, error: 'the sources that failed hold no VM now', finishedAt: now }
      : items.every((i) => i.status === 'failed')
        ? { status: 'failed' as const, error: items.map((i) => i.error).join('; '), finishedAt: now }
        : {};
  let created;
  try {
    created = await db.jobRun.create({
      data: {
        jobId: run.jobId,
        kind: 'backup',
        trigger: how.trigger,
        requestedBy: how.requestedBy,
        ...(run.request ? { request: run.request as Prisma.InputJsonObject } : {}),
        retryOfId: run.id,
        ...settled,
        vms: { create: items },
      },
      include: { vms: true },
    });
  } catch (err) {
    // Two Directors (or two clicks) retrying the same run: the unique retry_of_id lets one through.
    if ((err as { code?: string }).code === 'P2002') throw new AppError('conflict', `run ${run.id} was already retried`);
    throw err;
  }
  for (const vm of created.vms) if (vm.status === 'queued') await queue.enqueueBackupVm({ runVmId: vm.id });
  return { job: run.job, run: created };
}
