import { describeSource, expandSources, isContainerSource, JobSourceSchema, type ContainerSource, type InventoryContainer, type InventoryVm, type JobSource } from '@vaultline/contracts';
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
