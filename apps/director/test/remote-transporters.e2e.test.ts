/**
 * Remote Transporters through the Director's API, for real: an OpenSSH sshd on
 * 127.0.0.1 with a key-only user, a real PostgreSQL and Redis that let
 * Transporters in over TLS only (@vaultline/db/tls-services), the lab vCenter. The
 * Transporter is copied as the self-contained bundle (once for this file),
 * started over SSH as that user from the installed folder with only its own
 * logins and key, and must register, be listed online and take a backup from
 * the queue.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sealSecret } from '@vaultline/config';
import { SECRET_LABELS } from '@vaultline/appliance';
import { transporterBundle } from '@vaultline/remote';
import { Repository } from '@vaultline/repository';
import { freePort } from '@vaultline/config';
import { startSshLab, type SshLab } from '@vaultline/ssh-lab';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemoteTransporterConfig } from '../src/services/remote-transporter-env.ts';
import { sealSecretsForTransporters, transporterRole } from '../src/services/transporter-access.ts';
import { signInAdmin, signInAs, startTestDirector, until, type TestDirector } from './helpers.ts';
import { startTlsServices, type TlsServices } from '@vaultline/db/tls-services';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const MiB = 1024 * 1024;
/** Built bundles are kept per content digest, so a re-run of this file reuses the last one. */
const bundleCache = (version: string) => path.join(os.tmpdir(), 'vaultline-remote-bundles', version);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'))!;
  return Number(line.split(/\s+/)[1]);
}

describe('remote Transporters deployed and managed over SSH (real sshd on 127.0.0.1, Postgres, Redis, lab vCenter)', () => {
  let ssh: SshLab;
  let vlab: Lab;
  let tls: TlsServices;
  let d: TestDirector;
  let cookie = '';
  let repoDir = '';
  const remote: { config?: RemoteTransporterConfig } = {};
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'vl-remote-test-'));

  const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object, who = cookie) =>
    d.app.fastify.inject({ method, url, headers: { cookie: who }, ...(payload ? { payload } : {}) });
  // Removing a Transporter needs the admin's password again (signInAdmin's).
  const REAUTH = { currentPassword: 'correct-horse-battery' };
  const keyBody = (extra: object = {}) => ({ name: 'remote one', host: ssh.host, port: ssh.port, username: ssh.user, privateKey: ssh.privateKey, ...extra });

  beforeAll(async () => {
    [ssh, vlab, tls] = await Promise.all([startSshLab({ userPrefix: 'vlrt' }), startLab({ port: 0 }), startTlsServices()]);
    d = await startTestDirector({
      heartbeatMs: 1_000,
      pgServer: tls.pgAdminUrl,
      redisUrl: tls.redisAdminUrl,
      extra: ({ databaseUrl, namespace }) => {
        remote.config = {
          version: '0.1.0',
          bundle: () => transporterBundle({ rootDir: ROOT, version: '0.1.0', cacheDir: bundleCache('0.1.0') }),
          databaseUrl,
          redisUrl: REDIS_TLS_URL(),
          tlsCaFile: tls.caFile,
          namespace,
          heartbeatMs: 1_000,
          onlineTimeoutMs: 90_000,
        };
        return { remote: remote.config };
      },
    });
    cookie = await signInAdmin(d);
  }, 300_000);

  afterAll(async () => {
    // Whatever a failed test left on the host goes (force: the host may be unreachable by then).
    if (d) {
      for (const t of await d.db.transporter.findMany({ where: { sshHost: { not: null } } }).catch(() => [])) {
        await api('DELETE', `/api/transporters/remote/${t.id}?force=true`, REAUTH).catch(() => undefined);
      }
      await d.close();
    }
    await ssh?.stop();
    await vlab?.stop();
    await tls?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }, 180_000);

  let id = '';
  let firstPid = 0;
  /** The Director's Redis URL as remote Transporters get it (without its CA file, which they get in their install folder). */
  const REDIS_TLS_URL = () => `rediss://127.0.0.1:${tls.redisPort}`;
  const envOf = () => Object.fromEntries([...readFileSync(path.join(installDir(), 'transporter.env'), 'utf8').matchAll(/^(\w+)="(.*)"$/gm)].map((m) => [m[1]!, m[2]!]));
  const installDir = () => path.join(ssh.home, '.vaultline-transporter');

  it('asks to confirm the SSH host key first, refuses another one, then pins it and checks the host', async () => {
    const first = await api('POST', '/api/transporters/remote', keyBody());
    expect(first.statusCode).toBe(409);
    expect(first.json()).toMatchObject({ code: 'host_key_confirmation_required', hostKeySha256: ssh.hostKeyFingerprint(), keyType: 'ssh-ed25519' });
    expect(await d.db.transporter.count()).toBe(0);

    const wrong = await api('POST', '/api/transporters/remote', keyBody({ hostKeySha256: `SHA256:${'A'.repeat(43)}` }));
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().message).toContain(ssh.hostKeyFingerprint());
    expect(wrong.json().message).toContain(`SHA256:${'A'.repeat(43)}`);

    const asOperator = await signInAs(d, cookie, 'oper', 'operator');
    expect((await api('POST', '/api/transporters/remote', keyBody({ hostKeySha256: ssh.hostKeyFingerprint() }), asOperator)).statusCode).toBe(403);
    expect((await api('GET', '/api/transporters/remote', undefined, asOperator)).statusCode).toBe(403);

    const added = await api('POST', '/api/transporters/remote', keyBody({ hostKeySha256: ssh.hostKeyFingerprint() }));
    expect(added.statusCode, added.body).toBe(201);
    const body = added.json();
    expect(body.check).toMatchObject({ os: 'Linux', machine: 'x86_64', user: ssh.user, root: false, installDir: installDir() });
    expect(body.check.freeBytes).toBeGreaterThan(body.check.neededBytes);
    id = body.transporter.id;
    expect(body.transporter).toMatchObject({ host: ssh.host, port: ssh.port, username: ssh.user, auth: 'key', hostKeySha256: ssh.hostKeyFingerprint(), deployedVersion: null });

    // The key is sealed with the appliance key, never stored or audited in clear.
    const row = await d.db.transporter.findUniqueOrThrow({ where: { id } });
    expect(row.sshKeySealed).toMatch(/^v1\./);
    expect(row.sshKeySealed).not.toContain('OPENSSH');
    const audit = await d.db.auditEvent.findFirstOrThrow({ where: { action: 'transporter.remote.add' } });
    expect(JSON.stringify(audit.detail)).not.toContain('PRIVATE KEY');
    // Checking wrote nothing to the host.
    expect(existsSync(installDir())).toBe(false);
  });

  it('hands remote Transporters the database and Redis addresses set for them (default: the Director\'s own)', async () => {
    const before = (await api('GET', '/api/settings/transporter-endpoints')).json();
    expect(before).toMatchObject({ databaseAddress: null, redisAddress: null, redisUrl: `${REDIS_TLS_URL()}` });
    const put = await api('PUT', '/api/settings/transporter-endpoints', { redisAddress: 'localhost' });
    expect(put.statusCode, put.body).toBe(200);
    expect((await api('GET', '/api/settings/transporter-endpoints')).json()).toMatchObject({ redisAddress: 'localhost', redisUrl: `rediss://localhost:${tls.redisPort}` });
    expect((await api('PUT', '/api/settings/transporter-endpoints', { databaseAddress: 'db host' })).statusCode).toBe(400);
  });

  it('deploys the bundle; the Transporter, started over SSH as that user from the installed folder, registers and is listed online', async () => {
    const res = await api('POST', `/api/transporters/remote/${id}/deploy`);
    expect(res.statusCode, res.body).toBe(200);
    const out = res.json();
    expect(out).toMatchObject({ online: true, supervisor: 'process', version: '0.1.0', installDir: installDir(), changed: true });
    expect(out.message).toContain('supervised background process');
    firstPid = out.pid;

    const listed = await until('the Director lists it online', 120_000, async () => ((await api('GET', '/api/transporters')).json() as { id: string; online: boolean }[]).find((t) => t.id === id && t.online));
    expect(listed).toMatchObject({ name: 'remote one', pid: firstPid });

    // The process runs as the SSH user, from the installed bundle's own node, not from this worktree.
    expect(uidOf(firstPid)).toBe(ssh.uid);
    expect(execFileSync('readlink', [`/proc/${firstPid}/exe`], { encoding: 'utf8' }).trim()).toBe(path.join(installDir(), '0.1.0', 'node'));
    expect(execFileSync('readlink', [`/proc/${firstPid}/cwd`], { encoding: 'utf8' }).trim()).toBe(path.join(installDir(), '0.1.0', 'app'));

    // The env file is the user's, mode 0600, and holds what the Transporter needs.
    const envFile = path.join(installDir(), 'transporter.env');
    const st = statSync(envFile);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(ssh.uid);
    const env = readFileSync(envFile, 'utf8');
    expect(env).toContain(`VAULTLINE_TRANSPORTER_ID="${id}"`);
    // Least privilege: its own logins over verified TLS and its own key; never the appliance key nor the Director's logins.
    expect(env).not.toContain('VAULTLINE_SECRET_KEY');
    expect(env).not.toContain(Buffer.alloc(32, 3).toString('hex'));
    const vars = envOf();
    expect(vars.VAULTLINE_TRANSPORTER_KEY).toMatch(/^[\w-]{43}$/);
    const dbUrl = new URL(vars.DATABASE_URL!);
    expect(dbUrl.username).toBe(transporterRole(id));
    expect(dbUrl.searchParams.get('sslmode')).toBe('verify-full');
    expect(dbUrl.searchParams.get('sslrootcert')).toBe(path.join(installDir(), 'tls-ca.pem'));
    expect(vars.REDIS_URL).toMatch(new RegExp(`^rediss://${transporterRole(id)}:[0-9a-f]{48}@localhost:${tls.redisPort}/?\\?tls_ca_file=`));
    expect(readFileSync(path.join(installDir(), 'tls-ca.pem'), 'utf8')).toBe(readFileSync(tls.caFile, 'utf8'));
    // Secrets never reach the Director's log.
    const logs = d.logs.join('\n');
    expect(logs).not.toContain(Buffer.alloc(32, 3).toString('hex'));
    expect(logs).not.toContain(ssh.privateKey.split('\n')[1]!);

    const status = (await api('GET', `/api/transporters/remote/${id}`)).json();
    expect(status).toMatchObject({ online: true, upgradeAvailable: false, process: { running: true, pid: firstPid, installedVersion: '0.1.0', runningFrom: path.join(installDir(), '0.1.0'), supervisor: 'process' } });

    // A second deploy is refused; upgrade is the way to redeploy.
    expect((await api('POST', `/api/transporters/remote/${id}/deploy`)).statusCode).toBe(409);
  }, 300_000);

  it('takes real work: a backup of a lab VM, queued by the Director, is processed by the remote Transporter', async () => {
    await vlab.createVm({ name: 'remote-vm', cbt: true, disks: [{ capacityBytes: 64 * MiB }] });
    await vlab.guestWrite('remote-vm', 0, [{ offset: 0, length: 24 * MiB, pattern: 'random', seed: 7 }]);
    const vm = await vlab.getVm('remote-vm');
    repoDir = path.join(scratch, 'repo');
    mkdirSync(repoDir);
    await Repository.init(repoDir);
    execFileSync('chown', ['-R', `${ssh.user}:`, scratch]);
    const vc = await d.db.vCenter.create({
      data: { name: 'lab', url: vlab.url, username: vlab.username, passwordSealed: sealSecret(Buffer.alloc(32, 3), SECRET_LABELS.vcenterPassword, vlab.password), thumbprintSha256: vlab.thumbprintSha256, isLab: true },
    });
    const repo = await d.db.repository.create({ data: { name: 'remote-repo', kind: 'local', location: repoDir } });
    // As the API does when a vCenter or repository is added: the remote gets the password sealed to its key.
    await sealSecretsForTransporters(d.db, Buffer.alloc(32, 3));
    const job = await api('POST', '/api/jobs', { name: 'remote-job', vcenterId: vc.id, repositoryId: repo.id, sources: [{ moref: vm.moref, name: vm.name, instanceUuid: vm.instanceUuid }], transportMode: 'nbd' });
    expect(job.statusCode, job.body).toBe(201);
    const run = await api('POST', `/api/jobs/${job.json().id}/run`);
    expect(run.statusCode, run.body).toBe(202);
    const done = await until('the run to finish', 180_000, async () => {
      const r = await d.db.jobRun.findUniqueOrThrow({ where: { id: run.json().id }, include: { vms: true } });
      return ['succeeded', 'warning', 'failed', 'cancelled'].includes(r.status) ? r : null;
    });
    expect(done.vms[0]!.error ?? null).toBeNull();
    expect(done.status).toBe('succeeded');
    expect(done.vms[0]!.transporterId).toBe(id);
    expect(await d.db.restorePoint.count({ where: { vmName: 'remote-vm' } })).toBe(1);
  }, 300_000);

  /** Calls `fn` while the remote Transporter's backup item is marked running, as during a backup. */
  const whileBusy = async (fn: () => Promise<void>) => {
    const item = await d.db.runVm.findFirstOrThrow({ where: { transporterId: id } });
    await d.db.runVm.update({ where: { id: item.id }, data: { status: 'running' } });
    try {
      await fn();
    } finally {
      await d.db.runVm.update({ where: { id: item.id }, data: { status: item.status } });
    }
  };
  const refusedBusy = (res: { statusCode: number; json(): { message: string } }) => {
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toMatch(/^remote one is running 1 VM job\(s\) now; .* would cancel them/);
  };

  it('does not restart or remove it while it runs a VM job (that would cancel the job)', async () => {
    await whileBusy(async () => {
      refusedBusy(await api('POST', `/api/transporters/remote/${id}/restart`));
      refusedBusy(await api('DELETE', `/api/transporters/remote/${id}`, REAUTH));
    });
  });

  it('restarts it: a new process of the installed bundle comes online under the same id', async () => {
    const res = await api('POST', `/api/transporters/remote/${id}/restart`);
    expect(res.statusCode, res.body).toBe(200);
    const out = res.json();
    expect(out).toMatchObject({ running: true, online: true, supervisor: 'process' });
    expect(out.pid).not.toBe(firstPid);
    expect(alive(firstPid)).toBe(false);
    firstPid = out.pid;
  }, 180_000);

  it('keeps it running without systemd: the supervisor starts a killed Transporter again', async () => {
    process.kill(firstPid, 'SIGKILL');
    const back = await until('a new process online', 60_000, async () => (await d.registry.list()).find((t) => t.id === id && t.online && t.pid !== firstPid));
    expect(uidOf(back.pid)).toBe(ssh.uid);
    firstPid = back.pid;
    expect((await api('GET', `/api/transporters/remote/${id}`)).json().process).toMatchObject({ running: true, pid: back.pid });
  }, 90_000);

  it('upgrades when the appliance version changed, keeping the id, and does nothing when it did not', async () => {
    const same = await api('POST', `/api/transporters/remote/${id}/upgrade`);
    expect(same.json()).toMatchObject({ changed: false, version: '0.1.0' });
    remote.config!.version = '0.1.1';
    remote.config!.bundle = () => transporterBundle({ rootDir: ROOT, version: '0.1.1', cacheDir: bundleCache('0.1.1') });
    expect((await api('GET', `/api/transporters/remote/${id}`)).json().upgradeAvailable).toBe(true);
    await whileBusy(async () => refusedBusy(await api('POST', `/api/transporters/remote/${id}/upgrade`)));
    const before = envOf();
    const res = await api('POST', `/api/transporters/remote/${id}/upgrade`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ changed: true, online: true, version: '0.1.1', transporter: { id, deployedVersion: '0.1.1' } });
    // New logins and key: the old ones no longer work.
    const after = envOf();
    expect(new URL(after.DATABASE_URL!).password).not.toBe(new URL(before.DATABASE_URL!).password);
    expect(new URL(after.REDIS_URL!).password).not.toBe(new URL(before.REDIS_URL!).password);
    expect(after.VAULTLINE_TRANSPORTER_KEY).not.toBe(before.VAULTLINE_TRANSPORTER_KEY);
    expect(alive(firstPid)).toBe(false);
    firstPid = res.json().pid;
    expect(execFileSync('readlink', [`/proc/${firstPid}/exe`], { encoding: 'utf8' }).trim()).toBe(path.join(installDir(), '0.1.1', 'node'));
    // The earlier version's folder is gone once the new one runs.
    expect(existsSync(path.join(installDir(), '0.1.0'))).toBe(false);
  }, 300_000);

  it('removes it: the process stops, the install folder and env file are deleted, then the row', async () => {
    const res = await api('DELETE', `/api/transporters/remote/${id}`, REAUTH);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, cleaned: true });
    expect(alive(firstPid)).toBe(false);
    expect(existsSync(installDir())).toBe(false);
    expect(readdirSync(ssh.home)).toEqual(['.ssh']);
    // Nothing of the user is left in the shared temp folder either (TMPDIR pointed into the install folder).
    expect(readdirSync(os.tmpdir()).filter((f) => statSync(path.join(os.tmpdir(), f), { throwIfNoEntry: false })?.uid === ssh.uid && !f.startsWith('vl-remote-test-'))).toEqual([]);
    expect(await d.db.transporter.findUnique({ where: { id } })).toBeNull();
    // Its database role and Redis user are gone.
    expect(await d.db.$queryRaw<unknown[]>`SELECT 1 FROM pg_roles WHERE rolname = ${transporterRole(id)}`).toHaveLength(0);
    expect(await d.redis.call('ACL', 'USERS')).not.toContain(transporterRole(id));
    expect((await d.registry.list()).find((t) => t.id === id)).toBeUndefined();
    expect(((await api('GET', '/api/transporters')).json() as { id: string }[]).find((t) => t.id === id)).toBeUndefined();
  }, 180_000);

  describe('bad inputs are refused with a clear message and leave nothing behind', () => {
    const refused = async (extra: object) => {
      const res = await api('POST', '/api/transporters/remote', keyBody({ name: `bad-${Math.random()}`, hostKeySha256: ssh.hostKeyFingerprint(), ...extra }));
      expect(await d.db.transporter.count()).toBe(0);
      return res;
    };

    it('a wrong private key', async () => {
      const keyFile = path.join(scratch, 'other_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
      const res = await refused({ privateKey: readFileSync(keyFile, 'utf8') });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toMatch(new RegExp(`${ssh.user}@127\\.0\\.0\\.1:${ssh.port} refused the credentials`));
      expect(res.json().details[0].path).toBe('privateKey');
    });

    it('a password where only keys are accepted', async () => {
      const res = await refused({ privateKey: undefined, password: 'not-this' });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toContain('refused the credentials');
    });

    it('a port nothing listens on', async () => {
      const port = await freePort();
      const res = await refused({ port });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toBe(`cannot reach 127.0.0.1:${port}: the connection was refused (is sshd running and the port right?)`);
    });

    it('not enough disk space in the install folder (a 16 MiB tmpfs)', async () => {
      const tiny = path.join(scratch, 'tiny');
      mkdirSync(tiny);
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=16m,mode=0700,uid=${ssh.uid}`, 'tmpfs', tiny]);
      try {
        const res = await refused({ installDir: tiny });
        expect(res.statusCode).toBe(400);
        expect(res.json().message).toMatch(new RegExp(`^not enough disk space in ${tiny} on 127\\.0\\.0\\.1: 16 MiB free in ${tiny}, the Transporter needs \\d+ MiB$`));
        expect(res.json().details[0].path).toBe('installDir');
        expect(readdirSync(tiny)).toEqual([]);
      } finally {
        execFileSync('umount', [tiny]);
      }
    });

    it('no write permission in the install folder', async () => {
      const locked = path.join(scratch, 'locked');
      mkdirSync(locked);
      execFileSync('chown', ['root:root', locked]);
      const res = await refused({ installDir: path.join(locked, 'vaultline') });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toBe(`${ssh.user} has no write permission in ${path.join(locked, 'vaultline')} on 127.0.0.1 (Permission denied); choose a folder ${ssh.user} owns, or sign in as root`);
      expect(readdirSync(locked)).toEqual([]);
    });

    it('a changed host key: refused naming both fingerprints, until the new one is confirmed; a gone host is removed with force', async () => {
      const added = await api('POST', '/api/transporters/remote', keyBody({ name: 'rekeyed', hostKeySha256: ssh.hostKeyFingerprint() }));
      expect(added.statusCode, added.body).toBe(201);
      const rid = added.json().transporter.id as string;
      const before = ssh.hostKeyFingerprint();
      await ssh.rotateHostKey();
      const after = ssh.hostKeyFingerprint();
      expect(after).not.toBe(before);

      const deploy = await api('POST', `/api/transporters/remote/${rid}/deploy`);
      expect(deploy.statusCode).toBe(409);
      expect(deploy.json().message).toBe(
        `the SSH host key of 127.0.0.1:${ssh.port} has changed: it now presents ${after}, but ${before} was confirmed; refusing to connect (if the host was reinstalled, confirm the new key)`,
      );
      expect(existsSync(path.join(ssh.home, '.vaultline-transporter'))).toBe(false);
      const status = (await api('GET', `/api/transporters/remote/${rid}`)).json();
      expect(status.process).toBeNull();
      expect(status.problem).toContain(after);
      const remove = await api('DELETE', `/api/transporters/remote/${rid}`, REAUTH);
      expect(remove.statusCode).toBe(409);
      expect(remove.json().message).toContain('?force=true');

      const ask = await api('POST', `/api/transporters/remote/${rid}/host-key`, {});
      expect(ask.statusCode).toBe(409);
      expect(ask.json().hostKeySha256).toBe(after);
      const pin = await api('POST', `/api/transporters/remote/${rid}/host-key`, { hostKeySha256: after });
      expect(pin.statusCode, pin.body).toBe(200);
      expect(pin.json().hostKeySha256).toBe(after);

      // The host "goes away": removal without force is refused, with force it names what may be left there.
      await d.db.transporter.update({ where: { id: rid }, data: { sshPort: await freePort() } });
      const gone = await api('DELETE', `/api/transporters/remote/${rid}`, REAUTH);
      expect(gone.statusCode).toBe(400);
      expect(gone.json().message).toMatch(/connection was refused.*nothing was removed.*\?force=true/);
      const forced = await api('DELETE', `/api/transporters/remote/${rid}?force=true`, REAUTH);
      expect(forced.statusCode).toBe(200);
      expect(forced.json()).toMatchObject({ ok: true, cleaned: false });
      expect(forced.json().message).toContain('transporter.env holding its (now revoked) database and Redis logins and key');
      expect(await d.db.transporter.findUnique({ where: { id: rid } })).toBeNull();
    });
  });
});
