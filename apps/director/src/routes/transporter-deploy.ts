/**
 * Remote Transporters, deployed and managed over SSH (admin only, audited).
 *
 * Add: first contact answers with the host key's SHA-256 fingerprint to confirm;
 * the second call pins it, signs in, checks the host (Linux, architecture, glibc,
 * space, write permission) and stores the row with the credential sealed under
 * the appliance key. Deploy/upgrade copy the self-contained bundle and start it
 * (systemd when signed in as root on a systemd host, else a supervised
 * process); restart, status and remove act on the installed copy. Every SSH
 * connection checks the pinned host key; a changed key is refused naming both.
 *
 * A remote Transporter gets least privilege (docs/SECURITY.md): every deploy and
 * upgrade gives it a new database role, Redis user and key pair of its own
 * (services/transporter-access.ts), reached over TLS verified against the
 * appliance CA; never the appliance key nor the Director's logins. Removing it
 * revokes them.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  HostKeyConfirmSchema,
  RemoteRemoveQuerySchema,
  RemoteTransporterCreateSchema,
  TransporterEndpointsSchema,
  type RemoteDeployResult,
  type RemoteHostCheck,
  type RemoteTransporter,
  type RemoteTransporterStatus,
  type TransporterEndpoints,
} from '@vaultline/contracts';
import { SECRET_LABELS } from '@vaultline/appliance';
import { openSecret, sealSecret } from '@vaultline/config';
import type { Db } from '@vaultline/db';
import type { Redis, TransporterRegistry } from '@vaultline/queue';
import {
  checkHost,
  deployTransporter,
  probeHostKey,
  remoteLogTail,
  remoteStatus,
  removeTransporter,
  RemoteProblem,
  restartTransporter,
  TLS_CA_FILE,
  type HostCheck,
  type RemoteCredential,
  type RemoteHostSpec,
  type TransporterBundle,
} from '@vaultline/remote';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { admin, currentUser } from '../auth/guard.ts';
import type { AuditLog } from '../services/audit.ts';
import type { Credentials } from '../auth/credentials.ts';
import { provisionTransporter, revokeTransporter, type TransporterCredentials } from '../services/transporter-access.ts';
import { parse } from '../validate.ts';

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

type Row = Awaited<ReturnType<Db['transporter']['findFirstOrThrow']>>;


function dto(r: Row): RemoteTransporter {
  return {
    id: r.id,
    name: r.name,
    host: r.sshHost ?? r.host,
    port: r.sshPort ?? 22,
    username: r.sshUser ?? '',
    auth: r.sshAuth === 'password' ? 'password' : 'key',
    hostKeySha256: r.sshHostKeySha256 ?? '',
    installDir: r.installDir,
    deployedVersion: r.deployedVersion,
    deployedDigest: r.deployedDigest,
    supervisor: r.supervisor === 'systemd' || r.supervisor === 'process' ? r.supervisor : null,
    deployedAt: r.deployedAt?.toISOString() ?? null,
    registeredAt: r.registeredAt.toISOString(),
  };
}

function checkDto(c: HostCheck): RemoteHostCheck {
  return {
    os: c.facts.os,
    machine: c.facts.machine,
    glibc: c.facts.glibc,
    user: c.facts.user,
    root: c.facts.uid === 0,
    systemd: c.facts.systemd,
    installDir: c.installDir,
    freeBytes: c.folder.freeBytes,
    neededBytes: c.neededBytes,
  };
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

export async function transporterDeployRoutes(
  app: FastifyInstance,
  deps: { db: Db; redis: Redis; audit: AuditLog; credentials: Credentials; secretKey: Buffer; registry: TransporterRegistry; remote?: RemoteTransporterConfig },
): Promise<void> {
  const { db, audit, secretKey, registry } = deps;
  const busy = new Set<string>();

  const config = (): RemoteTransporterConfig => {
    if (!deps.remote) throw new AppError('service_unavailable', 'remote Transporters are not available in this Director (no bundle source configured)');
    return deps.remote;
  };

  const endpoints = async (): Promise<TransporterEndpoints> => {
    const row = await db.setting.findUnique({ where: { key: ENDPOINTS_SETTING } });
    return TransporterEndpointsSchema.parse(row?.value ?? {});
  };

  const credentialOf = (r: Row): RemoteCredential => {
    if (!r.sshKeySealed) throw new AppError('conflict', `${r.name} has no stored SSH credential`);
    return JSON.parse(openSecret(secretKey, SECRET_LABELS.transporterSshKey, r.sshKeySealed)) as RemoteCredential;
  };

  const specOf = (r: Row): RemoteHostSpec & { installDir: string } => ({
    host: r.sshHost!,
    port: r.sshPort ?? 22,
    username: r.sshUser!,
    credential: credentialOf(r),
    hostKeySha256: r.sshHostKeySha256!,
    installDir: r.installDir!,
  });

  const remoteRow = async (id: string): Promise<Row> => {
    const row = await db.transporter.findUnique({ where: { id } });
    if (!row || !row.sshHost) throw new AppError('not_found', 'no such remote Transporter');
    return row;
  };

  /** One operation per Transporter at a time. */
  const exclusive = async <T>(id: string, fn: () => Promise<T>): Promise<T> => {
    if (busy.has(id)) throw new AppError('conflict', 'another operation on this Transporter is still running; try again when it finished');
    busy.add(id);
    try {
      return await fn();
    } finally {
      busy.delete(id);
    }
  };

  /**
   * Stopping a Transporter cancels the VMs it is backing up or restoring (cleanly, but the run fails):
   * restart, upgrade and remove wait until it is idle, unless a removal is forced.
   */
  const refuseWhileBusy = async (row: Row, what: string) => {
    const running = await db.runVm.count({ where: { transporterId: row.id, status: 'running' } });
    if (running > 0) throw new AppError('conflict', `${row.name} is running ${running} VM job(s) now; ${what} would cancel them. Wait until they finish or cancel the run first`);
  };

  /** Waits for a heartbeat of the process with this pid (the remote's own clock does not matter). */
  const waitOnline = async (id: string, pid: number | null): Promise<boolean> => {
    const deadline = Date.now() + (config().onlineTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      const t = (await registry.list().catch(() => [])).find((x) => x.id === id);
      if (t?.online && (pid === null || t.pid === pid)) return true;
      await new Promise((r) => setTimeout(r, 250));
    }
    return false;
  };

  const tlsCa = async (): Promise<string> => {
    const file = config().tlsCaFile;
    if (!file) throw new AppError('service_unavailable', 'remote Transporters reach PostgreSQL and Redis over TLS only: set VAULTLINE_TRANSPORTER_TLS_CA to the CA certificate that signed their server certificates');
    return readFile(file, 'utf8');
  };

  const deploy = async (row: Row, why: 'deploy' | 'upgrade', actor: string, ip: string): Promise<RemoteDeployResult> => {
    const c = config();
    const [bundle, ca] = await Promise.all([c.bundle(), tlsCa()]);
    const spec = specOf(row);
    // New logins and key pair on every deploy: the previous ones stop working here.
    const cred = await provisionTransporter({ db, redis: deps.redis, secretKey, namespace: c.namespace }, row.id);
    const env = remoteTransporterEnv(c, await endpoints(), { id: row.id, name: row.name, installDir: spec.installDir }, cred);
    const result = await deployTransporter(spec, bundle, { transporterId: row.id, name: row.name, env, tlsCa: ca });
    const updated = await db.transporter.update({
      where: { id: row.id },
      data: { deployedVersion: result.version, deployedDigest: result.digest, supervisor: result.supervisor, deployedAt: new Date(), installDir: result.installDir },
    });
    const online = await waitOnline(row.id, result.pid);
    let message = `${why === 'upgrade' ? 'upgraded to' : 'installed'} version ${result.version} in ${result.versionDir}, started as ${result.supervisor === 'systemd' ? `systemd unit ${result.unit}` : 'a supervised background process (pid file in the install folder)'}`;
    if (!online) {
      const tail = await remoteLogTail(spec, spec.installDir, row.id).catch((e: unknown) => `(log not readable: ${(e as Error).message})`);
      message += `, but no heartbeat came within ${Math.round((config().onlineTimeoutMs ?? 60_000) / 1000)} s: can it reach PostgreSQL and Redis at the Transporter addresses (PUT /api/settings/transporter-endpoints)? Its last log lines: ${tail}`;
    }
    await audit.record({
      actor,
      action: `transporter.remote.${why}`,
      subject: row.name,
      detail: { id: row.id, host: spec.host, version: result.version, digest: result.digest, supervisor: result.supervisor, installDir: result.installDir, replaced: result.replaced, online },
      ip,
    });
    return { transporter: dto(updated), supervisor: result.supervisor, version: result.version, installDir: result.installDir, pid: result.pid, online, changed: true, message, check: checkDto(result.check) };
  };

  app.get('/transporters/remote', admin, async () =>
    (await db.transporter.findMany({ where: { sshHost: { not: null } }, orderBy: { name: 'asc' } })).map(dto),
  );

  app.post('/transporters/remote', admin, async (request, reply) => {
    const body = parse(RemoteTransporterCreateSchema, request.body);
    const c = config();
    if (await db.transporter.findFirst({ where: { name: body.name } })) throw new AppError('conflict', `a Transporter named ${body.name} already exists`);
    const presented = await probeHostKey({ host: body.host, port: body.port });
    if (!body.hostKeySha256) {
      reply.code(409);
      return {
        code: 'host_key_confirmation_required',
        message: `confirm that ${body.host}:${body.port} presents the SSH host key ${presented.sha256} (${presented.keyType}; on the host: ssh-keygen -lf /etc/ssh/ssh_host_${presented.keyType.replace(/^ssh-|-.*$/g, '')}_key.pub), then send it back as hostKeySha256`,
        hostKeySha256: presented.sha256,
        keyType: presented.keyType,
      };
    }
    if (presented.sha256 !== body.hostKeySha256) {
      throw new AppError('bad_request', `${body.host}:${body.port} presents the host key ${presented.sha256}, not the confirmed ${body.hostKeySha256}; refusing to connect`, [{ path: 'hostKeySha256', message: 'host_key' }]);
    }
    const credential: RemoteCredential = body.password ? { password: body.password } : { privateKey: body.privateKey!, ...(body.passphrase ? { passphrase: body.passphrase } : {}) };
    const bundle = await c.bundle();
    const check = await checkHost({ host: body.host, port: body.port, username: body.username, credential, hostKeySha256: presented.sha256, installDir: body.installDir ?? null }, bundle);
    const clash = await db.transporter.findFirst({ where: { sshHost: body.host, sshPort: body.port, installDir: check.installDir } });
    if (clash) throw new AppError('conflict', `${clash.name} is already installed in ${check.installDir} on ${body.host}; choose another install folder`, [{ path: 'installDir', message: 'in use' }]);
    const row = await db.transporter.create({
      data: {
        id: `r-${randomBytes(4).toString('hex')}`,
        name: body.name,
        host: body.host,
        version: '',
        sshHost: body.host,
        sshPort: body.port,
        sshUser: body.username,
        sshAuth: body.password ? 'password' : 'key',
        sshKeySealed: sealSecret(secretKey, SECRET_LABELS.transporterSshKey, JSON.stringify(credential)),
        sshHostKeySha256: presented.sha256,
        installDir: check.installDir,
      },
    });
    await audit.record({
      actor: currentUser(request).username,
      action: 'transporter.remote.add',
      subject: body.name,
      detail: { id: row.id, host: body.host, port: body.port, username: body.username, auth: row.sshAuth, hostKeySha256: presented.sha256, installDir: check.installDir, os: check.facts.os, machine: check.facts.machine, glibc: check.facts.glibc },
      ip: request.ip,
    });
    reply.code(201);
    return { transporter: dto(row), check: checkDto(check) };
  });

  app.get('/transporters/remote/:id', admin, async (request): Promise<RemoteTransporterStatus> => {
    const { id } = parse(z.object({ id: z.string().min(1) }), request.params);
    const row = await remoteRow(id);
    const c = config();
    const live = (await registry.list().catch(() => [])).find((t) => t.id === id);
    let process: RemoteTransporterStatus['process'] = null;
    let problem: string | undefined;
    if (row.installDir) {
      try {
        const s = await remoteStatus(specOf(row), row.installDir, row.id);
        process = {
          running: s.running,
          pid: s.pid,
          installedVersion: s.installed?.version ?? null,
          installedDigest: s.installed?.digest ?? null,
          runningFrom: s.runningFrom,
          supervisor: s.installed?.supervisor ?? null,
        };
      } catch (err) {
        if (!(err instanceof RemoteProblem)) throw err;
        problem = err.message;
      }
    }
    const bundle = row.deployedVersion ? await c.bundle().catch(() => null) : null;
    return {
      ...dto(row),
      online: live?.online ?? false,
      lastHeartbeat: live?.lastHeartbeat ?? row.lastHeartbeat?.toISOString() ?? null,
      process,
      applianceVersion: c.version,
      upgradeAvailable: Boolean(bundle && (row.deployedVersion !== bundle.version || row.deployedDigest !== bundle.digest)),
      ...(problem ? { problem } : {}),
    };
  });

  app.post('/transporters/remote/:id/deploy', admin, async (request) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), request.params);
    return exclusive(id, async () => {
      const row = await remoteRow(id);
      if (row.deployedVersion) throw new AppError('conflict', `${row.name} is already deployed (version ${row.deployedVersion}); use upgrade or restart`);
      return deploy(row, 'deploy', currentUser(request).username, request.ip);
    });
  });

  app.post('/transporters/remote/:id/upgrade', admin, async (request): Promise<RemoteDeployResult> => {
    const { id } = parse(z.object({ id: z.string().min(1) }), request.params);
    return exclusive(id, async () => {
      const row = await remoteRow(id);
      if (!row.deployedVersion) throw new AppError('conflict', `${row.name} is not deployed yet; deploy it first`);
      const bundle = await config().bundle();
      if (row.deployedVersion === bundle.version && row.deployedDigest === bundle.digest) {
        const live = (await registry.list().catch(() => [])).find((t) => t.id === id);
        return {
          transporter: dto(row),
          supervisor: row.supervisor === 'systemd' ? 'systemd' : 'process',
          version: row.deployedVersion,
          installDir: row.installDir!,
          pid: live?.pid ?? null,
          online: live?.online ?? false,
          changed: false,
          message: `${row.name} already runs this appliance's Transporter (version ${bundle.version}); nothing to do`,
        };
      }
      await refuseWhileBusy(row, 'upgrading it');
      return deploy(row, 'upgrade', currentUser(request).username, request.ip);
    });
  });

  app.post('/transporters/remote/:id/restart', admin, async (request) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), request.params);
    return exclusive(id, async () => {
      const row = await remoteRow(id);
      if (!row.installDir || !row.deployedVersion) throw new AppError('conflict', `${row.name} is not deployed yet; deploy it first`);
      await refuseWhileBusy(row, 'restarting it');
      const state = await restartTransporter(specOf(row), row.installDir, row.id);
      const online = await waitOnline(row.id, state.pid);
      await audit.record({ actor: currentUser(request).username, action: 'transporter.remote.restart', subject: row.name, detail: { id: row.id, pid: state.pid, online }, ip: request.ip });
      return { pid: state.pid, running: state.running, online, supervisor: state.installed?.supervisor ?? null };
    });
  });

  app.post('/transporters/remote/:id/host-key', admin, async (request, reply) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), request.params);
    const body = parse(HostKeyConfirmSchema, request.body);
    const row = await remoteRow(id);
    const presented = await probeHostKey({ host: row.sshHost!, port: row.sshPort ?? 22 });
    if (!body.hostKeySha256) {
      reply.code(409);
      return {
        code: 'host_key_confirmation_required',
        message: `${row.sshHost}:${row.sshPort ?? 22} presents the host key ${presented.sha256} (pinned: ${row.sshHostKeySha256}); confirm it on the host, then send it back as hostKeySha256`,
        hostKeySha256: presented.sha256,
        keyType: presented.keyType,
      };
    }
    if (presented.sha256 !== body.hostKeySha256) throw new AppError('bad_request', `the host presents ${presented.sha256}, not the confirmed ${body.hostKeySha256}; nothing changed`, [{ path: 'hostKeySha256', message: 'host_key' }]);
    const updated = await db.transporter.update({ where: { id }, data: { sshHostKeySha256: presented.sha256 } });
    await audit.record({ actor: currentUser(request).username, action: 'transporter.remote.host-key', subject: row.name, detail: { id, from: row.sshHostKeySha256, to: presented.sha256 }, ip: request.ip });
    return dto(updated);
  });

  app.delete('/transporters/remote/:id', admin, async (request) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), request.params);
    const { force } = parse(RemoteRemoveQuerySchema, request.query);
    return exclusive(id, async () => {
      const row = await remoteRow(id);
      if (!force) await refuseWhileBusy(row, 'removing it');
      await deps.credentials.reauthenticate(request, 'transporter.remote.remove', row.name);
      let cleaned = true;
      let message = `${row.name} removed: process stopped, ${row.installDir ?? 'its install folder'} and the env file deleted on ${row.sshHost}`;
      if (row.installDir) {
        try {
          const r = await removeTransporter(specOf(row), row.installDir, row.id);
          if (r.leftOver.length) message += `; ${row.installDir} was kept (it existed before, or holds files not made by Vaultline: ${r.leftOver.join(', ')})`;
        } catch (err) {
          if (!(err instanceof RemoteProblem) && !(err instanceof AppError)) throw err;
          if (!force) {
            throw new AppError(err instanceof RemoteProblem && err.kind === 'host_key' ? 'conflict' : 'bad_request', `${err.message}; nothing was removed. If the host is gone for good, remove with ?force=true`);
          }
          cleaned = false;
          message =
            `${row.name} removed from the Director without cleaning ${row.sshHost} (${err.message}). ` +
            `If that host comes back, it may still have: the Transporter running (${row.supervisor === 'systemd' ? `systemd unit vaultline-transporter-${row.id}.service` : `supervisor.pid in ${row.installDir}`}), ` +
            `${row.installDir} with the bundle, and ${row.installDir}/transporter.env holding its (now revoked) database and Redis logins and key: delete them`;
        }
      }
      await revokeTransporter({ db, redis: deps.redis }, row.id);
      await db.transporter.delete({ where: { id } });
      await registry.remove(id).catch(() => undefined);
      await audit.record({ actor: currentUser(request).username, action: 'transporter.remote.remove', subject: row.name, detail: { id, host: row.sshHost, installDir: row.installDir, force, cleaned }, ip: request.ip });
      return { ok: true, cleaned, message };
    });
  });

  app.get('/settings/transporter-endpoints', admin, async () => {
    const c = config();
    const ep = await endpoints();
    // The URLs as remote Transporters get them, without credentials.
    const shown = (u: string) => {
      const x = new URL(u);
      x.username = x.username ? '***' : '';
      x.password = '';
      return x.href;
    };
    return { ...ep, databaseUrl: shown(urlForTransporters(c.databaseUrl, ep.databaseAddress)), redisUrl: shown(urlForTransporters(c.redisUrl, ep.redisAddress)) };
  });

  app.put('/settings/transporter-endpoints', admin, async (request) => {
    const body = parse(TransporterEndpointsSchema, request.body);
    await db.setting.upsert({ where: { key: ENDPOINTS_SETTING }, create: { key: ENDPOINTS_SETTING, value: body }, update: { value: body } });
    await audit.record({ actor: currentUser(request).username, action: 'settings.transporter-endpoints', detail: body, ip: request.ip });
    return body;
  });
}
