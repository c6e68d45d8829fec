/**
 * What the Director hands to a remote Transporter: the addresses it reaches PostgreSQL and Redis at
 * (an admin setting), and its env file with logins of its own (services/transporter-access.ts).
 */
import { TransporterEndpointsSchema, type TransporterEndpoints } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import { TLS_CA_FILE, type TransporterBundle } from '@vaultline/remote';
import { AppError } from '../errors.ts';
import type { TransporterCredentials } from './transporter-access.ts';

export const ENDPOINTS_SETTING = 'transporter.endpoints';

/** What the Director hands to remote Transporters, and where it gets the bundle. */
export interface RemoteTransporterConfig {
  /** The appliance version: the install folder's name; an upgrade redeploys when it (or the bundle) changed. */
  version: string;
  bundle: () => Promise<TransporterBundle>;
  /** The Director's own URLs (owner login, Redis default user); remote Transporters get other logins. */
  databaseUrl: string;
  redisUrl: string;
  /** The CA certificate (PEM file) that signed PostgreSQL's and Redis's TLS certificates; without it nothing is deployed. */
  tlsCaFile?: string;
  namespace: string;
  heartbeatMs: number;
  logLevel?: string;
  /** How long deploy and restart wait for the first heartbeat of the started process. */
  onlineTimeoutMs?: number;
}

/** The configuration, or a 503 saying this Director cannot deploy (no bundle source). */
export function requireRemoteConfig(remote: RemoteTransporterConfig | undefined): RemoteTransporterConfig {
  if (!remote) throw new AppError('service_unavailable', 'remote Transporters are not available in this Director (no bundle source configured)');
  return remote;
}

export async function transporterEndpoints(db: Db): Promise<TransporterEndpoints> {
  const row = await db.setting.findUnique({ where: { key: ENDPOINTS_SETTING } });
  return TransporterEndpointsSchema.parse(row?.value ?? {});
}

/** The Director's URL with the host (and port, when given) replaced by the address remote Transporters use. */
export function urlForTransporters(url: string, address: string | null): string {
  if (!address) return url;
  const u = new URL(url);
  if (/:\d+$/.test(address)) u.host = address;
  else u.hostname = address;
  return u.href;
}

/**
 * A remote Transporter's env file: its own database role and Redis user, over TLS verified against
 * the CA in its install folder (sslmode=verify-full, rediss://), its own private key; no appliance key.
 */
export function remoteTransporterEnv(
  c: Pick<RemoteTransporterConfig, 'databaseUrl' | 'redisUrl' | 'namespace' | 'heartbeatMs' | 'logLevel'>,
  ep: TransporterEndpoints,
  t: { id: string; name: string; installDir: string },
  cred: TransporterCredentials,
): Record<string, string> {
  const caFile = `${t.installDir.replace(/\/+$/, '')}/${TLS_CA_FILE}`;
  const database = new URL(urlForTransporters(c.databaseUrl, ep.databaseAddress));
  database.username = cred.user;
  database.password = cred.dbPassword;
  for (const p of ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat']) database.searchParams.delete(p);
  database.searchParams.set('sslmode', 'verify-full');
  database.searchParams.set('sslrootcert', caFile);
  const redis = new URL(urlForTransporters(c.redisUrl, ep.redisAddress));
  redis.protocol = 'rediss:';
  redis.username = cred.user;
  redis.password = cred.redisPassword;
  redis.searchParams.set('tls_ca_file', caFile);
  return {
    NODE_ENV: 'production',
    DATABASE_URL: database.href,
    REDIS_URL: redis.href,
    VAULTLINE_REDIS_NAMESPACE: c.namespace,
    VAULTLINE_HEARTBEAT_MS: String(c.heartbeatMs),
    VAULTLINE_TRANSPORTER_ID: t.id,
    VAULTLINE_TRANSPORTER_NAME: t.name,
    VAULTLINE_TRANSPORTER_KEY: cred.privateKey,
    VAULTLINE_DATA_DIR: `${t.installDir}/data`,
    VAULTLINE_LOG_LEVEL: c.logLevel ?? 'info',
    TMPDIR: `${t.installDir}/tmp`,
  };
}
