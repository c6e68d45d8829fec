import {
  BottleneckSchema,
  JobCreateSchema,
  JobOptionsSchema,
  JobSchema,
  JobSourceSchema,
  isContainerSource,
  OkSchema,
  retentionLowered,
  JobUpdateSchema,
  RunListQuerySchema,
  RunDetailSchema,
  RunSchema,
  SchedulePreviewRequestSchema,
  SchedulePreviewSchema,
  type Job,
  type JobSource,
  type DiskSamples,
  type Run,
  type RunDetail,
  type SchedulePreview,
  JobHistoryQuerySchema,
  JobHistorySchema,
  JobsHistoryQuerySchema,
  JobsHistorySchema,
  type JobHistory,
  type JobHistoryRun,
  type JobsHistory,
} from '@vaultline/contracts';
import { Prisma, type Db } from '@vaultline/db';
import type { EventBus, WorkQueue } from '@vaultline/queue';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { viewer, operator, currentUser } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import type { InventoryCache } from '../services/inventory-cache.ts';
import { VCenterProblem } from '../services/vcenter-connector.ts';
import { connectionOf } from './vcenters.ts';
import type { Credentials } from '../auth/credentials.ts';
import { parse } from '../validate.ts';
import { startJobRun } from '../services/runs.ts';
import { applianceTimeZone, nextOccurrences, scheduleProblem } from '../services/schedules.ts';

const Id = z.object({ id: z.uuid() });

type RunWithItems = Awaited<ReturnType<typeof loadRun>>;
async function loadRun(db: Db, id: string) {
  return db.jobRun.findUnique({ where: { id }, include: { retriedBy: { select: { id: true } }, vms: { include: { disks: { orderBy: { deviceKey: 'asc' } } }, orderBy: { vmName: 'asc' } } } });
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** The throughput samples of a run's disks (stored by the Transporter, bounded per disk), oldest first. */
async function runSamples(db: Db, diskIds: string[]): Promise<DiskSamples[]> {
  if (diskIds.length === 0) return [];
  const rows = await db.runDiskSample.findMany({ where: { runDiskId: { in: diskIds } }, orderBy: [{ runDiskId: 'asc' }, { at: 'asc' }, { id: 'asc' }] });
  const byDisk = new Map<string, DiskSamples>();
  for (const r of rows) {
    let s = byDisk.get(r.runDiskId);
    if (!s) byDisk.set(r.runDiskId, (s = { runDiskId: r.runDiskId, at: [], bytesRead: [], bytesWritten: [] }));
    s.at.push(r.at.getTime());
    s.bytesRead.push(Number(r.bytesRead));
    s.bytesWritten.push(Number(r.bytesWritten));
  }
  return [...byDisk.values()];
}

export function runDto(r: NonNullable<RunWithItems>): Run {
  return {
    id: r.id,
    jobId: r.jobId,
    kind: r.kind,
    status: r.status,
    trigger: r.trigger,
    createdAt: r.createdAt.toISOString(),
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
    error: r.error,
    retryOf: r.retryOfId,
    retriedBy: r.retriedBy?.id ?? null,
    vms: r.vms.map((v) => ({
      id: v.id,
      vmMoref: v.vmMoref,
      vmName: v.vmName,
      status: v.status,
      phase: v.phase,
      phaseDetail: v.phaseDetail,
      transporterId: v.transporterId,
      quiesced: v.quiesced,
      startedAt: iso(v.startedAt),
      finishedAt: iso(v.finishedAt),
      error: v.error,
      log: Array.isArray(v.log) ? (v.log as { at: string; level: string; message: string }[]) : [],
      disks: v.disks.map((d) => ({
        id: d.id,
        deviceKey: d.deviceKey,
        label: d.label,
        capacityBytes: Number(d.capacityBytes),
        phase: d.phase,
        transport: d.transport,
        transportReason: Array.isArray(d.transportReason) ? (d.transportReason as string[]) : [],
        cbtUsed: d.cbtUsed,
        readMode: d.readMode === 'changed' || d.readMode === 'full' ? d.readMode : null,
        bytesRead: Number(d.bytesRead),
        bytesWritten: Number(d.bytesWritten),
        bytesSkipped: Number(d.bytesSkipped),
        bytesVerified: Number(d.bytesVerified),
        speed: { average: Number(d.avgBytesPerSecond), peak: Number(d.peakBytesPerSecond) },
        bottleneck: BottleneckSchema.safeParse(d.bottleneck).data ?? null,
        startedAt: iso(d.startedAt),
        finishedAt: iso(d.finishedAt),
        error: d.error,
      })),
    })),
  };
}

type JobRow = Awaited<ReturnType<Db['backupJob']['findFirstOrThrow']>>;
type LastRunRow = { id: string; status: Run['status']; createdAt: Date; finishedAt: Date | null };

/** Loads jobs with their latest run, for the list and the detail. */
async function loadJobs(db: Db, where: { id?: string } = {}) {
  return db.backupJob.findMany({
    where,
    orderBy: { name: 'asc' },
    include: { runs: { orderBy: { createdAt: 'desc' }, take: 1, select: { id: true, status: true, createdAt: true, finishedAt: true } } },
  });
}

export function jobDto(j: JobRow & { runs?: LastRunRow[] }, now = new Date()): Job {
  const last = j.runs?.[0];
  let nextRunAt: string | null = null;
  if (j.enabled && j.schedule && !scheduleProblem(j.schedule)) nextRunAt = nextOccurrences(j.schedule, 1, now)[0]!.toISOString();
  return {
    id: j.id,
    name: j.name,
    vcenterId: j.vcenterId,
    repositoryId: j.repositoryId,
    sources: z.array(JobSourceSchema).catch([]).parse(j.sources),
    transportMode: j.transportMode,
    options: JobOptionsSchema.parse(j.options ?? {}),
    schedule: j.schedule,
    enabled: j.enabled,
    createdAt: j.createdAt.toISOString(),
    updatedAt: j.updatedAt.toISOString(),
    nextRunAt,
    lastRun: last ? { id: last.id, status: last.status, createdAt: last.createdAt.toISOString(), finishedAt: iso(last.finishedAt) } : null,
  };
}

type HistoryRow = {
  job_id: string;
  id: string;
  status: JobHistoryRun['status'];
  kind: JobHistoryRun['kind'];
  trigger: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  bytes_read: bigint;
  bytes_written: bigint;
};

/** From start to finish; null until finished, 0 when it ended without starting (cancelled while queued). */
function durationSeconds(startedAt: Date | null, finishedAt: Date | null): number | null {
  if (!finishedAt) return null;
  return startedAt ? Math.max(0, (finishedAt.getTime() - startedAt.getTime()) / 1000) : 0;
}

/**
 * The latest `limit` runs of job `jobId` (of each job when null), oldest first per job, with bytes summed
 * over their disks: one query, each job's runs read newest first through the (job_id, created_at) index.
 */
async function jobHistories(db: Db, jobId: string | null, limit: number, withBytes: boolean): Promise<HistoryRow[]> {
  const jobs = jobId ? Prisma.sql`SELECT ${jobId}::uuid AS id` : Prisma.sql`SELECT id FROM backup_jobs`;
  const bytes = withBytes
    ? Prisma.sql`LEFT JOIN LATERAL (
        SELECT sum(d.bytes_read) AS bytes_read, sum(d.bytes_written) AS bytes_written
        FROM run_vms v JOIN run_disks d ON d.run_vm_id = v.id WHERE v.run_id = r.id) b ON true`
    : Prisma.sql`LEFT JOIN LATERAL (SELECT 0 AS bytes_read, 0 AS bytes_written) b ON true`;
  return db.$queryRaw<HistoryRow[]>`
    SELECT j.id::text AS job_id, r.id::text AS id, r.status::text AS status, r.kind::text AS kind, r.trigger,
      r.created_at, r.started_at, r.finished_at,
      coalesce(b.bytes_read, 0)::bigint AS bytes_read, coalesce(b.bytes_written, 0)::bigint AS bytes_written
    FROM (${jobs}) j
    CROSS JOIN LATERAL (
      SELECT * FROM job_runs WHERE job_id = j.id ORDER BY created_at DESC, id DESC LIMIT ${limit}) r
    ${bytes}
    ORDER BY j.id, r.created_at ASC, r.id ASC`;
}

function historyRunDto(r: HistoryRow): JobHistoryRun {
  return {
    id: r.id,
    status: r.status,
    kind: r.kind,
    trigger: r.trigger,
    createdAt: r.created_at.toISOString(),
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    durationSeconds: durationSeconds(r.started_at, r.finished_at),
    bytesRead: Number(r.bytes_read),
    bytesWritten: Number(r.bytes_written),
  };
}

function checkSchedule(schedule: string | null | undefined): void {
  const bad = schedule ? scheduleProblem(schedule) : null;
  if (bad) throw new AppError('bad_request', `schedule "${schedule}" is not a valid cron expression: ${bad}`, [{ path: 'schedule', message: bad }]);
}

type VCenterRow = Awaited<ReturnType<Db['vCenter']['findFirstOrThrow']>>;

/**
 * A job may only name VMs and containers its vCenter has now, under the names they have there: each VM is
 * looked up by its instance UUID (which survives re-registration) or else its moref, each container by its
 * moref and kind. Returns the sources as the vCenter knows them (current moref, instance UUID filled in, a
 * container's current name and path); refuses, naming the source, otherwise. A container's exclusions are
 * kept as given (a VM excluded and gone is simply not there). A VM's disks left out must be disks it has, and
 * not all of them.
 */
/** The job's sources checked against the vCenter as it is now (which also renews the overview's copy of it). */
export async function checkJobSources(inventory: InventoryCache, vcenter: VCenterRow, secretKey: Buffer, sources: JobSource[]): Promise<JobSource[]> {
  const { vms, containers, tagsError } = await inventory.listVms(connectionOf(vcenter, secretKey), vcenter.name, { maxAgeMs: 0 }).catch((err: unknown) => {
    if (err instanceof VCenterProblem) throw new AppError('bad_request', `cannot check the job's VMs in vCenter ${vcenter.name}: ${err.message}`, [{ path: 'vcenterId', message: err.kind }]);
    throw err;
  });
  const byMoref = new Map(vms.map((v) => [v.moref, v]));
  const byUuid = new Map(vms.filter((v) => v.instanceUuid).map((v) => [v.instanceUuid!, v]));
  const containerOf = new Map(containers.map((c) => [c.moref, c]));
  return sources.map((src, i): JobSource => {
    const path = `sources.${i}`;
    if (isContainerSource(src)) {
      if (src.kind === 'tag' && tagsError) throw new AppError('bad_request', `cannot check tag ${src.path} in vCenter ${vcenter.name}: its tags could not be read (${tagsError})`, [{ path, message: 'tags_unavailable' }]);
      const c = containerOf.get(src.moref);
      if (!c) throw new AppError('bad_request', `vCenter ${vcenter.name} has no ${src.kind} ${src.moref} (${src.path}): it was removed; choose it again from the inventory`, [{ path, message: 'not_found' }]);
      if (c.kind !== src.kind) throw new AppError('bad_request', `${src.moref} in vCenter ${vcenter.name} is a ${c.kind} (${c.path}), not a ${src.kind}; choose it again from the inventory`, [{ path, message: 'other_kind' }]);
      return { kind: c.kind, moref: c.moref, name: c.name, path: c.path, ...(src.exclude?.length ? { exclude: src.exclude } : {}) };
    }
    const vm = (src.instanceUuid ? byUuid.get(src.instanceUuid) : undefined) ?? byMoref.get(src.moref);
    if (!vm) throw new AppError('bad_request', `vCenter ${vcenter.name} has no VM ${src.moref} (${src.name}): it was removed, or registered again under another id; choose it again from the inventory`, [{ path, message: 'not_found' }]);
    if (src.instanceUuid && vm.instanceUuid !== src.instanceUuid) {
      throw new AppError('bad_request', `${src.moref} in vCenter ${vcenter.name} is now another VM (${vm.name}, instance UUID ${vm.instanceUuid ?? 'unknown'}), not ${src.name} (${src.instanceUuid}); choose it again from the inventory`, [{ path, message: 'other_vm' }]);
    }
    if (vm.name !== src.name) throw new AppError('bad_request', `${vm.moref} in vCenter ${vcenter.name} is named ${vm.name}, not ${src.name}; choose the VM again from the inventory`, [{ path, message: 'name_mismatch' }]);
    // Disks left out: each one the VM has now, and never all of them.
    const excludeDisks = [...new Set(src.excludeDisks ?? [])].sort((a, b) => a - b);
    const unknown = excludeDisks.find((k) => !vm.disks.some((d) => d.key === k));
    if (unknown !== undefined) throw new AppError('bad_request', `VM ${vm.name} has no disk ${unknown}; its disks are ${vm.disks.map((d) => `${d.key} (${d.label})`).join(', ') || 'none'}`, [{ path: `${path}.excludeDisks`, message: 'no_such_disk' }]);
    if (excludeDisks.length > 0 && excludeDisks.length === vm.disks.length) throw new AppError('bad_request', `VM ${vm.name}: choose the VM's disks to leave out, not all of them; to skip the VM, remove it`, [{ path: `${path}.excludeDisks`, message: 'all_disks' }]);
    return { moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}), ...(excludeDisks.length > 0 ? { excludeDisks } : {}) };
  });
}

export async function jobRoutes(app: FastifyInstance, deps: { db: Db; audit: AuditLog; credentials: Credentials; queue: WorkQueue; events: EventBus; inventory: InventoryCache; secretKey: Buffer }): Promise<void> {
  const { db, audit, queue } = deps;

  app.get('/jobs', { ...viewer, schema: { response: { 200: z.array(JobSchema) } } }, async () => (await loadJobs(db)).map((j) => jobDto(j)));

  /** Checks a schedule the way create and update do, and says when it would run next. */
  app.post('/schedules/preview', { ...viewer, schema: { body: SchedulePreviewRequestSchema, response: { 200: SchedulePreviewSchema } } }, async (request): Promise<SchedulePreview> => {
    const { schedule } = parse(SchedulePreviewRequestSchema, request.body);
    checkSchedule(schedule);
    return { schedule, timeZone: applianceTimeZone(), next: nextOccurrences(schedule, 3).map((d) => d.toISOString()) };
  });

  app.post('/jobs', { ...operator, schema: { body: JobCreateSchema, response: { 201: JobSchema } } }, async (request, reply) => {
    const body = parse(JobCreateSchema, request.body);
    const vcenter = await db.vCenter.findUnique({ where: { id: body.vcenterId } });
    if (!vcenter) throw new AppError('bad_request', 'no such vCenter', [{ path: 'vcenterId', message: 'unknown' }]);
    if (!(await db.repository.findUnique({ where: { id: body.repositoryId } }))) throw new AppError('bad_request', 'no such repository', [{ path: 'repositoryId', message: 'unknown' }]);
    if (await db.backupJob.findUnique({ where: { name: body.name } })) throw new AppError('conflict', `a job named ${body.name} already exists`);
    checkSchedule(body.schedule);
    // Last, as it asks the vCenter.
    const sources = await checkJobSources(deps.inventory, vcenter, deps.secretKey, body.sources);
    const job = await db.backupJob.create({
      data: { name: body.name, vcenterId: body.vcenterId, repositoryId: body.repositoryId, sources, transportMode: body.transportMode, options: JobOptionsSchema.parse(body.options), schedule: body.schedule, enabled: body.enabled },
    });
    await audit.record({ actor: currentUser(request).username, action: 'job.create', subject: job.name, ip: request.ip });
    reply.code(201);
    return jobDto(job);
  });

  /** Every job's latest runs (status and duration), oldest first: the bars of the Jobs list, in one query. */
  app.get('/jobs/history', { ...viewer, schema: { querystring: JobsHistoryQuerySchema, response: { 200: JobsHistorySchema } } }, async (request): Promise<JobsHistory> => {
    const { limit } = parse(JobsHistoryQuerySchema, request.query);
    const [jobs, rows] = await Promise.all([db.backupJob.findMany({ select: { id: true }, orderBy: { name: 'asc' } }), jobHistories(db, null, limit, false)]);
    const byJob = new Map(jobs.map((j): [string, JobsHistory[number]] => [j.id, { jobId: j.id, runs: [] }]));
    for (const r of rows) {
      const { id, status, createdAt, startedAt, durationSeconds } = historyRunDto(r);
      byJob.get(r.job_id)?.runs.push({ id, status, createdAt, startedAt, durationSeconds });
    }
    return [...byJob.values()];
  });

  /** A job's latest runs, oldest first, with their durations and bytes: the job page's history chart. */
  app.get('/jobs/:id/history', { ...viewer, schema: { params: Id, querystring: JobHistoryQuerySchema, response: { 200: JobHistorySchema } } }, async (request): Promise<JobHistory> => {
    const { id } = parse(Id, request.params);
    const { limit } = parse(JobHistoryQuerySchema, request.query);
    if (!(await db.backupJob.findUnique({ where: { id }, select: { id: true } }))) throw new AppError('not_found', 'no such job');
    return { jobId: id, runs: (await jobHistories(db, id, limit, true)).map(historyRunDto) };
  });

  app.get('/jobs/:id', { ...viewer, schema: { params: Id, response: { 200: JobSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const [job] = await loadJobs(db, { id });
    if (!job) throw new AppError('not_found', 'no such job');
    return jobDto(job);
  });

  app.patch('/jobs/:id', { ...operator, schema: { params: Id, body: JobUpdateSchema, response: { 200: JobSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const body = parse(JobUpdateSchema, request.body);
    const job = await db.backupJob.findUnique({ where: { id } });
    if (!job) throw new AppError('not_found', 'no such job');
    const active = await db.jobRun.findFirst({ where: { jobId: id, status: { in: ['queued', 'running'] } } });
    const busyFields = (['vcenterId', 'repositoryId', 'sources', 'transportMode', 'options'] as const).filter((k) => body[k] !== undefined);
    if (active && busyFields.length > 0) {
      throw new AppError('conflict', `job ${job.name} is running (run ${active.id}); change ${busyFields.join(', ')} after it finishes, or cancel it`);
    }
    const vcenter = await db.vCenter.findUnique({ where: { id: body.vcenterId ?? job.vcenterId } });
    if (!vcenter) throw new AppError('bad_request', 'no such vCenter', [{ path: 'vcenterId', message: 'unknown' }]);
    if (body.repositoryId && !(await db.repository.findUnique({ where: { id: body.repositoryId } }))) throw new AppError('bad_request', 'no such repository', [{ path: 'repositoryId', message: 'unknown' }]);
    if (body.name && body.name !== job.name && (await db.backupJob.findUnique({ where: { name: body.name } }))) throw new AppError('conflict', `a job named ${body.name} already exists`);
    checkSchedule(body.schedule);
    // New sources, or the same ones in another vCenter, are checked there (last, as it asks the vCenter).
    const sources = body.sources !== undefined || body.vcenterId !== undefined ? await checkJobSources(deps.inventory, vcenter, deps.secretKey, body.sources ?? z.array(JobSourceSchema).parse(job.sources)) : undefined;
    // Keeping fewer restore points, or shortening (or ending) the time they cannot be deleted, is as
    // destructive as deleting them.
    const retentionBefore = JobOptionsSchema.safeParse(job.options).data?.retention;
    const lowered = body.options && retentionBefore ? retentionLowered(retentionBefore, body.options.retention) : [];
    if (lowered.length > 0) {
      await deps.credentials.reauthenticate(request, 'job.retention-lowered', job.name);
      await audit.record({
        actor: currentUser(request).username,
        action: 'job.retention-lowered',
        subject: job.name,
        detail: Object.fromEntries(lowered.map((l) => [l.field, { from: l.from, to: l.to }])),
        ip: request.ip,
      });
    }
    await db.backupJob.update({
      where: { id },
      data: {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.vcenterId !== undefined ? { vcenterId: body.vcenterId } : {}),
        ...(body.repositoryId !== undefined ? { repositoryId: body.repositoryId } : {}),
        ...(sources !== undefined ? { sources } : {}),
        ...(body.transportMode !== undefined ? { transportMode: body.transportMode } : {}),
        ...(body.options !== undefined ? { options: body.options } : {}),
        // A new schedule starts counting from now: occurrences before the change are not run.
        ...(body.schedule !== undefined ? { schedule: body.schedule, lastScheduledAt: body.schedule ? new Date() : null } : {}),
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
        // Re-enabling does not start the occurrences missed while disabled.
        ...(body.enabled === true && !job.enabled && body.schedule === undefined ? { lastScheduledAt: new Date() } : {}),
      },
    });
    await audit.record({ actor: currentUser(request).username, action: 'job.update', subject: body.name ?? job.name, detail: { fields: Object.keys(body).filter((k) => k !== 'currentPassword') }, ip: request.ip });
    const [updated] = await loadJobs(db, { id });
    return jobDto(updated!);
  });

  app.delete('/jobs/:id', { ...operator, schema: { params: Id, response: { 200: OkSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const job = await db.backupJob.findUnique({ where: { id } });
    if (!job) throw new AppError('not_found', 'no such job');
    const active = await db.jobRun.findFirst({ where: { jobId: id, status: { in: ['queued', 'running'] } } });
    if (active) throw new AppError('conflict', `job ${job.name} is running (run ${active.id}); cancel it or wait for it to finish before deleting the job`);
    await db.backupJob.delete({ where: { id } });
    await audit.record({ actor: currentUser(request).username, action: 'job.delete', subject: job.name, ip: request.ip });
    return { ok: true };
  });

  /** Run now: the run and one item per VM are rows first; the queue carries the item ids. */
  app.post('/jobs/:id/run', { ...operator, schema: { params: Id, response: { 202: RunSchema } } }, async (request, reply) => {
    const { id } = parse(Id, request.params);
    const { job, run } = await startJobRun(db, queue, id, 'manual', currentUser(request).username, { inventory: deps.inventory, secretKey: deps.secretKey });
    await audit.record({ actor: currentUser(request).username, action: 'job.run', subject: job.name, detail: { runId: run.id }, ip: request.ip });
    reply.code(202);
    return runDto((await loadRun(db, run.id))!);
  });

  app.get('/runs', { ...viewer, schema: { querystring: RunListQuerySchema, response: { 200: z.array(RunSchema) } } }, async (request) => {
    const q = parse(RunListQuerySchema, request.query);
    const runs = await db.jobRun.findMany({
      where: { ...(q.jobId ? { jobId: q.jobId } : {}), ...(q.status ? { status: q.status } : {}) },
      orderBy: { createdAt: 'desc' },
      take: q.limit,
      include: { retriedBy: { select: { id: true } }, vms: { omit: { log: !q.logs }, include: { disks: { orderBy: { deviceKey: 'asc' } } }, orderBy: { vmName: 'asc' } } },
    });
    return runs.map((r) => runDto({ ...r, vms: r.vms.map((v) => ({ ...v, log: 'log' in v ? v.log : [] })) }));
  });

  app.get('/runs/:id', { ...viewer, schema: { params: Id, response: { 200: RunDetailSchema } } }, async (request): Promise<RunDetail> => {
    const { id } = parse(Id, request.params);
    const run = await loadRun(db, id);
    if (!run) throw new AppError('not_found', 'no such run');
    return { ...runDto(run), samples: await runSamples(db, run.vms.flatMap((v) => v.disks.map((d) => d.id))) };
  });

  app.post('/runs/:id/cancel', { ...operator, schema: { params: Id, response: { 200: OkSchema } } }, async (request) => {
    const { id } = parse(Id, request.params);
    const run = await db.jobRun.findUnique({ where: { id } });
    if (!run) throw new AppError('not_found', 'no such run');
    if (!['queued', 'running'].includes(run.status)) throw new AppError('conflict', `run is already ${run.status}`);
    await db.jobRun.update({ where: { id }, data: { cancelRequested: true } });
    await deps.events.publish({ type: 'run.cancel', runId: id });
    await audit.record({ actor: currentUser(request).username, action: 'run.cancel', subject: id, ip: request.ip });
    return { ok: true };
  });
}
