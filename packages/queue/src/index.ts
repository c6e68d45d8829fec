export { connectRedis, pingRedis, redisEndpoint, redisReady } from './redis.ts';
export type { Redis } from './redis.ts';
export { TransporterRegistry } from './transporter-registry.ts';
export { WorkQueue, WorkConsumer, EventBus, PermanentError } from './work-queue.ts';
export type { BackupVmHandler, WorkHandlers, WorkQueueOptions, WorkerOptions } from './work-queue.ts';
