import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import os from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { memoryLogger } from '@vaultline/logger';
import { certificateFingerprint, makeSelfSignedCertificate, pinnedFetch, selfSignedNames } from '@vaultline/tls';
import { connectRedis, EventBus, redisReady, TransporterRegistry, WorkQueue, type Redis } from '@vaultline/queue';
import { vsphereConnector } from '../src/services/vsphere-connector.ts';
import { buildApp, type App, type AppDeps } from '../src/app.ts';
import type { FileRestoreOptions } from '../src/routes/file-restore.ts';
import { ensureFirstAdmin } from '../src/services/bootstrap.ts';
import type { PasswordCost } from '../src/auth/passwords.ts';
import { SESSION_COOKIE } from '../src/auth/sessions.ts';

export const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * scrypt at 2^10 instead of the Director's 2^17, so a sign-in costs a millisecond in tests.
 * Only test Directors get it, by this explicit option: no setting can lower the real cost.
 */
export const TEST_PASSWORD_COST: PasswordCost = { N: 1 << 10, r: 8, p: 1 };
export interface TestTls {
  cert: string;
  key: string;
  fingerprint: string;
}

let testTls: TestTls | undefined;
/** One self-signed certificate (for localhost and 127.0.0.1) shared by this process's test Directors. */
export function testCertificate(): TestTls {
  if (!testTls) {
    const made = makeSelfSignedCertificate(selfSignedNames('127.0.0.1'));
    testTls = { ...made, fingerprint: certificateFingerprint(made.cert) };
  }
  return testTls;
}

export interface TestDirector {
  app: App;
  db: Db;
  redis: Redis;
  registry: TransporterRegistry;
  database: TestDatabase;
  dataDir: string;
  logs: string[];
  adminPassword: string;
  queue: WorkQueue;
  tls: TestTls;
  /** fetch() that trusts this Director's certificate only (for tests that listen()). */
  fetch: ReturnType<typeof pinnedFetch>;
  close(): Promise<void>;
}

/** A Director on a fresh, migrated database, with optional URL overrides (e.g. through a TcpProxy). */
export async function startTestDirector(
  opts: {
    databaseUrl?: (url: string) => string;
    /** The PostgreSQL server to make the database on (default PG_SERVER). */
    pgServer?: string;
    redisUrl?: string;
    heartbeatMs?: number;
    fileRestore?: FileRestoreOptions;
    extra?: (ctx: { databaseUrl: string; namespace: string; dataDir: string }) => Partial<AppDeps>;
  } = {},
): Promise<TestDirector> {
  const database = await createTestDatabase(opts.pgServer ?? PG_SERVER);
  await applyMigrations(database.url, MIGRATIONS_DIR);
  const databaseUrl = opts.databaseUrl ? opts.databaseUrl(database.url) : database.url;
  const db = createDb(databaseUrl, { connectTimeoutMs: 1_000 });
  const redis = connectRedis(opts.redisUrl ?? REDIS_URL);
  await redisReady(redis);
  const registry = new TransporterRegistry(redis, opts.heartbeatMs ?? 1_000, { namespace: database.name });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-director-'));
  const { log, lines: logs } = memoryLogger('director-test');
  const admin = await ensureFirstAdmin(db, dataDir, TEST_PASSWORD_COST);
  const queue = new WorkQueue({ redisUrl: opts.redisUrl ?? REDIS_URL, namespace: database.name });
  const events = new EventBus(opts.redisUrl ?? REDIS_URL, database.name);
  const extra = opts.extra?.({ databaseUrl, namespace: database.name, dataDir }) ?? {};
  const tls = testCertificate();
  const app = await buildApp({
    db,
    databaseUrl,
    redis,
    registry,
    queue,
    events,
    connector: vsphereConnector(),
    log,
    version: 'test',
    secretKey: Buffer.alloc(32, 3),
    dataDir,
    passwordCost: TEST_PASSWORD_COST,
    checkAnswers: true,
    tls,
    ...(opts.fileRestore ? { fileRestore: opts.fileRestore } : {}),
    ...extra,
  });
  await app.fastify.ready();
  return {
    app,
    db,
    redis,
    registry,
    database,
    dataDir,
    logs,
    adminPassword: admin.password!,
    queue,
    tls,
    fetch: pinnedFetch(tls.fingerprint),
    async close() {
      await app.fastify.close();
      await queue.obliterate().catch(() => undefined);
      await queue.close();
      await events.close();
      await db.$disconnect();
      redis.disconnect();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function sessionCookie(res: { cookies: { name: string; value: string }[] }): string {
  const c = res.cookies.find((x) => x.name === SESSION_COOKIE);
  if (!c) throw new Error('no session cookie in response');
  return `${SESSION_COOKIE}=${c.value}`;
}

/** Signs in as admin and completes the first-login password change; returns the cookie. */
export async function signInAdmin(d: TestDirector, newPassword = 'correct-horse-battery'): Promise<string> {
  const login = await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: d.adminPassword } });
  const cookie = sessionCookie(login);
  const change = await d.app.fastify.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: { cookie },
    payload: { currentPassword: d.adminPassword, newPassword },
  });
  if (change.statusCode !== 200) throw new Error(`password change failed: ${change.body}`);
  return cookie;
}

/**
 * For a describe block: a Director on its own database with the admin signed in
 * (first-login password already changed), closed after the block.
 */
export function signedInDirector(opts?: Parameters<typeof startTestDirector>[0]): { readonly d: TestDirector; readonly cookie: string } {
  let d: TestDirector | undefined;
  let cookie = '';
  beforeAll(async () => {
    d = await startTestDirector(opts);
    cookie = await signInAdmin(d);
  });
  afterAll(async () => {
    await d?.close();
  });
  return {
    get d() {
      if (!d) throw new Error('signedInDirector() is only usable inside tests');
      return d;
    },
    get cookie() {
      return cookie;
    },
  };
}

/** Creates a user with `role` (as the signed-in admin), signs in as them and completes the first-login change; returns their cookie. */
export async function signInAs(d: TestDirector, adminCookie: string, username: string, role: 'viewer' | 'operator' | 'admin'): Promise<string> {
  const inject = d.app.fastify.inject.bind(d.app.fastify);
  const first = `${username}-first-password-1`;
  const created = await inject({ method: 'POST', url: '/api/users', headers: { cookie: adminCookie }, payload: { username, password: first, role } });
  if (created.statusCode !== 201) throw new Error(`creating ${username} failed: ${created.body}`);
  const cookie = sessionCookie(await inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: first } }));
  const change = await inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie }, payload: { currentPassword: first, newPassword: `${username}-chosen-password-2` } });
  if (change.statusCode !== 200) throw new Error(`password change of ${username} failed: ${change.body}`);
  return cookie;
}

/**
 * Polls `probe` until it returns something truthy, and returns that; after `timeoutMs` it throws naming
 * `what` (and, when given, what `context()` says then, e.g. a process's output).
 */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | null | false>, context?: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${context ? `; ${context()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
