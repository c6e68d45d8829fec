/**
 * A backup test bench: the lab vCenter (with HotAdd and SAN emulation), a
 * fresh migrated database, a repository in a temp folder, the vCenter and the
 * repository registered as the Director would, and the real handler wired to
 * the real adapters. Nothing is mocked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { applianceKeyUnsealer, backendFor, formatS3Location, identityColumns, loadJournalKey, openRepository, SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import type { JobOptions, TransportMode } from '@vaultline/contracts';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { memoryLogger } from '@vaultline/logger';
import { DiskReader, Repository } from '@vaultline/repository';
import { startLab, type Lab, type LabOptions } from '@vaultline/vsphere-lab';
import { createHash } from 'node:crypto';
import { createLocalDevices } from '../src/adapters/devices.ts';
import { pgJournal } from '../src/adapters/pg-journal.ts';
import { createVSphereConnector } from '../src/adapters/vsphere-port.ts';
import { createBackupVmHandler } from '../src/handlers/backup-vm.handler.ts';
import { createRestoreVmHandler } from '../src/handlers/restore-vm.handler.ts';

const TRANSPORTER_MAIN = path.resolve(import.meta.dirname, '../src/main.ts');
export const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A restore point made by `backupPoint`: its repository id, row id, VM id and each disk's SHA-256 then. */
export interface BenchPoint {
  id: string;
  rowId: string;
  vmId: string;
  truth: string[];
}

export interface Bench {
  lab: Lab;
  db: Db;
  database: TestDatabase;
  /** The local repository's folder (made but left empty when the repository is in S3). */
  repoDir: string;
  /** The Transporter's data dir (its journal.key, and LUN mounts under mnt/). */
  dataDir: string;
  /** The key the Transporter's cleanup journal rows are signed with. */
  journalKey: Buffer;
  secretKey: Buffer;
  vcenterId: string;
  repositoryId: string;
  transporterId: string;
  logs: string[];
  events: { type: string; [k: string]: unknown }[];
  connector: ReturnType<typeof createVSphereConnector>;
  devices: ReturnType<typeof createLocalDevices>;
  handler: ReturnType<typeof createBackupVmHandler>;
  /** The same backup handler with three attempts per VM, as the Transporter runs it (the queue retries what it throws). */
  retryingHandler: ReturnType<typeof createBackupVmHandler>;
  /** The restore.run-vm handler wired like the Transporter's (same devices, connector, cancel set and events). */
  restoreHandler: ReturnType<typeof createRestoreVmHandler>;
  /** A restore run as the Director writes it (kind restore or drill, the request on the row); returns its ids. */
  newRestoreRun(request: Record<string, unknown>): Promise<{ runId: string; runVmId: string }>;
  cancelled: Set<string>;
  /** A fake device layer the backup handler uses instead of the real one while set (tests of what cannot fail here). */
  devicesOverride: ReturnType<typeof createLocalDevices> | null;
  /** Called synchronously with every published event (a test can react before the next read). */
  onEvent: ((e: { type: string; [k: string]: unknown }) => void) | null;
  /** Creates a job for these VMs and one run with its items; returns the run and item ids. */
  newRun(vmNames: string[], mode?: TransportMode, options?: Partial<JobOptions>): Promise<{ runId: string; items: { id: string; vmName: string }[] }>;
  /** Backs a VM up over NBDSSL (expecting success) and returns its restore point with each disk's ground truth at backup time. */
  backupPoint(vmName: string, disks: number): Promise<BenchPoint>;
  /** Runs every item of a run through the handler, as the queue would. */
  runAll(runId: string): Promise<void>;
  /** The bench's repository, opened as a Transporter opens it (local or S3, with its passphrase). */
  openRepository(): Promise<Repository>;
  /** SHA-256 of a disk of a restore point, read back from the repository. */
  restoredSha256(repoPointId: string, vmId: string, diskKey: string): Promise<string>;
  close(): Promise<void>;
}

/** An S3 bucket (and folder in it) to keep the bench's repository in, instead of a local folder. */
export interface BenchS3 {
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export async function startBench(opts: { passphrase?: string; cbtMaxAreas?: number; s3?: BenchS3; lab?: Pick<LabOptions, 'extraDatastores' | 'http' | 'objectDatastores' | 'esx' | 'directHosts'> } = {}): Promise<Bench> {
  const [lab, database, repoDir, dataDir] = await Promise.all([
    startLab({ port: 0, hotadd: isRoot, san: isRoot, ...(opts.cbtMaxAreas ? { cbtMaxAreas: opts.cbtMaxAreas } : {}), ...opts.lab }),
    createTestDatabase(PG_SERVER, 'vaultline_backup'),
    mkdtemp(path.join(os.tmpdir(), 'vaultline-bench-repo-')),
    mkdtemp(path.join(os.tmpdir(), 'vaultline-bench-data-')),
  ]);
  const journalKey = await loadJournalKey(dataDir);
  await applyMigrations(database.url, MIGRATIONS_DIR);
  const db = createDb(database.url);
  const secretKey = Buffer.alloc(32, 9);
  // Where the repository lives: the temp folder, or (opts.s3) a folder in a bucket, registered as the Director does.
  const storage = opts.s3
    ? { kind: 's3' as const, location: formatS3Location(opts.s3), s3SecretSealed: sealSecret(secretKey, SECRET_LABELS.repositoryS3Secret, opts.s3.secretAccessKey) }
    : { kind: 'local' as const, location: repoDir };
  const identity = await Repository.init(await backendFor(storage, opts.s3?.secretAccessKey), opts.passphrase ? { passphrase: opts.passphrase } : {});
  const vcenter = await db.vCenter.create({
    data: {
      name: 'lab',
      url: lab.url,
      username: lab.username,
      passwordSealed: sealSecret(secretKey, SECRET_LABELS.vcenterPassword, lab.password),
      thumbprintSha256: lab.url.startsWith('https:') ? lab.thumbprintSha256 : null,
      isLab: true,
    },
  });
  const repository = await db.repository.create({
    data: {
      name: 'bench',
      ...storage,
      encrypted: Boolean(opts.passphrase),
      passphraseSealed: opts.passphrase ? sealSecret(secretKey, SECRET_LABELS.repositoryPassphrase, opts.passphrase) : null,
      ...identityColumns(identity),
    },
  });
  const { log, lines: logs } = memoryLogger('transporter-test');
  const transporterId = `test-${randomUUID().slice(0, 8)}`;
  const devices = createLocalDevices({ byIdDir: lab.byIdDir, mountDir: path.join(dataDir, 'mnt'), log, appearTimeoutMs: 15_000 });
  const connector = createVSphereConnector({ db, unseal: applianceKeyUnsealer(secretKey), proxyVmUuid: lab.proxyVm.biosUuid, nbdStreamsPerHost: 4, log });
  const journal = pgJournal(db, transporterId, journalKey, { log });
  const events: { type: string; [k: string]: unknown }[] = [];
  const cancelled = new Set<string>();
  const publish = (e: { type: string; [k: string]: unknown }) => {
    events.push(e);
    bench.onEvent?.(e);
  };
  // The backup handler sees `bench.devicesOverride` when a test sets one (a fake device layer), else the real one.
  const deviceLayer = new Proxy(devices, {
    get: (real, key) => {
      const d = bench.devicesOverride ?? real;
      const v = Reflect.get(d, key) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(d) : v;
    },
  });
  const backupHandler = (maxAttempts: number) =>
    createBackupVmHandler({
      db,
      unseal: applianceKeyUnsealer(secretKey),
      transporterId,
      log,
      journal,
      devices: deviceLayer,
      connect: (row) => connector.session(row),
      publish,
      isCancelled: (runId) => cancelled.has(runId),
      maxParallelDisks: 4,
      maxAttempts,
    });
  const handler = backupHandler(1);

  const restoreHandler = createRestoreVmHandler({
    db,
    unseal: applianceKeyUnsealer(secretKey),
    transporterId,
    journal,
    log,
    devices,
    connect: (row) => connector.restoreSession(row),
    publish,
    isCancelled: (runId) => cancelled.has(runId),
    kvmExportDir: path.join(dataDir, 'kvm-exports'),
  });

  const bench: Bench = {
    onEvent: null,
    devicesOverride: null,
    restoreHandler,
    async newRestoreRun(request) {
      const run = await db.jobRun.create({
        data: {
          kind: request.drill ? 'drill' : 'restore',
          request: { vcenterId: vcenter.id, ...request } as object,
          vms: { create: [{ vmMoref: '', vmName: String(request.name) }] },
        },
        include: { vms: true },
      });
      return { runId: run.id, runVmId: run.vms[0]!.id };
    },
    lab,
    db,
    database,
    repoDir,
    dataDir,
    journalKey,
    secretKey,
    vcenterId: vcenter.id,
    repositoryId: repository.id,
    transporterId,
    logs,
    events,
    connector,
    devices,
    handler,
    retryingHandler: backupHandler(3),
    cancelled,
    async newRun(vmNames, mode = 'automatic', options = {}) {
      const sources = await Promise.all(vmNames.map(async (n) => lab.getVm(n))).then((vms) => vms.map((v) => ({ moref: v.moref, name: v.name, instanceUuid: v.instanceUuid })));
      const jobOptions = { quiesce: 'try', failoverToNetwork: false, enableCbt: true, cbtSanityRate: 0.01, retention: { keepLast: 14, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 }, ...options };
      const job = await db.backupJob.upsert({
        where: { name: `job-${vmNames.join('-')}-${mode}` },
        create: { name: `job-${vmNames.join('-')}-${mode}`, vcenterId: vcenter.id, repositoryId: repository.id, sources, transportMode: mode, options: jobOptions },
        update: { transportMode: mode, sources, options: jobOptions },
      });
      const run = await db.jobRun.create({
        data: { jobId: job.id, vms: { create: sources.map((s) => ({ vmMoref: s.moref, vmName: s.name, vmInstanceUuid: s.instanceUuid })) } },
        include: { vms: true },
      });
      return { runId: run.id, items: run.vms.map((v) => ({ id: v.id, vmName: v.vmName })) };
    },
    async backupPoint(vmName, disks) {
      const truth: string[] = [];
      for (let i = 0; i < disks; i++) truth.push(await lab.diskSha256(vmName, i));
      const { runId } = await bench.newRun([vmName], 'nbdssl');
      await bench.runAll(runId);
      const item = await db.runVm.findFirstOrThrow({ where: { runId } });
      if (item.status !== 'succeeded') throw new Error(`backup of ${vmName} ended ${item.status}: ${item.error ?? ''}`);
      const point = await db.restorePoint.findFirstOrThrow({ where: { runVmId: item.id } });
      return { id: point.repoPointId, rowId: point.id, vmId: point.vmInstanceUuid, truth };
    },
    async runAll(runId) {
      const items = await db.runVm.findMany({ where: { runId } });
      for (const it of items) await handler({ runVmId: it.id }, { attempt: 1 }).catch(() => undefined);
    },
    async openRepository() {
      return openRepository(await db.repository.findUniqueOrThrow({ where: { id: repository.id } }), secretKey);
    },
    async restoredSha256(repoPointId, vmId, diskKey) {
      const repo = await bench.openRepository();
      try {
        const reader = await DiskReader.open(repo, { vmId, id: repoPointId }, diskKey);
        const h = createHash('sha256');
        const step = 4 * 1024 * 1024;
        const capacity = (await repo.readManifest({ vmId, id: repoPointId })).disks.find((d) => d.key === diskKey)!.capacity;
        for (let off = 0; off < capacity; off += step) h.update(await reader.read(off, Math.min(step, capacity - off)));
        return h.digest('hex');
      } finally {
        await repo.close();
      }
    },
    async close() {
      await connector.close().catch(() => undefined);
      await db.$disconnect().catch(() => undefined);
      await lab.stop().catch(() => undefined);
      await database.drop().catch(() => undefined);
      await rm(repoDir, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return bench;
}

/**
 * Starts the real Transporter (src/main.ts) as a child process on the bench's
 * database, lab and identity, taking work from `namespace` in Redis; short
 * heartbeat and job-lock times so takeover after a kill -9 is quick.
 */
export function spawnTransporter(b: Bench, opts: { namespace: string; dataDir: string; redisUrl?: string }): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', TRANSPORTER_MAIN], {
    env: {
      ...process.env,
      DATABASE_URL: b.database.url,
      REDIS_URL: opts.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      VAULTLINE_REDIS_NAMESPACE: opts.namespace,
      VAULTLINE_DATA_DIR: opts.dataDir,
      VAULTLINE_TRANSPORTER_ID: b.transporterId,
      VAULTLINE_SECRET_KEY: b.secretKey.toString('hex'),
      VAULTLINE_PROXY_VM_UUID: b.lab.proxyVm.biosUuid,
      VAULTLINE_DEVICE_BY_ID_DIR: b.lab.byIdDir,
      VAULTLINE_JOB_LOCK_MS: '2000',
      VAULTLINE_HEARTBEAT_MS: '500',
      VAULTLINE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', () => undefined);
  return child;
}

/** Everything a run left in Postgres about its (first) VM: the run, the item with its disks in key order, and its restore point. */
export async function runOutcome(b: Bench, runId: string) {
  const run = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId }, include: { vms: { include: { disks: { orderBy: { deviceKey: 'asc' } } } } } });
  const vm = run.vms[0]!;
  const point = await b.db.restorePoint.findFirst({ where: { runVmId: vm.id } });
  return { run, vm, point };
}
