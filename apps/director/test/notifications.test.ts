import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { memoryLogger } from '@vaultline/logger';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyTick } from '../src/notify/notifier.ts';
import { signedInDirector, signInAs } from './helpers.ts';

interface Hook {
  headers: Record<string, string | string[] | undefined>;
  raw: string;
  body: { event: string; subject: string; text: string; run?: { id: string; status: string; job: string | null; vms: { name: string; status: string; error: string | null }[] }; cleanup?: unknown; url?: string };
}

/** A webhook receiver on loopback; answers `failNext` requests with HTTP 500 first. */
function webhookServer() {
  const got: Hook[] = [];
  const state = { failNext: 0 };
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      if (state.failNext > 0) {
        state.failNext -= 1;
        res.writeHead(500).end('receiver is down');
        return;
      }
      got.push({ headers: req.headers, raw, body: JSON.parse(raw) as Hook['body'] });
      res.writeHead(204).end();
    });
  });
  return { got, state, server, url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` };
}

interface Mail {
  from: string;
  to: string[];
  data: string;
  user: string | undefined;
}

/** A real SMTP server (smtp-server) on loopback, accepting user "ops" / "mail-password-1". */
function smtpServer(opts: { tls?: { key: Buffer; cert: Buffer } } = {}) {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: false,
    allowInsecureAuth: !opts.tls,
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : { disabledCommands: ['STARTTLS'] }),
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === 'ops' && auth.password === 'mail-password-1') cb(null, { user: auth.username });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString()));
      stream.on('end', () => {
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data, user: session.user as string | undefined });
        cb();
      });
    },
  });
  return { mails, server, port: () => (server.server.address() as AddressInfo).port };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const listen = (s: { listen(port: number, host: string, cb: () => void): unknown }) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));

describe('notifications (real Postgres, a loopback webhook receiver and a real SMTP server)', () => {
  const ctx = signedInDirector();
  const hook = webhookServer();
  const smtp = smtpServer();
  let tlsSmtp: ReturnType<typeof smtpServer>;
  let certDir: string;
  const log = memoryLogger('notify');
  let clock = new Date();
  const tick = () => notifyTick({ db: ctx.d.db, secretKey: Buffer.alloc(32, 3), log: log.log, consoleUrl: 'https://vaultline.example.com', now: () => clock });
  const inject = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, cookie = ctx.cookie) =>
    ctx.d.app.fastify.inject({ method, url, headers: { cookie }, ...(payload ? { payload } : {}) });

  beforeAll(async () => {
    certDir = mkdtempSync(path.join(os.tmpdir(), 'vaultline-smtp-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', path.join(certDir, 'k.pem'), '-out', path.join(certDir, 'c.pem')], { stdio: 'ignore' });
    tlsSmtp = smtpServer({ tls: { key: readFileSync(path.join(certDir, 'k.pem')), cert: readFileSync(path.join(certDir, 'c.pem')) } });
    await Promise.all([listen(hook.server), listen(smtp.server), listen(tlsSmtp.server)]);
  });
  afterAll(async () => {
    hook.server.close();
    await new Promise<void>((r) => smtp.server.close(() => r()));
    await new Promise<void>((r) => tlsSmtp.server.close(() => r()));
    rmSync(certDir, { recursive: true, force: true });
  });

  /** A finished backup run of a job, as a Transporter leaves it. */
  const finishedRun = async (jobName: string, status: 'succeeded' | 'warning' | 'failed', finishedAt = clock, vmError: string | null = null) => {
    const vc = (await ctx.d.db.vCenter.findFirst()) ?? (await ctx.d.db.vCenter.create({ data: { name: 'vc', url: 'https://vc/sdk', username: 'u', passwordSealed: 'x' } }));
    const repo = (await ctx.d.db.repository.findFirst()) ?? (await ctx.d.db.repository.create({ data: { name: 'r', location: '/tmp/none' } }));
    const job = await ctx.d.db.backupJob.upsert({ where: { name: jobName }, create: { name: jobName, vcenterId: vc.id, repositoryId: repo.id, sources: [] }, update: {} });
    return ctx.d.db.jobRun.create({
      data: {
        jobId: job.id,
        status,
        trigger: 'schedule',
        startedAt: new Date(finishedAt.getTime() - 65_000),
        finishedAt,
        vms: {
          create: [
            { vmMoref: 'vm-1', vmName: 'db-01', status, error: vmError, log: [{ at: finishedAt.toISOString(), level: 'warn', message: 'quiescing the guest failed; crash-consistent instead' }] },
            { vmMoref: 'vm-2', vmName: 'web-01', status: 'succeeded' },
          ],
        },
      },
    });
  };

  let hookId = '';
  let mailId = '';

  it('targets are created by admins, listed without their secrets, and the secret is sealed at rest', async () => {
    const operator = await signInAs(ctx.d, ctx.cookie, 'notifyop', 'operator');
    const viewer = await signInAs(ctx.d, ctx.cookie, 'notifyviewer', 'viewer');
    const body = { kind: 'webhook', name: 'ops-hook', url: hook.url(), secret: 'shared-signing-secret-1' };
    expect((await inject('POST', '/api/notifications', body, operator)).statusCode).toBe(403);
    const created = await inject('POST', '/api/notifications', body);
    expect(created.statusCode).toBe(201);
    hookId = created.json().id;
    expect(created.json()).toMatchObject({ kind: 'webhook', events: 'problems', enabled: true, hasSecret: true });
    expect(JSON.stringify(created.json())).not.toContain('shared-signing-secret-1');
    const row = await ctx.d.db.notificationTarget.findUniqueOrThrow({ where: { id: hookId } });
    expect(row.secretSealed).toBeTruthy();
    expect(row.secretSealed).not.toContain('shared-signing-secret-1');
    const mail = await inject('POST', '/api/notifications', {
      kind: 'email',
      name: 'ops-mail',
      events: 'all',
      email: { host: '127.0.0.1', port: smtp.port(), security: 'none', username: 'ops', from: 'vaultline@example.com', to: ['oncall@example.com', 'lead@example.com'] },
      password: 'mail-password-1',
    });
    expect(mail.statusCode, mail.body).toBe(201);
    mailId = mail.json().id;
    expect((await inject('GET', '/api/notifications', undefined, operator)).json()).toHaveLength(2);
    expect((await inject('GET', '/api/notifications', undefined, viewer)).statusCode).toBe(403);
    const bad = await inject('POST', '/api/notifications', { kind: 'email', name: 'x', email: { host: 'h', from: 'nope', to: [] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().details.map((d: { path: string }) => d.path).sort()).toEqual(['email.from', 'email.to']);
  });

  it("a failed and a warning run reach the webhook (signed), every run reaches the e-mail target, each exactly once", async () => {
    clock = new Date(Date.now() + 1000);
    const failed = await finishedRun('nightly', 'failed', clock, 'disk Hard disk 1 (nbdssl): connection reset');
    const warned = await finishedRun('hourly', 'warning', clock);
    const ok = await finishedRun('weekly', 'succeeded', clock);
    const r = await tick();
    expect(r).toEqual({ sent: 5, failed: 0 });
    expect(await tick()).toEqual({ sent: 0, failed: 0 });

    expect(hook.got.map((h) => h.body.run!.id).sort()).toEqual([failed.id, warned.id].sort());
    const f = hook.got.find((h) => h.body.run!.id === failed.id)!;
    expect(f.headers['x-vaultline-signature']).toBe(`sha256=${createHmac('sha256', 'shared-signing-secret-1').update(f.raw).digest('hex')}`);
    expect(f.headers['x-vaultline-event']).toBe('run.finished');
    expect(f.body.subject).toBe('[Vaultline] backup job nightly failed (1 of 2 VMs)');
    expect(f.body.run).toMatchObject({ status: 'failed', job: 'nightly', vms: [{ name: 'db-01', status: 'failed', error: 'disk Hard disk 1 (nbdssl): connection reset' }, { name: 'web-01', status: 'succeeded' }] });
    expect(f.body.url).toBe(`https://vaultline.example.com/runs/${failed.id}`);
    expect(f.body.text).toContain('warn: quiescing the guest failed; crash-consistent instead');

    expect(smtp.mails).toHaveLength(3);
    for (const m of smtp.mails) {
      expect(m.user).toBe('ops');
      expect(m.to.sort()).toEqual(['lead@example.com', 'oncall@example.com']);
    }
    const subjects = smtp.mails.map((m) => /^Subject: (.*)$/m.exec(m.data)?.[1]).sort();
    expect(subjects).toEqual(['[Vaultline] backup job hourly finished with warnings (1 of 2 VMs)', '[Vaultline] backup job nightly failed (1 of 2 VMs)', '[Vaultline] backup job weekly succeeded (2 of 2 VMs)']);
    expect(await ctx.d.db.notificationDelivery.count({ where: { subjectId: ok.id, status: 'sent' } })).toBe(1);
  });

  it('a receiver that is down gets the message again later (backoff), and one that never answers is given up after 5 attempts, logged', async () => {
    hook.got.length = 0;
    hook.state.failNext = 1;
    clock = new Date(clock.getTime() + 1000);
    const run = await finishedRun('retry-me', 'failed', clock);
    await tick();
    const d = await ctx.d.db.notificationDelivery.findFirstOrThrow({ where: { subjectId: run.id, targetId: hookId } });
    expect(d).toMatchObject({ status: 'pending', attempts: 1 });
    expect(d.lastError).toBe('ops-hook: http://127.0.0.1:' + new URL(hook.url()).port + ' answered HTTP 500: receiver is down');
    expect(hook.got).toHaveLength(0);
    await tick(); // not due yet
    expect(hook.got).toHaveLength(0);
    clock = new Date(clock.getTime() + 61_000);
    await tick();
    expect(hook.got.map((h) => h.body.run!.id)).toEqual([run.id]);

    const deadPort = await closedPort();
    const dead = await ctx.d.db.notificationTarget.create({ data: { name: 'dead', kind: 'webhook', url: `http://127.0.0.1:${deadPort}/nothing`, createdAt: new Date(clock.getTime() - 1000) } });
    const lost = await finishedRun('unheard', 'failed', clock);
    for (let i = 0; i < 6; i++) {
      await tick();
      clock = new Date(clock.getTime() + 61 * 60_000);
    }
    const gaveUp = await ctx.d.db.notificationDelivery.findFirstOrThrow({ where: { subjectId: lost.id, targetId: dead.id } });
    expect(gaveUp).toMatchObject({ status: 'failed', attempts: 5 });
    expect(gaveUp.lastError).toBe(`dead: cannot reach http://127.0.0.1:${deadPort}: ECONNREFUSED`);
    expect(log.lines.join('\n')).toContain('notification given up: dead: cannot reach');
    await ctx.d.db.notificationTarget.delete({ where: { id: dead.id } });
  });

  it('leftovers the orphan sweep keeps failing to remove are reported once to every target', async () => {
    hook.got.length = 0;
    const stuck = await ctx.d.db.cleanupEntry.create({
      data: { kind: 'snapshot', transporterId: 'local', target: { vmMoref: 'vm-42', snapshot: 'snapshot-9' }, attempts: 3, lastError: 'InvalidState: the VM is locked' },
    });
    await ctx.d.db.cleanupEntry.create({ data: { kind: 'disk_attach', transporterId: 'local', target: {}, attempts: 1 } });
    await tick();
    await tick();
    const msgs = hook.got.filter((h) => h.body.event === 'cleanup.stuck');
    expect(msgs).toHaveLength(1);
    expect(msgs[0]!.body.subject).toBe('[Vaultline] cleanup needs attention: snapshot snapshot-9 on VM vm-42');
    expect(msgs[0]!.body.text).toContain('last error: InvalidState: the VM is locked');
    expect(smtp.mails.some((m) => m.data.includes('cleanup needs attention: snapshot snapshot-9'))).toBe(true);
    expect((await ctx.d.db.cleanupEntry.findUniqueOrThrow({ where: { id: stuck.id } })).notifiedAt).not.toBeNull();
  });

  it('a file-level restore mount the Director keeps failing to undo is reported once, with its host and mount point', async () => {
    hook.got.length = 0;
    // Another host's rows: this Director's own sweep never touches them.
    const session = '6f1c1d7e-0000-4000-8000-000000000001';
    const owner = { sessionId: session, host: 'director-2', ownerPid: 4242, ownerStart: '1234' };
    const stuck = await ctx.d.db.flrJournalEntry.create({
      data: { ...owner, layer: 'mount', target: { mountPoint: '/var/lib/vaultline/flr/s1/mnt/p1', device: '/dev/loop7' }, attempts: 3, lastError: 'umount: target is busy' },
    });
    await ctx.d.db.flrJournalEntry.create({ data: { ...owner, layer: 'loop', target: { backingFile: '/x/disk0', offset: 1048576 }, attempts: 2 } });
    await ctx.d.db.flrJournalEntry.create({ data: { ...owner, layer: 'fuse', target: { mountPoint: '/x' }, attempts: 5, resolvedAt: clock } });
    await tick();
    await tick();
    const msgs = hook.got.filter((h) => h.body.event === 'file-restore.stuck');
    expect(msgs).toHaveLength(1);
    expect(msgs[0]!.body.subject).toBe('[Vaultline] file-level restore cleanup needs attention on director-2: filesystem mounted at /var/lib/vaultline/flr/s1/mnt/p1');
    expect(msgs[0]!.body.text).toContain(`session ${session}`);
    expect(msgs[0]!.body.text).toContain('last error: umount: target is busy');
    expect(smtp.mails.some((m) => m.data.includes('last error: umount: target is busy'))).toBe(true);
    expect((await ctx.d.db.flrJournalEntry.findUniqueOrThrow({ where: { id: stuck.id } })).notifiedAt).not.toBeNull();
    await ctx.d.db.flrJournalEntry.deleteMany({ where: { sessionId: session } });
  });

  it('journal rows a sweep refused (forged, unsigned, naming what is not ours) are reported once, with the reason, before any attempt', async () => {
    hook.got.length = 0;
    const refused = await ctx.d.db.cleanupEntry.create({
      data: { kind: 'lun_mount', transporterId: 'local', target: { naa: 'naa.600', device: '/dev/sda' }, refusedAt: clock, refusal: 'it carries no MAC: written before journal signing, or not by Vaultline' },
    });
    const session = '6f1c1d7e-0000-4000-8000-000000000002';
    const flr = await ctx.d.db.flrJournalEntry.create({
      data: { sessionId: session, host: 'director-3', ownerPid: 4243, ownerStart: '1', layer: 'mount', target: { mountPoint: '/etc', device: '/dev/loop7' }, refusedAt: clock, refusal: 'mount point /etc is not under /var/lib/vaultline/flr' },
    });
    await tick();
    await tick();
    const cleanup = hook.got.filter((h) => h.body.event === 'cleanup.refused');
    expect(cleanup).toHaveLength(1);
    expect(cleanup[0]!.body.subject).toBe('[Vaultline] cleanup journal row refused: LUN naa.600 mounted on the Transporter (/dev/sda)');
    expect(cleanup[0]!.body.text).toContain('reason: it carries no MAC');
    const fr = hook.got.filter((h) => h.body.event === 'file-restore.refused');
    expect(fr).toHaveLength(1);
    expect(fr[0]!.body.subject).toBe('[Vaultline] file-level restore journal row refused on director-3: filesystem mounted at /etc');
    expect(fr[0]!.body.text).toContain('reason: mount point /etc is not under /var/lib/vaultline/flr');
    expect(smtp.mails.some((m) => m.data.includes('cleanup journal row refused'))).toBe(true);
    expect((await ctx.d.db.cleanupEntry.findUniqueOrThrow({ where: { id: refused.id } })).notifiedAt).not.toBeNull();
    expect((await ctx.d.db.flrJournalEntry.findUniqueOrThrow({ where: { id: flr.id } })).notifiedAt).not.toBeNull();
    await ctx.d.db.flrJournalEntry.deleteMany({ where: { sessionId: session } });
  });

  it('a new target is not flooded with runs that finished before it existed, nor with runs older than a day', async () => {
    const before = await finishedRun('old-news', 'failed', new Date(clock.getTime() - 1000));
    const ancient = await finishedRun('ancient', 'failed', new Date(clock.getTime() - 2 * 86_400_000));
    const late = await ctx.d.db.notificationTarget.create({ data: { name: 'late', kind: 'webhook', url: hook.url(), createdAt: clock } });
    await tick();
    expect(await ctx.d.db.notificationDelivery.count({ where: { targetId: late.id } })).toBe(0);
    expect(await ctx.d.db.notificationDelivery.count({ where: { subjectId: ancient.id } })).toBe(0);
    expect(await ctx.d.db.notificationDelivery.count({ where: { subjectId: before.id, targetId: hookId } })).toBe(1);
    await ctx.d.db.notificationTarget.delete({ where: { id: late.id } });
  });

  it('"send a test" reports the real outcome: delivered, refused credentials, an untrusted certificate, an unreachable host', async () => {
    hook.got.length = 0;
    const ok = await inject('POST', `/api/notifications/${hookId}/test`);
    expect(ok.statusCode).toBe(200);
    expect(hook.got.at(-1)!.body.event).toBe('test');
    expect((await inject('POST', `/api/notifications/${mailId}/test`)).statusCode).toBe(200);

    const wrongPassword = await inject('POST', '/api/notifications', {
      kind: 'email',
      name: 'bad-pass',
      email: { host: '127.0.0.1', port: smtp.port(), security: 'none', username: 'ops', from: 'v@example.com', to: ['a@example.com'] },
      password: 'not-it',
    });
    const r1 = await inject('POST', `/api/notifications/${wrongPassword.json().id}/test`);
    expect(r1.statusCode).toBe(502);
    expect(r1.json().message).toMatch(/^bad-pass: mail to a@example.com via 127\.0\.0\.1:\d+ failed: SMTP 535/);

    const selfSigned = await inject('POST', '/api/notifications', {
      kind: 'email',
      name: 'self-signed',
      email: { host: '127.0.0.1', port: tlsSmtp.port(), security: 'starttls', username: 'ops', from: 'v@example.com', to: ['a@example.com'] },
      password: 'mail-password-1',
    });
    const r2 = await inject('POST', `/api/notifications/${selfSigned.json().id}/test`);
    expect(r2.statusCode).toBe(502);
    expect(r2.json().message).toMatch(/self-signed certificate/i);
    expect(tlsSmtp.mails).toHaveLength(0);

    const port = await closedPort();
    const nowhere = await inject('POST', '/api/notifications', { kind: 'webhook', name: 'nowhere', url: `http://127.0.0.1:${port}/` });
    const r3 = await inject('POST', `/api/notifications/${nowhere.json().id}/test`);
    expect(r3.statusCode).toBe(502);
    expect(r3.json().message).toBe(`nowhere: cannot reach http://127.0.0.1:${port}: ECONNREFUSED`);
  });

  it('targets can be switched off or narrowed, and are removed with their deliveries', async () => {
    expect((await inject('PATCH', `/api/notifications/${hookId}`, { events: 'failures', enabled: false })).json()).toMatchObject({ events: 'failures', enabled: false });
    hook.got.length = 0;
    clock = new Date(clock.getTime() + 1000);
    const quiet = await finishedRun('quiet', 'failed', clock);
    // A delivery already queued for the target waits while it is off.
    await ctx.d.db.notificationDelivery.create({ data: { targetId: hookId, kind: 'run', subjectId: quiet.id } });
    await tick();
    expect(hook.got).toHaveLength(0);
    expect(await ctx.d.db.notificationDelivery.count({ where: { targetId: hookId, subjectId: quiet.id, status: 'pending' } })).toBe(1);
    expect((await inject('DELETE', `/api/notifications/${hookId}`)).statusCode).toBe(200);
    expect(await ctx.d.db.notificationDelivery.count({ where: { targetId: hookId } })).toBe(0);
    const audit = await ctx.d.db.auditEvent.findMany({ where: { subject: 'ops-hook' }, orderBy: { at: 'asc' } });
    expect(audit.map((a) => a.action)).toEqual(['notification.create', 'notification.test', 'notification.update', 'notification.delete']);
  });
});
