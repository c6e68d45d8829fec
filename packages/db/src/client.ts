import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.ts';

export { PrismaClient, Prisma } from './generated/client.ts';
export type * from './generated/models.ts';
export * from './generated/enums.ts';

export type Db = PrismaClient;

/** The columns holding secrets sealed under the appliance key. */
const SEALED_COLUMNS = {
  vCenter: { passwordSealed: true },
  repository: { passphraseSealed: true, sftpKeySealed: true, s3SecretSealed: true },
  transporter: { sshKeySealed: true },
  notificationTarget: { secretSealed: true },
} as const;

/**
 * A Prisma client over node-postgres (no engine binary). The URL's sslmode and
 * sslrootcert apply (node-postgres reads them: verify-full checks the CA and the host name).
 * `sealedColumns: false` never selects the sealed columns (they read as undefined): for a
 * remote Transporter, whose database role may not read them.
 */
export function createDb(databaseUrl: string, opts: { max?: number; connectTimeoutMs?: number; sealedColumns?: boolean } = {}): Db {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
  });
  // The omitted fields stay in the type (code that needs them runs where they are read).
  if (opts.sealedColumns === false) return new PrismaClient({ adapter, omit: SEALED_COLUMNS }) as unknown as Db;
  return new PrismaClient({ adapter });
}
