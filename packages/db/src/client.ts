import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.ts';

export { PrismaClient, Prisma } from './generated/client.ts';
export type * from './generated/models.ts';
export * from './generated/enums.ts';

export type Db = PrismaClient;

/** A Prisma client over node-postgres (no engine binary). */
export function createDb(databaseUrl: string, opts: { max?: number; connectTimeoutMs?: number } = {}): Db {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
  });
  return new PrismaClient({ adapter });
}
