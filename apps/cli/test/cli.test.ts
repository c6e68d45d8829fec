import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The CLI is tested against a real Director (real Postgres/Redis) listening on a free port.
import { sessionCookie, signInAdmin, startTestDirector, type TestDirector } from '../../director/test/helpers.ts';
import { totpCode } from '../../director/src/auth/totp.ts';

const run = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

describe('the vaultline CLI over the Director API', () => {
  let d: TestDirector;
  let lab: Lab;
  let url: string;
  let repoDir: string;
  const cli = async (...args: string[]) => cliWith({}, ...args);
  const cliWith = async (env: Record<string, string>, ...args: string[]) => {
    try {
      const r = await run(process.execPath, ['--import', 'tsx', MAIN, ...args], {
        env: { ...process.env, VAULTLINE_URL: url, VAULTLINE_PASSWORD: 'cli-password-123', VAULTLINE_TLS_FINGERPRINT: d.tls.fingerprint, ...env },
      });
      return { code: 0, out: r.stdout, err: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, out: x.stdout, err: x.stderr };
    }
  };

  beforeAll(async () => {
    [d, lab] = await Promise.all([startTestDirector(), startLab({ port: 0 })]);
    await signInAdmin(d, 'cli-password-123');
    url = await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    repoDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-cli-repo-'));
    await lab.createVm({ name: 'cli-vm', disks: [{ capacityBytes: 4 * 1024 * 1024 }], cbt: true });
  });
  afterAll(async () => {
    await d?.close();
    await lab?.stop();
    if (repoDir) await rm(repoDir, { recursive: true, force: true });
  });

  it('asks for the thumbprint on first contact, then registers the vCenter', async () => {
    const first = await cli('vcenter', 'add', '--name', 'lab', '--url', lab.url, '--user', lab.username, '--password', lab.password);
    expect(first.code).toBe(1);
    expect(first.err).toContain(`--thumbprint ${lab.thumbprintSha256}`);
    const ok = await cli('vcenter', 'add', '--name', 'lab', '--url', lab.url, '--user', lab.username, '--password', lab.password, '--thumbprint', lab.thumbprintSha256);
    expect(ok.code, ok.err).toBe(0);
    expect((await cli('vcenter', 'list')).out).toContain(lab.url);
    expect((await cli('vcenter', 'vms', 'lab')).out).toMatch(/cli-vm\tvm-\d+\t/);
  });

  it('adds a repository, creates a job and starts a run that is visible by id', async () => {
    expect((await cli('repo', 'add', '--name', 'r', '--path', repoDir)).code).toBe(0);
    const job = await cli('job', 'create', '--name', 'j', '--vcenter', 'lab', '--repo', 'r', '--vm', 'cli-vm', '--mode', 'nbdssl');
    expect(job.code, job.err).toBe(0);
    const started = await cli('job', 'run', 'j', '--json');
    const runId = JSON.parse(started.out).id as string;
    const status = await cli('run', 'status', runId);
    expect(status.out).toContain(`run ${runId}  queued`);
    expect(status.out).toContain('cli-vm: queued');
  });

  it('creates a backup copy job between two repositories, lists it and starts its run; the same repository twice is refused', async () => {
    const second = path.join(repoDir, 'copies');
    await mkdir(second);
    expect((await cli('repo', 'add', '--name', 'r2', '--path', second)).code).toBe(0);
    const same = await cli('copy', 'create', '--name', 'loop', '--from', 'r', '--to', 'r');
    expect(same.code).toBe(1);
    expect(same.err).toContain('a copy job copies into another repository than its source');
    const created = await cli('copy', 'create', '--name', 'offsite', '--from', 'r', '--to', 'r2', '--newest', '3', '--keep', '5', '--schedule', '0 4 * * *');
    expect(created.code, created.err).toBe(0);
    expect(created.out).toContain('created copy job offsite: r -> r2 (0 4 * * *)');
    expect((await cli('copy', 'list')).out).toBe('offsite\tr -> r2\tnewest 3\tkeeps 5\t0 4 * * *\t0 copies\n');
    const started = await cli('copy', 'run', 'offsite', '--json');
    expect(started.code, started.err).toBe(0);
    const run = await d.db.jobRun.findUniqueOrThrow({ where: { id: JSON.parse(started.out).runId as string } });
    expect(run).toMatchObject({ kind: 'copy', status: 'queued', requestedBy: 'admin' });
  });

  it('creates a scheduled drill from a VM with restore points, and refuses one without', async () => {
    const vc = await d.db.vCenter.findFirstOrThrow({ where: { name: 'lab' } });
    const repo = await d.db.repository.findFirstOrThrow({ where: { name: 'r' } });
    await d.db.restorePoint.create({ data: { repositoryId: repo.id, repoPointId: 'p-cli', vmInstanceUuid: 'uuid-cli-vm', vmName: 'cli-vm', createdAt: new Date(), logicalBytes: 1n } });
    const none = await cli('drill', 'create', '--name', 'dx', '--vcenter', 'lab', '--vm', 'never-backed-up');
    expect(none.code).toBe(1);
    expect(none.err).toContain('never-backed-up has no restore point to drill; back it up first');
    const made = await cli('drill', 'create', '--name', 'weekly', '--vcenter', 'lab', '--vm', 'cli-vm', '--schedule', '0 3 * * 0', '--random');
    expect(made.code, made.err).toBe(0);
    expect(made.out).toContain('created drill weekly (0 3 * * 0)');
    const row = await d.db.drillJob.findUniqueOrThrow({ where: { name: 'weekly' } });
    expect(row).toMatchObject({ vcenterId: vc.id, pointChoice: 'random', vms: [{ instanceUuid: 'uuid-cli-vm', name: 'cli-vm' }] });
    expect((await cli('drill', 'list')).out).toContain('weekly\t0 3 * * 0\trandom\tenabled\tcli-vm');
    const started = await cli('drill', 'run', 'weekly', '--json');
    expect(started.code, started.err).toBe(0);
    const [runId] = JSON.parse(started.out).runIds as string[];
    expect((await cli('run', 'status', runId!)).out).toMatch(/cli-vm-drill-\d{8}-\d{4}: queued/);
  });

  it('lists ransomware suspects and releases a hold with a reason, once', async () => {
    const repo = await d.db.repository.findFirstOrThrow({ where: { name: 'r' } });
    const suspect = await d.db.restorePoint.create({
      data: { repositoryId: repo.id, repoPointId: 'p-enc', vmInstanceUuid: 'uuid-enc-vm', vmName: 'enc-vm', createdAt: new Date(), logicalBytes: 1n, ransomwareSuspect: true, anomaly: 'new data 99 % incompressible, 7.99 bits/byte' },
    });
    await d.db.restorePoint.create({ data: { repositoryId: repo.id, repoPointId: 'p-enc-0', vmInstanceUuid: 'uuid-enc-vm', vmName: 'enc-vm', createdAt: new Date(Date.now() - 86_400_000), logicalBytes: 1n } });
    const listed = await cli('point', 'list', '--vm', 'enc-vm', '--suspects');
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^${suspect.id}\t.*\tenc-vm\tr\t1 B\transomware suspect: holds retention$`)), '  new data 99 % incompressible, 7.99 bits/byte']);
    expect((await cli('point', 'list', '--vm', 'enc-vm')).out.trim().split('\n')).toHaveLength(3);
    const noReason = await cli('point', 'release-hold', suspect.id);
    expect(noReason.code).toBe(1);
    expect(noReason.err).toContain('--note is required');
    const released = await cli('point', 'release-hold', suspect.id, '--note', 'planned re-encryption of the archive disk');
    expect(released.code, released.err).toBe(0);
    expect(released.out).toContain("released the retention hold of enc-vm's restore point");
    expect((await cli('point', 'list', '--vm', 'enc-vm', '--suspects')).out).toContain('ransomware suspect, hold released by admin');
    const again = await cli('point', 'release-hold', suspect.id, '--note', 'again');
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already released by admin/);
    expect(await d.db.auditEvent.count({ where: { action: 'restore-point.release-hold' } })).toBe(1);
  });

  it('names a missing VM and a wrong password clearly', async () => {
    const missing = await cli('job', 'create', '--name', 'x', '--vcenter', 'lab', '--repo', 'r', '--vm', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('no VM named nope in lab');
    const bad = await cliWith({ VAULTLINE_PASSWORD: 'wrong' }, 'job', 'list');
    expect(bad.err).toContain('wrong username or password');
  });

  it('removes a vCenter, sending the password again, and signs in with a TOTP code when the account has one', async () => {
    const vc = await d.db.vCenter.create({ data: { name: 'cli-doomed', url: 'https://vc.invalid', username: 'u', passwordSealed: 'x' } });
    const removed = await cli('vcenter', 'remove', 'cli-doomed');
    expect(removed.code, removed.err).toBe(0);
    expect(removed.out).toContain('removed cli-doomed');
    expect(await d.db.vCenter.findUnique({ where: { id: vc.id } })).toBeNull();
    const audit = await d.db.auditEvent.findMany({ where: { subject: 'cli-doomed' } });
    expect(audit.map((a) => a.action)).toEqual(['vcenter.delete']);

    const headers = { cookie: sessionCookie(await d.app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: 'cli-password-123' } })) };
    const { secret } = (await d.app.fastify.inject({ method: 'POST', url: '/api/auth/totp/enroll', headers })).json() as { secret: string };
    expect((await d.app.fastify.inject({ method: 'POST', url: '/api/auth/totp/confirm', headers, payload: { code: totpCode(secret) } })).statusCode).toBe(200);
    const noCode = await cli('vcenter', 'list');
    expect(noCode.code).toBe(1);
    expect(noCode.err).toContain('set VAULTLINE_TOTP');
    const withCode = await cliWith({ VAULTLINE_TOTP: totpCode(secret, Date.now() + 30_000) }, 'vcenter', 'list');
    expect(withCode.code, withCode.err).toBe(0);
    expect(withCode.out).toContain(lab.url);
    // The tests after this one sign in with the password alone.
    await d.db.user.update({ where: { username: 'admin' }, data: { totpEnabledAt: null, totpSecretSealed: null, totpLastStep: null } });
  });

  it('reports an unreachable Director without a stack trace', async () => {
    const r = await cliWith({ VAULTLINE_URL: 'https://127.0.0.1:1' }, 'health');
    expect(r.err).toMatch(/^vaultline: cannot reach the Director at https:\/\/127\.0\.0\.1:1/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('talks only to the pinned certificate, and says so clearly otherwise', async () => {
    const other = '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';
    const wrong = await cliWith({ VAULTLINE_TLS_FINGERPRINT: other }, 'job', 'list');
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain(`is not the one pinned: expected SHA-256 ${other}, got ${d.tls.fingerprint}`);
    expect(wrong.err).not.toMatch(/\n\s+at /);
    const plain = await cliWith({ VAULTLINE_URL: url.replace('https:', 'http:') }, 'health');
    expect(plain.err).toContain('VAULTLINE_URL must start with https://');
    // No fingerprint, a Director elsewhere: nothing to pin, so nothing is sent.
    const unknown = await cliWith({ VAULTLINE_TLS_FINGERPRINT: '', VAULTLINE_URL: url.replace('127.0.0.1', 'localhost.invalid') }, 'health');
    expect(unknown.err).toContain('set VAULTLINE_TLS_FINGERPRINT');
  });

  it('reads the fingerprint of a Director on this machine from its data dir', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-cli-data-'));
    try {
      await mkdir(path.join(dataDir, 'tls'));
      await writeFile(path.join(dataDir, 'tls', 'cert.pem'), d.tls.cert);
      const ok = await cliWith({ VAULTLINE_TLS_FINGERPRINT: '', VAULTLINE_DATA_DIR: dataDir }, 'job', 'list');
      expect(ok.code, ok.err).toBe(0);
      const missing = await cliWith({ VAULTLINE_TLS_FINGERPRINT: '', VAULTLINE_DATA_DIR: path.join(dataDir, 'nowhere') }, 'job', 'list');
      expect(missing.err).toContain(`set VAULTLINE_TLS_FINGERPRINT`);
      expect(missing.err).toContain(`${path.join(dataDir, 'nowhere', 'tls', 'cert.pem')} is not readable`);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
