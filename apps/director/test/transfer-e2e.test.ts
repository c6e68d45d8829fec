/**
 * Transporter-to-Transporter transfer end to end (issue #17), on real PostgreSQL, Redis and the lab
 * vCenter: a serving Transporter process (a remote one: its own restricted database role and Redis
 * user, its own key, no appliance key) serves a folder; the API creates an encrypted repository of kind
 * `transporter` in it; ANOTHER Transporter process backs a lab VM up into it; the restore point reads
 * back bit-exact through the Director's own certificate, and the served folder holds no plaintext.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openRepository, SECRET_LABELS, transporterBackend } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { createDb, type Db } from '@vaultline/db';
import { DiskReader } from '@vaultline/repository';
import { issueTransporterCertificate, makeTransporterCa, TransporterBackend } from '@vaultline/transfer';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionTransporter, revokeTransporter } from '../src/services/transporter-access.ts';
import { REDIS_URL, signInAdmin, startTestDirector, until, type TestDirector } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const TRANSPORTER_MAIN = path.join(ROOT, 'apps/transporter/src/main.ts');
const SECRET_KEY = Buffer.alloc(32, 3);
const PASSPHRASE = 'served-but-never-shown';
const MiB = 1024 * 1024;

interface Proc {
  child: ChildProcess;
  output(): string;
}

/** A Transporter process with exactly `env` (nothing of this process's environment but PATH and HOME). */
function spawnTransporter(env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', TRANSPORTER_MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', VAULTLINE_LOG_LEVEL: 'info', VAULTLINE_HEARTBEAT_MS: '500', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += String(b)));
  child.stderr!.on('data', (b: Buffer) => (out += String(b)));
  return { child, output: () => out.slice(-4000) };
}

async function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  p.child.kill('SIGKILL');
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('Transporter-to-Transporter transfer (real PostgreSQL, Redis, lab vCenter, two Transporter processes)', () => {
  let lab: Lab;
  let d: TestDirector;
  let cookie = '';
  let scratch = '';
  let serving: Proc | undefined;
  let source: Proc | undefined;
  let roleDb: Db | undefined;
  const servingId = `serve-${randomUUID().slice(0, 8)}`;
  const sourceId = `source-${randomUUID().slice(0, 8)}`;
  let servedDir = '';
  let servingDataDir = '';
  const api = (method: 'GET' | 'POST', url: string, payload?: object) => d.app.fastify.inject({ method, url, headers: { cookie }, ...(payload ? { payload } : {}) });

  beforeAll(async () => {
    [lab, d, scratch] = await Promise.all([startLab({ port: 0 }), startTestDirector({ heartbeatMs: 500 }), mkdtemp(path.join(os.tmpdir(), 'vl-transfer-e2e-'))]);
    cookie = await signInAdmin(d);
    servedDir = path.join(scratch, 'served');
    servingDataDir = path.join(scratch, 'serving-data');

    // The serving side: a remote Transporter as a deploy makes it (row, role, Redis user, key), in a namespace
    // of its own so it never takes the backup from the Transporter under test.
    await d.db.transporter.create({ data: { id: servingId, name: 'repository host', host: 'localhost', version: 'test' } });
    const ns = `${d.database.name}-serve`;
    const creds = await provisionTransporter({ db: d.db, redis: d.redis, secretKey: SECRET_KEY, namespace: ns }, servingId);
    const dbUrl = new URL(d.database.url);
    dbUrl.username = creds.user;
    dbUrl.password = creds.dbPassword;
    const redisUrl = new URL(REDIS_URL);
    redisUrl.username = creds.user;
    redisUrl.password = creds.redisPassword;
    roleDb = createDb(dbUrl.toString(), { sealedColumns: false });
    serving = spawnTransporter({
      DATABASE_URL: dbUrl.toString(),
      REDIS_URL: redisUrl.toString(),
      VAULTLINE_REDIS_NAMESPACE: ns,
      VAULTLINE_TRANSPORTER_ID: servingId,
      VAULTLINE_TRANSPORTER_KEY: creds.privateKey,
      VAULTLINE_DATA_DIR: servingDataDir,
      VAULTLINE_SERVE_REPOSITORIES: `main=${servedDir}`,
      VAULTLINE_SERVE_ADDRESS: '127.0.0.1:0',
    });
    // The source side: the appliance's own Transporter (appliance key, the Director's namespace).
    source = spawnTransporter({
      DATABASE_URL: d.database.url,
      REDIS_URL,
      VAULTLINE_REDIS_NAMESPACE: d.database.name,
      VAULTLINE_TRANSPORTER_ID: sourceId,
      VAULTLINE_SECRET_KEY: SECRET_KEY.toString('hex'),
      VAULTLINE_DATA_DIR: path.join(scratch, 'source-data'),
    });
    await until('the serving Transporter to serve with its certificate', 30_000, async () => {
      const row = await d.db.transporter.findUniqueOrThrow({ where: { id: servingId } });
      return row.serveAddress && row.tlsFingerprint;
    }, serving.output);
    // The Director mirrors the source Transporter at a health check; it then writes its request and gets its certificate.
    await until('the source Transporter to get its certificate', 30_000, async () => {
      await api('GET', '/api/health');
      return (await d.db.transporter.findUnique({ where: { id: sourceId } }))?.tlsCert;
    }, source.output);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([stop(serving), stop(source)]);
    await roleDb?.$disconnect();
    if (d) {
      await revokeTransporter({ db: d.db, redis: d.redis }, servingId).catch(() => undefined);
      await d.close();
    }
    await lab?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }, 60_000);

  let repositoryId = '';

  it('refuses a name the Transporter does not serve, saying what it serves', async () => {
    const res = await api('POST', '/api/repositories', { kind: 'transporter', name: 'nope', transporterId: servingId, repository: 'other', passphrase: PASSPHRASE });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain(`Transporter ${servingId} serves main, not other`);
    const unknown = await api('POST', '/api/repositories', { kind: 'transporter', name: 'nope', transporterId: 'nobody', repository: 'main' });
    expect(unknown.json().message).toContain('no Transporter nobody is registered');
  });

  it('creates an encrypted repository of kind transporter through the API, in the served folder', async () => {
    const res = await api('POST', '/api/repositories', { kind: 'transporter', name: 'served', transporterId: servingId, repository: 'main', passphrase: PASSPHRASE });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ kind: 'transporter', location: `transporter://${servingId}/main`, encrypted: true });
    repositoryId = res.json().id;
    expect(existsSync(path.join(servedDir, 'config'))).toBe(true);
    // The serving Transporter got no copy of the passphrase (it would be sealed to its key like the vCenter password).
    expect(await d.db.transporterSecret.count({ where: { transporterId: servingId, refId: repositoryId } })).toBe(0);
  });

  it('a lab VM backed up by ANOTHER Transporter into it reads back bit-exact; the served folder holds no plaintext', async () => {
    await lab.createVm({ name: 'transfer-vm', cbt: true, disks: [{ capacityBytes: 64 * MiB }] });
    await lab.guestWrite('transfer-vm', 0, [
      { offset: 0, length: 8 * MiB, pattern: 'text', seed: 17 },
      { offset: 16 * MiB, length: 8 * MiB, pattern: 'random', seed: 18 },
    ]);
    const vm = await lab.getVm('transfer-vm');
    const truth = await lab.diskSha256('transfer-vm', 0);
    const vc = await d.db.vCenter.create({
      data: { name: 'lab', url: lab.url, username: lab.username, passwordSealed: sealSecret(SECRET_KEY, SECRET_LABELS.vcenterPassword, lab.password), thumbprintSha256: lab.thumbprintSha256, isLab: true },
    });
    const job = await api('POST', '/api/jobs', { name: 'transfer-job', vcenterId: vc.id, repositoryId, sources: [{ moref: vm.moref, name: vm.name, instanceUuid: vm.instanceUuid }], transportMode: 'nbd' });
    expect(job.statusCode, job.body).toBe(201);
    const run = await api('POST', `/api/jobs/${job.json().id}/run`);
    expect(run.statusCode, run.body).toBe(202);
    const done = await until('the run to finish', 50_000, async () => {
      const r = await d.db.jobRun.findUniqueOrThrow({ where: { id: run.json().id }, include: { vms: true } });
      return ['succeeded', 'warning', 'failed', 'cancelled'].includes(r.status) ? r : null;
    }, () => source!.output());
    expect(done.vms[0]!.error ?? null).toBeNull();
    expect(done.status).toBe('succeeded');
    expect(done.vms[0]!.transporterId).toBe(sourceId);

    // Read back here as the Director does (its own certificate, the passphrase unsealed with the appliance key).
    const point = await d.db.restorePoint.findFirstOrThrow({ where: { runVmId: done.vms[0]!.id } });
    const repo = await openRepository(await d.db.repository.findUniqueOrThrow({ where: { id: repositoryId } }), SECRET_KEY);
    try {
      const manifest = await repo.readManifest({ vmId: point.vmInstanceUuid, id: point.repoPointId });
      const disk = manifest.disks[0]!;
      const reader = await DiskReader.open(repo, { vmId: point.vmInstanceUuid, id: point.repoPointId }, disk.key);
      const h = createHash('sha256');
      for (let off = 0; off < disk.capacity; off += 4 * MiB) h.update(await reader.read(off, Math.min(4 * MiB, disk.capacity - off)));
      expect(h.digest('hex')).toBe(truth);
    } finally {
      await repo.close();
    }

    // What the guest wrote appears nowhere in the served folder: slices of the text and of the random data.
    const flat = await open(vm.disks[0]!.flatPath, 'r');
    const slices: Buffer[] = [];
    for (const off of [0, 3 * MiB, 7 * MiB, 16 * MiB, 20 * MiB]) {
      const b = Buffer.alloc(48);
      await flat.read(b, 0, 48, off + 4096);
      slices.push(b);
    }
    await flat.close();
    const files = await filesUnder(servedDir);
    expect(files.length).toBeGreaterThan(3);
    let stored = 0;
    for (const f of files) {
      const content = await readFile(f);
      stored += content.length;
      for (const s of slices) expect(content.includes(s), `${f} holds guest data in clear`).toBe(false);
    }
    expect(stored).toBeGreaterThan(8 * MiB);
  }, 60_000);

  it('a copy job copies the served repository\'s restore point into a local repository (read over mutual TLS), bit-exact', async () => {
    const local = await api('POST', '/api/repositories', { kind: 'local', name: 'copies-here', location: path.join(scratch, 'copies') });
    expect(local.statusCode, local.body).toBe(201);
    const job = await api('POST', '/api/copy-jobs', { name: 'served to local', sourceRepositoryId: repositoryId, targetRepositoryId: local.json().id });
    expect(job.statusCode, job.body).toBe(201);
    const run = await api('POST', `/api/copy-jobs/${job.json().id}/run`);
    expect(run.statusCode, run.body).toBe(202);
    const done = await until('the copy to finish', 50_000, async () => {
      const r = await d.db.jobRun.findUniqueOrThrow({ where: { id: run.json().runId } });
      return ['succeeded', 'warning', 'failed', 'cancelled'].includes(r.status) ? r : null;
    }, () => source!.output());
    expect(done.status, done.error ?? '').toBe('succeeded');
    const [original] = await d.db.restorePoint.findMany({ where: { repositoryId } });
    const copy = await d.db.restorePoint.findFirstOrThrow({ where: { repositoryId: local.json().id, copyOfId: original!.id } });
    const repo = await openRepository(await d.db.repository.findUniqueOrThrow({ where: { id: local.json().id } }), SECRET_KEY);
    try {
      const ref = { vmId: copy.vmInstanceUuid, id: copy.repoPointId };
      const disk = (await repo.readManifest(ref)).disks[0]!;
      const reader = await DiskReader.open(repo, ref, disk.key);
      const h = createHash('sha256');
      for (let off = 0; off < disk.capacity; off += 4 * MiB) h.update(await reader.read(off, Math.min(4 * MiB, disk.capacity - off)));
      expect(h.digest('hex')).toBe(await lab.diskSha256('transfer-vm', 0));
    } finally {
      await repo.close();
    }
  }, 60_000);

  it('the serving Transporter never had the passphrase: not in its environment, data dir or database role', async () => {
    const environ = await readFile(`/proc/${serving!.child.pid}/environ`, 'utf8');
    expect(environ).not.toContain(PASSPHRASE);
    expect(environ).not.toContain('VAULTLINE_SECRET_KEY');
    expect(existsSync(path.join(servingDataDir, 'secret.key'))).toBe(false);
    for (const f of await filesUnder(servingDataDir)) expect((await readFile(f)).includes(Buffer.from(PASSPHRASE)), f).toBe(false);
    await expect(roleDb!.$queryRawUnsafe('SELECT passphrase_sealed FROM repositories')).rejects.toThrow(/permission denied/);
    const own = await roleDb!.$queryRawUnsafe<{ ref_id: string }[]>('SELECT ref_id FROM transporter_secrets');
    expect(own.map((r) => r.ref_id)).not.toContain(repositoryId);
  });

  it('refuses a server whose certificate is not the pinned one, and a client whose certificate another CA issued', async () => {
    const location = `transporter://${servingId}/main`;
    const row = await d.db.transporter.findUniqueOrThrow({ where: { id: servingId } });
    await d.db.transporter.update({ where: { id: servingId }, data: { tlsFingerprint: Array(32).fill('AB').join(':') } });
    try {
      await expect(transporterBackend(location)).rejects.toThrow(/presents a certificate other than the one the Director issued it \(expected SHA-256 AB:AB/);
    } finally {
      await d.db.transporter.update({ where: { id: servingId }, data: { tlsFingerprint: row.tlsFingerprint } });
    }
    await (await transporterBackend(location)).close();

    const forged = issueTransporterCertificate(makeTransporterCa(), sourceId);
    const [host, port] = row.serveAddress!.split(':');
    const ca = await d.db.transferCa.findUniqueOrThrow({ where: { id: 1 } });
    const backend = new TransporterBackend({ host: host!, port: Number(port), repository: 'main', identity: forged, caPem: ca.certPem, serverFingerprint: row.tlsFingerprint! });
    try {
      // The server ends the handshake: a client certificate of another CA never reaches a request.
      const err = await backend.stat('config').then(() => null, (e: unknown) => e as NodeJS.ErrnoException);
      expect(err?.code).toBe('ECONNRESET');
    } finally {
      await backend.close();
    }
  });

  it('names the serving Transporter and its last heartbeat when it does not answer', async () => {
    const exited = new Promise((r) => serving!.child.once('exit', r));
    serving!.child.kill('SIGKILL');
    await exited;
    // Its heartbeats go to a namespace of its own here, so the Director never recorded one.
    await expect(transporterBackend(`transporter://${servingId}/main`)).rejects.toThrow(/Transporter serve-\w+ at 127\.0\.0\.1:\d+ does not answer \(ECONNREFUSED\); it has never sent a heartbeat\. Is it running/);
  });
});
