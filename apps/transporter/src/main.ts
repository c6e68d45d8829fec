/**
 * The Transporter: a worker that listens on no port unless it serves repositories. It registers and
 * heartbeats, sweeps orphans left by an earlier (killed) process BEFORE taking
 * work, then runs `backup.run-vm`, `restore.run-vm` and `repository.maintain` jobs from the queue, at most
 * VAULTLINE_MAX_DISK_TASKS disk tasks at a time. With VAULTLINE_SERVE_REPOSITORIES it also serves those
 * folders to other Transporters (transfer/serve.ts): its only listening port.
 */
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { applianceKeyUnsealer, loadJournalKey, loadSecretKey, useTransferContext } from '@vaultline/appliance';
import { loadEnvOrExit } from '@vaultline/config';
import { WORK_ATTEMPTS } from '@vaultline/contracts';
import { TransporterLimits } from '@vaultline/core';
import { createDb } from '@vaultline/db';
import { createLogger } from '@vaultline/logger';
import { connectRedis, EventBus, TransporterRegistry, WorkConsumer } from '@vaultline/queue';
import { ownKeyUnsealer } from './adapters/own-key.ts';
import { pgJournal } from './adapters/pg-journal.ts';
import { createVSphereConnector } from './adapters/vsphere-port.ts';
import { createLocalDevices } from './adapters/devices.ts';
import { sweepOrphans } from './sweep.ts';
import { createBackupVmHandler } from './handlers/backup-vm.handler.ts';
import { createRestoreVmHandler } from './handlers/restore-vm.handler.ts';
import { createMaintenanceHandler } from './handlers/maintenance.handler.ts';
import { Heartbeat, LoadSampler } from './heartbeat.ts';
import { transporterId } from './identity.ts';
import { enrol } from './transfer/enrolment.ts';
import type { InstantNfs, InstantRecoveryService } from './instant/index.ts';
import { serveNames, serveRepositories, type Serving } from './transfer/serve.ts';

/** The BIOS UUID of the VM this Transporter runs in (for HotAdd), when it runs in one. */
async function machineUuid(): Promise<string | undefined> {
  try {
    const { readFile } = await import('node:fs/promises');
    const uuid = (await readFile('/sys/class/dmi/id/product_uuid', 'utf8')).trim().toLowerCase();
    return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid) ? uuid : undefined;
  } catch {
    return undefined;
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const SWEEP_INTERVAL_MS = 10 * 60_000;

async function main(): Promise<void> {
  const env = loadEnvOrExit('transporter');
  const log = createLogger({ name: 'transporter', level: env.VAULTLINE_LOG_LEVEL, pretty: process.stdout.isTTY, file: env.VAULTLINE_LOG_FILE });
  if (Boolean(env.VAULTLINE_SERVE_REPOSITORIES) !== Boolean(env.VAULTLINE_SERVE_ADDRESS)) {
    process.stderr.write('vaultline transporter: VAULTLINE_SERVE_REPOSITORIES and VAULTLINE_SERVE_ADDRESS go together: set both to serve repositories, or neither\n');
    process.exit(2);
  }
  const dataDir = path.resolve(env.VAULTLINE_DATA_DIR);
  const id = await transporterId(dataDir, env.VAULTLINE_TRANSPORTER_ID);
  // A remote Transporter has its own key and a database role that cannot read the sealed columns;
  // the appliance's own Transporter opens them with the appliance key, as the Director does.
  const ownKey = env.VAULTLINE_TRANSPORTER_KEY;
  const db = createDb(env.DATABASE_URL, { max: 8, sealedColumns: !ownKey });
  const unseal = ownKey ? ownKeyUnsealer(db, id, ownKey) : applianceKeyUnsealer(await loadSecretKey(dataDir, env.VAULTLINE_SECRET_KEY));
  const redis = connectRedis(env.REDIS_URL, { name: `transporter:${id}` });
  const namespace = env.VAULTLINE_REDIS_NAMESPACE;
  const registry = new TransporterRegistry(redis, env.VAULTLINE_HEARTBEAT_MS, { namespace });
  const devices = createLocalDevices({ byIdDir: env.VAULTLINE_DEVICE_BY_ID_DIR, mountDir: path.join(dataDir, 'mnt'), log });
  const proxyVmUuid = env.VAULTLINE_PROXY_VM_UUID ?? (await machineUuid());
  const connector = createVSphereConnector({ db, unseal, proxyVmUuid, nbdStreamsPerHost: env.VAULTLINE_NBD_STREAMS_PER_HOST, log });
  // Signs and verifies this Transporter's cleanup journal rows; never leaves the data dir.
  const journal = pgJournal(db, id, await loadJournalKey(dataDir), { log });
  const events = new EventBus(env.REDIS_URL, namespace);
  const cancelled = new Set<string>();
  let instant: InstantRecoveryService | null = null;
  await events.subscribe((e) => {
    if (e.type === 'run.cancel' && typeof e.runId === 'string') cancelled.add(e.runId);
    if (e.type === 'instant-recovery.requested') instant?.nudge();
  });
  const active = new Set<string>();
  let closing = false;

  // Its certificate for repositories other Transporters serve (and for serving its own), once the Director signs it.
  const served = env.VAULTLINE_SERVE_REPOSITORIES;
  const serveAddress = env.VAULTLINE_SERVE_ADDRESS;
  let serving: Serving | null = null;
  const enrolment = enrol({ db, id, dataDir, log, ...(serveAddress ? { names: serveNames(serveAddress).names } : {}), onRenewed: (identity) => serving?.setIdentity(identity) });
  useTransferContext({ db, identity: () => enrolment.identity() });
  if (served && serveAddress) {
    void enrolment.ready
      .then(async ({ identity, caPem }) => {
        if (closing) return;
        serving = await serveRepositories({ db, id, identity, caPem, repositories: served, address: serveAddress, log });
      })
      .catch((err: unknown) => log.error({ err, address: serveAddress }, 'cannot serve the repositories of VAULTLINE_SERVE_REPOSITORIES'));
  }

  // Instant recovery: its NFS server listens before the heartbeat says it offers it.
  // Loaded only when asked for: a Transporter without it (the OVA's by default) starts without those modules, which
  // matters where Node runs slowly (the OVA boot test runs it under QEMU's software emulation).
  const nfs: InstantNfs | null = env.VAULTLINE_NFS_ADDRESS
    ? await (await import('./instant/index.ts')).listenInstantNfs({ nfsAddress: env.VAULTLINE_NFS_ADDRESS, listen: env.VAULTLINE_NFS_LISTEN, port: env.VAULTLINE_NFS_PORT, portmapPort: env.VAULTLINE_NFS_PORTMAP_PORT, log })
    : null;

  const heartbeat = new Heartbeat(
    registry,
    {
      id,
      name: env.VAULTLINE_TRANSPORTER_NAME ?? id,
      host: os.hostname(),
      version: VERSION,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      capabilities: {
        transports: (await devices.canUseBlockDevices()) ? ['san', 'hotadd', 'nbdssl', 'nbd'] : ['nbdssl', 'nbd'],
        maxDiskTasks: env.VAULTLINE_MAX_DISK_TASKS,
        ...(proxyVmUuid ? { proxyVmUuid } : {}),
        ...(nfs ? { instantRecovery: { nfsAddress: nfs.nfsAddress } } : {}),
      },
    },
    env.VAULTLINE_HEARTBEAT_MS,
    log,
    // Its load over time, for the Transporters page (at most a sample a minute).
    new LoadSampler(db, id),
  );
  redis.on('ready', () => void heartbeat.beat());
  redis.once('ready', () => log.info({ id }, 'transporter registered'));
  heartbeat.start();

  let consumer: WorkConsumer | null = null;
  let sweeper: NodeJS.Timeout | null = null;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    if (sweeper) clearInterval(sweeper);
    // Running VMs see `closing` as a cancel, clean up, and the worker waits for them.
    await consumer?.close().catch(() => undefined);
    // Instant recoveries are only no longer served: their VMs run from the exports, and the next start resumes them.
    await nfs?.close().catch(() => undefined);
    enrolment.stop();
    await serving?.close().catch(() => undefined);
    await heartbeat.stop();
    await events.close();
    await connector.close();
    await db.$disconnect().catch(() => undefined);
    redis.disconnect();
    process.exit(0);
  };
  process.on('SIGINT', () => void close('SIGINT'));
  process.on('SIGTERM', () => void close('SIGTERM'));

  const sweep = async (why: string) => {
    try {
      const busyElsewhere = await db.runVm.findMany({ where: { status: 'running', NOT: { transporterId: id } }, select: { id: true } });
      const report = await sweepOrphans({
        journal,
        vsphere: (vcenterId) => connector.portFor(vcenterId),
        vcenterIds: async () => (await db.vCenter.findMany({ select: { id: true } })).map((v) => v.id),
        devices,
        proxyVm: (vcenterId) => connector.proxyVm(vcenterId),
        activeRunVmIds: () => new Set([...active, ...busyElsewhere.map((r) => r.id)]),
        log,
      });
      const did = report.snapshotsRemoved.length + report.disksDetached.length + report.mountsUndone + report.restoredVmsRemoved.length;
      if (did || report.failures.length || report.refused.length) log.info({ why, ...report }, 'orphan sweep');
    } catch (err) {
      log.warn({ err: (err as Error).message, why }, 'orphan sweep failed; will retry');
    }
  };
  // Nothing of a previous (killed) process may survive into new work.
  await sweep('start');
  sweeper = setInterval(() => {
    if (active.size === 0) void sweep('periodic');
  }, SWEEP_INTERVAL_MS);
  if (nfs) {
    instant = await nfs.start({
      db,
      transporterId: id,
      unseal,
      root: path.join(dataDir, 'instant'),
      nfsClients: env.VAULTLINE_NFS_CLIENTS ?? [],
      connect: (vcenter) => connector.restoreSession(vcenter),
      publish: (e) => void events.publish(e),
      log,
    });
    log.info({ nfsAddress: nfs.nfsAddress }, 'serving instant recoveries');
  }

  // Shutting down cancels running VMs cleanly (snapshots removed, disks detached, half-restored VMs removed).
  const isCancelled = (runId: string) => closing || cancelled.has(runId);
  const limits = new TransporterLimits(env.VAULTLINE_MAX_DISK_TASKS, env.VAULTLINE_NBD_STREAMS_PER_HOST);
  const handler = createBackupVmHandler({
    db,
    unseal,
    transporterId: id,
    transporterName: env.VAULTLINE_TRANSPORTER_NAME ?? id,
    log,
    journal,
    devices,
    connect: (vcenter) => connector.session(vcenter),
    publish: (e) => void events.publish(e),
    isCancelled,
    maxParallelDisks: env.VAULTLINE_MAX_DISK_TASKS,
    maxAttempts: WORK_ATTEMPTS,
    limits,
  });
  const restore = createRestoreVmHandler({
    db,
    unseal,
    transporterId: id,
    transporterName: env.VAULTLINE_TRANSPORTER_NAME ?? id,
    journal,
    log,
    devices,
    connect: (vcenter) => connector.restoreSession(vcenter),
    publish: (e) => void events.publish(e),
    isCancelled,
    limits,
    kvmExportDir: path.resolve(env.VAULTLINE_KVM_EXPORT_DIR ?? path.join(dataDir, 'kvm-exports')),
  });
  const maintenance = createMaintenanceHandler({ db, unseal, transporterId: id, log, publish: (e) => void events.publish(e) });
  const tracked = (fn: (p: { runVmId: string }, ctx: { attempt: number; jobId: string }) => Promise<void>) => async (payload: { runVmId: string }, ctx: { attempt: number; jobId: string }) => {
    active.add(payload.runVmId);
    try {
      await fn(payload, ctx);
    } finally {
      active.delete(payload.runVmId);
    }
  };
  consumer = new WorkConsumer(
    { backup: tracked(handler), restore: tracked(restore), maintenance: tracked(maintenance) },
    // One VM at a time per slot; each VM runs its disks in parallel up to the disk-task limit.
    { redisUrl: env.REDIS_URL, namespace, lockMs: env.VAULTLINE_JOB_LOCK_MS, concurrency: Math.max(1, Math.floor(env.VAULTLINE_MAX_DISK_TASKS / 2)), onInvalid: (jobId, e) => log.error({ jobId, e }, 'invalid job payload') },
  );
  log.info({ id }, 'taking backup work');

}

main().catch((err: unknown) => {
  process.stderr.write(`vaultline transporter: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
