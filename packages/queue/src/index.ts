export { connectRedis, pingRedis, redisReady } from './redis.ts';
export type { Redis } from './redis.ts';
export { TransporterRegistry } from './transporter-registry.ts';
