/**
 * The backup work queue. Postgres holds the run and its items; the queue only
 * carries an item id, used as the BullMQ jobId so a second enqueue of the same
 * item is dropped. Payloads are re-validated on arrival. A handler throwing
 * PermanentError fails the job at once (BullMQ's UnrecoverableError); other
 * errors are retried with backoff.
 */
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { BackupVmJobSchema, JOB_NAMES, RunEventSchema, WORK_ATTEMPTS, type BackupVmJob, type RunEvent } from '@vaultline/contracts';
import { redisEndpoint } from './redis.ts';

export class PermanentError extends Error {
  override name = 'PermanentError';
}

const QUEUE = 'vm-work';

function bullConnection(url: string): Redis {
  // BullMQ requires maxRetriesPerRequest=null on worker connections.
  const endpoint = redisEndpoint(url);
  const r = new Redis(endpoint.url, { ...endpoint.options, maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: (t) => Math.min(t * 200, 2000) });
  r.on('error', () => undefined);
  return r;
}

export interface WorkQueueOptions {
  redisUrl: string;
  namespace?: string;
}

export class WorkQueue {
  private readonly queue: Queue;
  private readonly connection: Redis;

  constructor(private readonly opts: WorkQueueOptions) {
    this.connection = bullConnection(opts.redisUrl);
    this.queue = new Queue(QUEUE, { connection: this.connection, prefix: opts.namespace ?? 'vaultline' });
  }

  /** Enqueue one VM of a run; enqueuing the same run item twice is a no-op. */
  async enqueueBackupVm(payload: BackupVmJob, opts: { priority?: number } = {}): Promise<void> {
    await this.enqueue(JOB_NAMES.backupVm, payload, opts);
  }

  /** Enqueue a restore (its run item holds the request); restores go before waiting backups. */
  async enqueueRestore(payload: BackupVmJob): Promise<void> {
    await this.enqueue(JOB_NAMES.restoreVm, payload, { priority: 1 });
  }

  /** Enqueue repository maintenance (verify, GC); its run item holds the request. Behind restores, ahead of backups. */
  async enqueueMaintenance(payload: BackupVmJob): Promise<void> {
    await this.enqueue(JOB_NAMES.maintainRepository, payload, { priority: 2, attempts: 1 });
  }

  private async enqueue(name: string, payload: BackupVmJob, opts: { priority?: number; attempts?: number }): Promise<void> {
    const data = BackupVmJobSchema.parse(payload);
    await this.queue.add(name, data, {
      jobId: data.runVmId,
      attempts: opts.attempts ?? WORK_ATTEMPTS,
      backoff: { type: 'exponential', delay: 5_000 },
      removeOnComplete: { age: 7 * 24 * 3600 },
      removeOnFail: { age: 30 * 24 * 3600 },
      ...(opts.priority ? { priority: opts.priority } : {}),
    });
  }

  /** Where the queue has item `runVmId`: BullMQ's state of its job, or null when the queue has no such job. */
  async state(runVmId: string): Promise<string | null> {
    const job = await this.queue.getJob(runVmId);
    if (!job) return null;
    const state = await job.getState();
    return state === 'unknown' ? null : state;
  }

  /**
   * Takes item `runVmId` out of the queue unless a worker holds it (BullMQ does not remove a locked job):
   * true when the queue no longer has it (also when it never had), false when a Transporter is running it.
   */
  async remove(runVmId: string): Promise<boolean> {
    return (await this.queue.remove(runVmId)) === 1;
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed');
  }

  /** Removes the queue and all its jobs (tests, and uninstall). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.connection.disconnect();
  }
}

export interface WorkerOptions extends WorkQueueOptions {
  concurrency: number;
  /** A job whose worker stopped renewing its lock this long ago is taken over by another (default 30 s). */
  lockMs?: number;
  /** Called for a job whose payload does not validate (logged, never retried). */
  onInvalid?: (jobId: string | undefined, error: string) => void;
}

export type BackupVmHandler = (payload: BackupVmJob, ctx: { attempt: number; jobId: string }) => Promise<void>;
/** One handler per job name (backups, restores, repository maintenance). */
export type WorkHandlers = { backup: BackupVmHandler; restore?: BackupVmHandler; maintenance?: BackupVmHandler };

export class WorkConsumer {
  private readonly worker: Worker;
  private readonly connection: Redis;

  constructor(handlers: BackupVmHandler | WorkHandlers, opts: WorkerOptions) {
    const table: WorkHandlers = typeof handlers === 'function' ? { backup: handlers } : handlers;
    this.connection = bullConnection(opts.redisUrl);
    this.worker = new Worker(
      QUEUE,
      async (job: Job) => {
        const byName: Record<string, BackupVmHandler | undefined> = { [JOB_NAMES.backupVm]: table.backup, [JOB_NAMES.restoreVm]: table.restore, [JOB_NAMES.maintainRepository]: table.maintenance };
        const handler = byName[job.name];
        if (!handler) throw new UnrecoverableError(`no handler for job ${job.name}`);
        const parsed = BackupVmJobSchema.safeParse(job.data);
        if (!parsed.success) {
          opts.onInvalid?.(job.id, parsed.error.message);
          throw new UnrecoverableError(`invalid payload: ${parsed.error.message}`);
        }
        try {
          await handler(parsed.data, { attempt: job.attemptsMade + 1, jobId: job.id ?? parsed.data.runVmId });
        } catch (err) {
          if (err instanceof PermanentError) throw new UnrecoverableError(err.message);
          throw err;
        }
      },
      { connection: this.connection, prefix: opts.namespace ?? 'vaultline', concurrency: opts.concurrency, autorun: true, lockDuration: opts.lockMs ?? 30_000, stalledInterval: opts.lockMs ?? 30_000, maxStalledCount: 2 },
    );
    this.worker.on('error', () => undefined);
  }

  async close(): Promise<void> {
    await this.worker.close();
    this.connection.disconnect();
  }
}

/** Live events (progress, phase changes, logs) on a Redis channel, relayed by the Director to browsers. */
export class EventBus {
  private readonly pub: Redis;
  private sub: Redis | null = null;
  private readonly channel: string;

  constructor(redisUrl: string, namespace = 'vaultline') {
    const endpoint = redisEndpoint(redisUrl);
    this.pub = new Redis(endpoint.url, { ...endpoint.options, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.pub.on('error', () => undefined);
    this.channel = `${namespace}:events`;
    this.redisUrl = redisUrl;
  }

  private readonly redisUrl: string;

  async publish(event: RunEvent): Promise<void> {
    await this.pub.publish(this.channel, JSON.stringify(event)).catch(() => undefined);
  }

  /** Calls `onEvent` with every event that matches the contract; anything else on the channel is dropped. */
  async subscribe(onEvent: (event: RunEvent) => void): Promise<void> {
    const endpoint = redisEndpoint(this.redisUrl);
    this.sub = new Redis(endpoint.url, { ...endpoint.options, maxRetriesPerRequest: null });
    this.sub.on('error', () => undefined);
    this.sub.on('message', (_ch, message) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(message);
      } catch {
        return;
      }
      const event = RunEventSchema.safeParse(parsed);
      if (event.success) onEvent(event.data);
    });
    await this.sub.subscribe(this.channel);
  }

  async close(): Promise<void> {
    this.pub.disconnect();
    this.sub?.disconnect();
  }
}
