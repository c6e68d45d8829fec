/**
 * Least privilege for remote Transporters, against a real PostgreSQL and Redis
 * that speak TLS (throwaway instances configured as the appliance's): the
 * credentials a deploy produces reach only what the Transporter needs, only over
 * TLS; a redeploy rotates them, a removal revokes them.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SECRET_LABELS, servedPoints } from '@vaultline/appliance';
import { openSealedTo, recipientPublicKey, sealSecret } from '@vaultline/config';
import { applyMigrations, createDb, MIGRATIONS_DIR, pingDatabase, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { connectRedis, EventBus, pingRedis, redisReady, WorkConsumer, WorkQueue, type Redis } from '@vaultline/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteTransporterEnv } from '../src/services/remote-transporter-env.ts';
import { provisionTransporter, revokeTransporter, transporterRole, type TransporterCredentials } from '../src/services/transporter-access.ts';
import { startTlsServices, type TlsServices } from '@vaultline/db/tls-services';

const KEY = Buffer.alloc(32, 7);
const NS = `vlacc${randomUUID().slice(0, 8)}`;

describe('remote Transporter credentials (real PostgreSQL and Redis over TLS)', () => {
  let tls: TlsServices;
  let database: TestDatabase;
  let db: Db;
  let redis: Redis;
  let vcenterId = '';
  let repositoryId = '';
  let runVmId = '';
  const installDir = '/opt/vaultline-transporter';
  let cred: TransporterCredentials;
  let env: Record<string, string>;

  /** The URLs as the remote gets them, with the CA path of this machine instead of its install folder. */
  const local = (url: string) => url.replaceAll(encodeURIComponent(`${installDir}/tls-ca.pem`), encodeURIComponent(tls.caFile));
  const provision = async (id: string) => {
    const c = await provisionTransporter({ db, redis, secretKey: KEY, namespace: NS }, id);
    const e = remoteTransporterEnv(
      { databaseUrl: database.url, redisUrl: tls.redisAdminUrl.replace(/\?.*$/, ''), namespace: NS, heartbeatMs: 1000 },
      { databaseAddress: null, redisAddress: null },
      { id, name: id, installDir },
      c,
    );
    return { cred: c, env: { ...e, DATABASE_URL: local(e.DATABASE_URL!), REDIS_URL: local(e.REDIS_URL!) } };
  };
  /** Why a connection with these credentials fails (null: it works). */
  const connectError = (url: string) => pingDatabase(url, 5_000);
  const denied = async (c: Db, sql: string) => expect(c.$queryRawUnsafe(sql)).rejects.toThrow(/permission denied/);
  /** A Redis connection's errors (connectRedis swallows them otherwise). */
  const redisAs = (url: string) => {
    const r = connectRedis(url);
    const errors: string[] = [];
    r.on('error', (e: Error) => errors.push(e.message));
    return { r, errors };
  };

  beforeAll(async () => {
    tls = await startTlsServices();
    database = await createTestDatabase(tls.pgAdminUrl);
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
    redis = connectRedis(tls.redisAdminUrl);
    await redisReady(redis);
    const user = await db.user.create({ data: { username: 'admin', passwordHash: 'x', role: 'admin' } });
    await db.session.create({ data: { id: 'sess-1', userId: user.id, expiresAt: new Date(Date.now() + 3600_000) } });
    const vc = await db.vCenter.create({ data: { name: 'vc', url: 'https://vc.example', username: 'u', passwordSealed: sealSecret(KEY, SECRET_LABELS.vcenterPassword, 'vc-secret') } });
    const repo = await db.repository.create({ data: { name: 'r', location: '/tmp/r', encrypted: true, passphraseSealed: sealSecret(KEY, SECRET_LABELS.repositoryPassphrase, 'repo-pass') } });
    vcenterId = vc.id;
    repositoryId = repo.id;
    const job = await db.backupJob.create({ data: { name: 'j', vcenterId, repositoryId, sources: [] } });
    const run = await db.jobRun.create({ data: { jobId: job.id, kind: 'backup', vms: { create: [{ vmMoref: 'vm-1', vmName: 'one' }] } }, include: { vms: true } });
    runVmId = run.vms[0]!.id;
    for (const id of ['r-aaaa1111', 'r-bbbb2222']) await db.transporter.create({ data: { id, name: id, host: 'h', version: '', sshHost: 'h', installDir } });
    ({ cred, env } = await provision('r-aaaa1111'));
    await provision('r-bbbb2222');
  }, 120_000);

  afterAll(async () => {
    redis?.disconnect();
    await db?.$disconnect();
    await tls?.stop();
  });

  it('the env file holds its own logins over verified TLS and its own key, never the appliance key', () => {
    expect(Object.keys(env)).not.toContain('VAULTLINE_SECRET_KEY');
    expect(JSON.stringify(env)).not.toContain(KEY.toString('hex'));
    expect(JSON.stringify(env)).not.toContain(KEY.toString('base64'));
    const d = new URL(env.DATABASE_URL!);
    expect(d.username).toBe('vl_t_r_aaaa1111');
    expect(d.searchParams.get('sslmode')).toBe('verify-full');
    const r = new URL(env.REDIS_URL!);
    expect(r.protocol).toBe('rediss:');
    expect(r.username).toBe('vl_t_r_aaaa1111');
    expect(recipientPublicKey(env.VAULTLINE_TRANSPORTER_KEY!)).toBe(cred.publicKey);
  });

  it('its database role cannot read users, sessions, audit events, settings or any sealed column', async () => {
    const c = createDb(env.DATABASE_URL!, { max: 1 });
    try {
      for (const t of ['users', 'sessions', 'audit_events', 'settings', 'notification_targets', 'flr_journal']) await denied(c, `SELECT * FROM ${t}`);
      await denied(c, 'SELECT password_sealed FROM vcenters');
      await denied(c, 'SELECT * FROM vcenters');
      await denied(c, 'SELECT passphrase_sealed FROM repositories');
      await denied(c, 'SELECT sftp_key_sealed FROM repositories');
      await denied(c, 'SELECT s3_secret_sealed FROM repositories');
      await denied(c, 'SELECT ssh_key_sealed FROM transporters');
      await denied(c, `UPDATE vcenters SET url = 'https://evil' WHERE true`);
      await denied(c, 'DELETE FROM job_runs');
      await denied(c, `INSERT INTO users (id, username, password_hash, role) VALUES (gen_random_uuid(), 'x', 'x', 'admin')`);
      expect(await c.$queryRawUnsafe('SELECT url, username FROM vcenters')).toEqual([{ url: 'https://vc.example', username: 'u' }]);
      // Only its own sealed copies: the other Transporter's rows are invisible.
      expect(await c.$queryRawUnsafe('SELECT DISTINCT transporter_id FROM transporter_secrets')).toEqual([{ transporter_id: 'r-aaaa1111' }]);
      await denied(c, `UPDATE transporter_secrets SET sealed = 'x'`);
    } finally {
      await c.$disconnect();
    }
  });

  it('the Transporter code paths work with it: the queries of a backup, and its own copies of the secrets', async () => {
    const tdb = createDb(env.DATABASE_URL!, { sealedColumns: false });
    try {
      const item = await tdb.runVm.findUnique({ where: { id: runVmId }, include: { run: { include: { job: { include: { vcenter: true, repository: true } } } } } });
      expect(item?.run.job?.vcenter.url).toBe('https://vc.example');
      expect(item?.run.job?.vcenter.passwordSealed).toBeUndefined();
      await tdb.runVm.update({ where: { id: runVmId }, data: { status: 'running', transporterId: 'r-aaaa1111' } });
      await tdb.cleanupEntry.create({ data: { transporterId: 'r-aaaa1111', runVmId, kind: 'snapshot', vcenterId, target: {} } });
      expect(await tdb.transporter.findMany({ select: { id: true, lastHeartbeat: true } })).toHaveLength(2);
      const secrets = await tdb.transporterSecret.findMany();
      expect(secrets.map((s) => [s.transporterId, s.label, s.refId]).sort()).toEqual(
        [
          ['r-aaaa1111', SECRET_LABELS.repositoryPassphrase, repositoryId],
          ['r-aaaa1111', SECRET_LABELS.vcenterPassword, vcenterId],
        ].sort(),
      );
      const vc = secrets.find((s) => s.label === SECRET_LABELS.vcenterPassword)!;
      expect(openSealedTo(env.VAULTLINE_TRANSPORTER_KEY!, vc.label, vc.sealed)).toBe('vc-secret');
      // The sealed values are in the Director's database only as copies sealed to a Transporter key.
      expect(vc.sealed).not.toContain('vc-secret');
      expect(await tdb.user.findMany().catch((e: Error) => e.message)).toMatch(/permission denied/);
      // The charts' samples: a run's throughput and a repository's size; its own load, never another's.
      const disk = await tdb.runDisk.create({ data: { runVmId, deviceKey: 2000, label: 'Hard disk 1', capacityBytes: 1n << 20n } });
      await tdb.runDiskSample.create({ data: { runDiskId: disk.id, at: new Date(), bytesRead: 1n, bytesWritten: 1n } });
      await tdb.repositorySample.create({ data: { repositoryId, at: new Date(), storedBytes: 1n, logicalBytes: 2n, restorePoints: 1 } });
      await tdb.transporterSample.create({ data: { transporterId: 'r-aaaa1111', at: new Date(), activeDisks: 1, cpuPercent: 5, load1: 0.5, rssBytes: 1n } });
      const other = await tdb.transporterSample.create({ data: { transporterId: 'r-bbbb2222', at: new Date(), activeDisks: 1, cpuPercent: 5, load1: 0.5, rssBytes: 1n } }).catch((e: Error) => e.message);
      expect(other).toMatch(/row-level security/);
      // Instant recovery: retention reads which points VMs run from; a serving Transporter claims a request and records
      // its steps, but cannot rename it, point it at another restore point or move it.
      const point = await db.restorePoint.create({ data: { repositoryId, repoPointId: 'p-access', vmInstanceUuid: 'vm-access', vmName: 'app', createdAt: new Date(), logicalBytes: 1n } });
      const ir = await db.instantRecovery.create({
        data: { name: 'app-ir', restorePointId: point.id, restorePointRef: point.id, sourceVm: 'app', restorePointTime: point.createdAt, vcenterId, hostMoref: 'host-1', hostName: 'host-1', createdBy: 'admin' },
      });
      expect(await servedPoints(tdb, [point.id])).toEqual(new Set([point.id]));
      await tdb.instantRecovery.updateMany({ where: { id: ir.id, state: 'requested' }, data: { transporterId: 'r-aaaa1111', state: 'starting', detail: 'taken' } });
      expect((await db.instantRecovery.findUniqueOrThrow({ where: { id: ir.id } })).state).toBe('starting');
      expect(await tdb.instantRecovery.update({ where: { id: ir.id }, data: { name: 'renamed' } }).catch((e: Error) => e.message)).toMatch(/permission denied/);
      expect(await tdb.instantRecovery.update({ where: { id: ir.id }, data: { hostMoref: 'host-2' } }).catch((e: Error) => e.message)).toMatch(/permission denied/);
    } finally {
      await tdb.$disconnect();
    }
  });

  it('its database role cannot connect without TLS, nor with an unverified server', async () => {
    const plain = new URL(env.DATABASE_URL!);
    plain.searchParams.set('sslmode', 'disable');
    plain.searchParams.delete('sslrootcert');
    expect(await connectError(plain.href)).toMatch(/pg_hba.conf rejects connection .* no encryption/);
    const unverified = new URL(env.DATABASE_URL!);
    unverified.searchParams.delete('sslrootcert');
    expect(await connectError(unverified.href)).toMatch(/self[- ]signed|unable to verify|certificate/);
    expect(await connectError(env.DATABASE_URL!)).toBeNull();
  });

  it('its Redis user reaches only its namespace, over TLS only', async () => {
    const own = connectRedis(env.REDIS_URL!);
    try {
      await redisReady(own);
      await redis.set('other:secret', 'x');
      await own.set(`${NS}:probe`, '1');
      expect(await own.get(`${NS}:probe`)).toBe('1');
      await expect(own.get('other:secret')).rejects.toThrow(/NOPERM/);
      await expect(own.keys('*')).rejects.toThrow(/NOPERM/);
      await expect(own.call('ACL', 'LIST')).rejects.toThrow(/NOPERM/);
      await expect(own.call('CONFIG', 'GET', 'requirepass')).rejects.toThrow(/NOPERM/);
      await expect(own.flushall()).rejects.toThrow(/NOPERM/);
      await expect(own.publish('other:events', 'x')).rejects.toThrow(/NOPERM/);
    } finally {
      own.disconnect();
    }
    // The server has no plain-text port, and a plain-text client does not get an answer from the TLS one.
    const u = new URL(env.REDIS_URL!);
    u.protocol = 'redis:';
    u.search = '';
    const plain = redisAs(u.href);
    expect(await pingRedis(plain.r, 3_000)).not.toBeNull();
    plain.r.disconnect();
  });

  it('a BullMQ worker and the event bus run under its Redis user', async () => {
    const queue = new WorkQueue({ redisUrl: tls.redisAdminUrl, namespace: NS });
    const events = new EventBus(env.REDIS_URL!, NS);
    const seen: string[] = [];
    const got: string[] = [];
    await events.subscribe((e) => got.push(e.type === 'run.log' ? e.message : e.type));
    const done = new Promise<void>((resolve) => {
      const consumer = new WorkConsumer(
        {
          backup: async (p) => {
            seen.push(p.runVmId);
            await events.publish({ type: 'run.log', runId: 'r', runVmId: p.runVmId, level: 'info', message: 'from the Transporter' });
            resolve();
            setTimeout(() => void consumer.close(), 10);
          },
          restore: async () => undefined,
          maintenance: async () => undefined,
        },
        { redisUrl: env.REDIS_URL!, namespace: NS, concurrency: 1 },
      );
    });
    try {
      await queue.enqueueBackupVm({ runVmId });
      await done;
      expect(seen).toEqual([runVmId]);
      for (let i = 0; i < 50 && !got.length; i++) await new Promise((r) => setTimeout(r, 100));
      expect(got).toContain('from the Transporter');
    } finally {
      await events.close();
      await queue.close();
    }
  }, 30_000);

  it('a redeploy rotates everything: the old database and Redis passwords and key stop working', async () => {
    const before = env;
    const old = createDb(before.DATABASE_URL!, { max: 1 });
    await old.$queryRawUnsafe('SELECT 1');
    const oldRedis = redisAs(before.REDIS_URL!);
    await redisReady(oldRedis.r);
    ({ cred, env } = await provision('r-aaaa1111'));
    // Its open connections were closed, and the old passwords are refused when they reconnect.
    await expect(old.$queryRawUnsafe('SELECT 1')).rejects.toThrow();
    await expect(old.$queryRawUnsafe('SELECT 1')).rejects.toThrow();
    await old.$disconnect();
    expect(await connectError(before.DATABASE_URL!)).toMatch(/password authentication failed/);
    for (let i = 0; i < 100 && !/WRONGPASS/.test(oldRedis.errors.join(' ')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(oldRedis.errors.join(' ')).toMatch(/WRONGPASS/);
    oldRedis.r.disconnect();
    expect(await connectError(env.DATABASE_URL!)).toBeNull();
    // Its secrets are sealed to the new key only.
    const tdb = createDb(env.DATABASE_URL!, { sealedColumns: false });
    const vc = await tdb.transporterSecret.findFirstOrThrow({ where: { label: SECRET_LABELS.vcenterPassword } });
    await tdb.$disconnect();
    expect(openSealedTo(env.VAULTLINE_TRANSPORTER_KEY!, vc.label, vc.sealed)).toBe('vc-secret');
    expect(() => openSealedTo(before.VAULTLINE_TRANSPORTER_KEY!, vc.label, vc.sealed)).toThrow(/another key/);
  });

  it('a removal revokes the role and the Redis user', async () => {
    const role = transporterRole('r-aaaa1111');
    await revokeTransporter({ db, redis }, 'r-aaaa1111');
    expect(await db.$queryRaw<unknown[]>`SELECT 1 FROM pg_roles WHERE rolname = ${role}`).toHaveLength(0);
    expect(await redis.call('ACL', 'USERS')).not.toContain(role);
    expect(await db.transporterSecret.count({ where: { transporterId: 'r-aaaa1111' } })).toBe(0);
    expect(await connectError(env.DATABASE_URL!)).toMatch(/password authentication failed|does not exist|no pg_hba.conf entry/);
    // Saved to the ACL file, so a Redis restart does not bring it back.
    const acl = readFileSync(path.join(tls.dir, 'redis', 'users.acl'), 'utf8');
    expect(acl).not.toContain(role);
    expect(acl).toContain(`user ${transporterRole('r-bbbb2222')} on`);
    await revokeTransporter({ db, redis }, 'r-bbbb2222');
  });
});
