/**
 * Least privilege for remote Transporters (docs/SECURITY.md, "Remote Transporters").
 *
 * A remote Transporter never gets the appliance key nor the Director's own
 * database login. On every deploy the Director (as the database owner and the
 * Redis default user) gives it:
 *   - a PostgreSQL role vl_t_<id> with a new random password, member of
 *     vl_transporters, which holds GRANTs on exactly the tables the
 *     Transporter's code touches, and no sealed column;
 *   - a Redis ACL user of the same name limited to the namespace's keys and
 *     channels, without admin or dangerous commands;
 *   - a new X25519 key pair: the Director keeps the public key and seals the
 *     vCenter passwords and repository keys to it (transporter_secrets, whose
 *     rows its role sees only for itself).
 * Removing it terminates its sessions and drops the role and the user.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { SECRET_LABELS, parseTransporterLocation } from '@vaultline/appliance';
import { generateRecipientKeyPair, openSecret, sealTo } from '@vaultline/config';
import type { Db } from '@vaultline/db';
import type { Redis } from '@vaultline/queue';

/** The group role that holds the Transporters' privileges (each vl_t_<id> is a member). */
export const TRANSPORTER_GROUP = 'vl_transporters';

/**
 * What the Transporter's code reads and writes (apps/transporter, and @vaultline/appliance's
 * retention it runs after a backup). Anything not listed here is out of its reach: users,
 * sessions, audit_events, settings, notifications, drill_jobs, flr_journal.
 */
const TABLE_GRANTS: ReadonlyArray<readonly [table: string, privileges: string]> = [
  ['job_runs', 'SELECT, UPDATE'],
  ['run_vms', 'SELECT, UPDATE'],
  ['backup_jobs', 'SELECT'],
  ['copy_jobs', 'SELECT'],
  ['run_disks', 'SELECT, INSERT, UPDATE'],
  ['restore_points', 'SELECT, INSERT, UPDATE, DELETE'],
  ['cleanup_journal', 'SELECT, INSERT, UPDATE'],
  // Row-level security: a role sees only its own rows (migration 20261205130000).
  ['transporter_secrets', 'SELECT'],
  // The charts' samples: a run's throughput, a repository's size, its own load (row-level security: its rows only).
  ['run_disk_samples', 'SELECT, INSERT, DELETE'],
  ['repository_samples', 'SELECT, INSERT, DELETE'],
  ['transporter_samples', 'SELECT, INSERT, DELETE'],
  // Transfer: its certificate request and what it serves (row-level security: its own row only).
  ['transporters', 'UPDATE (tls_csr, serve_address, served_repositories)'],
  // Instant recovery: retention keeps the points VMs run from; one serving NFS claims requests and records its steps
  // (never the name, the restore point or the placement the operator chose).
  ['instant_recoveries', 'SELECT, UPDATE (transporter_id, state, detail, error, datastore_name, migrated_to, host_name, pending_action, pending_datastore, updated_at)'],
];

/** The sequences behind the tables it inserts into with generated ids. */
const SEQUENCE_GRANTS = ['run_disk_samples_id_seq', 'repository_samples_id_seq', 'transporter_samples_id_seq'];

/** Tables it reads only some columns of: every column but the sealed ones (or only the ones named). */
const COLUMN_GRANTS: ReadonlyArray<{ table: string; except?: string[]; only?: string[] }> = [
  { table: 'vcenters', except: ['password_sealed'] },
  { table: 'repositories', except: ['passphrase_sealed', 'sftp_key_sealed', 's3_secret_sealed'] },
  // Whose cleanup journal it may adopt (Transporters silent for long); transfer: whom to reach where, and which certificate to pin.
  { table: 'transporters', only: ['id', 'last_heartbeat', 'tls_cert', 'tls_fingerprint', 'serve_address', 'served_repositories'] },
  // The Transporter CA's certificate, never its key.
  { table: 'transfer_ca', only: ['id', 'cert_pem'] },
];

export function transporterRole(id: string): string {
  if (!/^[a-z0-9-]{1,48}$/.test(id)) throw new Error(`bad Transporter id ${id}`);
  return `vl_t_${id.replace(/-/g, '_')}`;
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677), so
 * the plain password never reaches the server (nor its statement log).
 */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** The group role and its GRANTs (again on every deploy: a newer appliance may have added columns). */
async function grantGroup(db: Db): Promise<void> {
  await db.$executeRawUnsafe(`DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${TRANSPORTER_GROUP}') THEN CREATE ROLE ${TRANSPORTER_GROUP} NOLOGIN; END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$`);
  for (const [table, privileges] of TABLE_GRANTS) await db.$executeRawUnsafe(`GRANT ${privileges} ON ${ident(table)} TO ${TRANSPORTER_GROUP}`);
  for (const seq of SEQUENCE_GRANTS) await db.$executeRawUnsafe(`GRANT USAGE ON SEQUENCE ${ident(seq)} TO ${TRANSPORTER_GROUP}`);
  for (const g of COLUMN_GRANTS) {
    const columns = (
      await db.$queryRaw<Array<{ column_name: string }>>`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ${g.table} ORDER BY ordinal_position`
    )
      .map((c) => c.column_name)
      .filter((c) => (g.only ? g.only.includes(c) : !g.except?.includes(c)));
    // A column that was readable and became sealed must not stay readable.
    await db.$executeRawUnsafe(`REVOKE SELECT ON ${ident(g.table)} FROM ${TRANSPORTER_GROUP}`);
    await db.$executeRawUnsafe(`GRANT SELECT (${columns.map(ident).join(', ')}) ON ${ident(g.table)} TO ${TRANSPORTER_GROUP}`);
  }
}

/** Closes every session of the role (after its password changed, or before it is dropped). */
async function terminateSessions(db: Db, role: string): Promise<void> {
  await db.$queryRaw`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${role} AND pid <> pg_backend_pid()`;
}

export interface TransporterCredentials {
  /** PostgreSQL role and Redis ACL user (the same name). */
  user: string;
  dbPassword: string;
  redisPassword: string;
  /** The X25519 key pair; the public half is stored with the Transporter, the private half goes to it only. */
  publicKey: string;
  privateKey: string;
}

/**
 * Creates (first deploy) or rotates (redeploy) the Transporter's role, Redis user
 * and key pair; the old passwords stop working and their connections are closed.
 */
export async function provisionTransporter(deps: { db: Db; redis: Redis; secretKey: Buffer; namespace: string }, transporterId: string): Promise<TransporterCredentials> {
  const { db, redis } = deps;
  const user = transporterRole(transporterId);
  const dbPassword = randomBytes(24).toString('hex');
  const redisPassword = randomBytes(24).toString('hex');
  await grantGroup(db);
  const verifier = scramVerifier(dbPassword);
  const exists = (await db.$queryRaw<unknown[]>`SELECT 1 FROM pg_roles WHERE rolname = ${user}`).length > 0;
  await db.$executeRawUnsafe(
    exists
      ? `ALTER ROLE ${ident(user)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${verifier}'`
      : `CREATE ROLE ${ident(user)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${verifier}' IN ROLE ${TRANSPORTER_GROUP}`,
  );
  if (exists) await terminateSessions(db, user);

  // Keys and channels of the namespace only; BullMQ needs its Lua scripts (EVALSHA, SCRIPT LOAD),
  // ioredis and BullMQ ask INFO for the server version.
  await redis.call('ACL', 'SETUSER', user, 'reset', 'on', `>${redisPassword}`, `~${deps.namespace}:*`, `&${deps.namespace}:*`, '+@all', '-@admin', '-@dangerous', '+info');
  await redis.call('CLIENT', 'KILL', 'USER', user).catch(() => undefined);
  await saveAcl(redis);

  const keys = generateRecipientKeyPair();
  await db.transporter.update({ where: { id: transporterId }, data: { publicKey: keys.publicKey } });
  await sealSecretsForTransporters(db, deps.secretKey, transporterId);
  return { user, dbPassword, redisPassword, publicKey: keys.publicKey, privateKey: keys.privateKey };
}

/** Revokes everything provisionTransporter gave: sessions closed, role and Redis user dropped. */
export async function revokeTransporter(deps: { db: Db; redis: Redis }, transporterId: string): Promise<void> {
  const user = transporterRole(transporterId);
  if ((await deps.db.$queryRaw<unknown[]>`SELECT 1 FROM pg_roles WHERE rolname = ${user}`).length > 0) {
    await deps.db.$executeRawUnsafe(`ALTER ROLE ${ident(user)} NOLOGIN`);
    await terminateSessions(deps.db, user);
    await deps.db.$executeRawUnsafe(`DROP ROLE IF EXISTS ${ident(user)}`);
  }
  // DELUSER also closes the user's connections.
  await deps.redis.call('ACL', 'DELUSER', user);
  await saveAcl(deps.redis);
  await deps.db.transporterSecret.deleteMany({ where: { transporterId } });
}

/** Persists the ACL when Redis keeps it in an aclfile (the appliance's does); without one it lives until Redis restarts. */
async function saveAcl(redis: Redis): Promise<void> {
  await redis.call('ACL', 'SAVE').catch((err: unknown) => {
    if (!/not configured to use an ACL file/i.test((err as Error).message)) throw err;
  });
}

/**
 * Seals every vCenter password and repository passphrase and SSH key to each remote
 * Transporter's public key (or to one Transporter's), replacing what it had. Called on
 * deploy and whenever the Director stores such a secret.
 */
export async function sealSecretsForTransporters(db: Db, secretKey: Buffer, onlyId?: string): Promise<void> {
  const transporters = await db.transporter.findMany({ where: { publicKey: { not: null }, ...(onlyId ? { id: onlyId } : {}) }, select: { id: true, publicKey: true } });
  if (!transporters.length) return;
  const [vcenters, repositories] = await Promise.all([
    db.vCenter.findMany({ select: { id: true, passwordSealed: true } }),
    db.repository.findMany({ select: { id: true, kind: true, location: true, passphraseSealed: true, sftpKeySealed: true, s3SecretSealed: true } }),
  ]);
  // A Transporter serving a repository (transfer) stores its sealed bytes only: it never gets its passphrase.
  const servedBy = new Map(repositories.filter((r) => r.kind === 'transporter').map((r) => [r.id, parseTransporterLocation(r.location).transporterId]));
  const plain: Array<{ label: string; refId: string; value: string }> = [];
  for (const v of vcenters) plain.push({ label: SECRET_LABELS.vcenterPassword, refId: v.id, value: openSecret(secretKey, SECRET_LABELS.vcenterPassword, v.passwordSealed) });
  for (const r of repositories) {
    if (r.passphraseSealed) plain.push({ label: SECRET_LABELS.repositoryPassphrase, refId: r.id, value: openSecret(secretKey, SECRET_LABELS.repositoryPassphrase, r.passphraseSealed) });
    if (r.sftpKeySealed) plain.push({ label: SECRET_LABELS.repositorySshKey, refId: r.id, value: openSecret(secretKey, SECRET_LABELS.repositorySshKey, r.sftpKeySealed) });
    if (r.s3SecretSealed) plain.push({ label: SECRET_LABELS.repositoryS3Secret, refId: r.id, value: openSecret(secretKey, SECRET_LABELS.repositoryS3Secret, r.s3SecretSealed) });
  }
  for (const t of transporters) {
    const rows = plain.filter((p) => servedBy.get(p.refId) !== t.id).map((p) => ({ transporterId: t.id, label: p.label, refId: p.refId, sealed: sealTo(t.publicKey!, p.label, p.value) }));
    await db.$transaction([db.transporterSecret.deleteMany({ where: { transporterId: t.id } }), db.transporterSecret.createMany({ data: rows })]);
  }
}
