/**
 * Remote Transporters, deployed and managed over SSH (the routes are routes/transporter-deploy.ts).
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
import type {
  HostKeyConfirmation,
  RemoteAddResult,
  RemoteDeployResult,
  RemoteHostCheck,
  RemoteRemoveResult,
  RemoteRestartResult,
  RemoteTransporter,
  RemoteTransporterCreate,
  RemoteTransporterStatus,
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
  type HostCheck,
  type RemoteCredential,
  type RemoteHostSpec,
} from '@vaultline/remote';
import { AppError } from '../errors.ts';
import type { AuditLog } from './audit.ts';
import { remoteTransporterEnv, requireRemoteConfig, transporterEndpoints, type RemoteTransporterConfig } from './remote-transporter-env.ts';
import { provisionTransporter, revokeTransporter } from './transporter-access.ts';

type Row = Awaited<ReturnType<Db['transporter']['findFirstOrThrow']>>;

/** Who asked, for the audit log. */
export interface Requester {
  actor: string;
  ip: string;
}

/** An answer with its status: 409 asks the admin to confirm the host key presented. */
export type Confirmable<T, S extends 200 | 201> = { status: 409; body: HostKeyConfirmation } | { status: S; body: T };

export interface RemoteTransportersDeps {
  db: Db;
  redis: Redis;
  audit: AuditLog;
  secretKey: Buffer;
  registry: TransporterRegistry;
  remote?: RemoteTransporterConfig;
}

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

export class RemoteTransporters {
  /** One operation per Transporter at a time: the ids with one running. */
  private readonly busy = new Set<string>();

  constructor(private readonly deps: RemoteTransportersDeps) {}

  private config(): RemoteTransporterConfig {
    return requireRemoteConfig(this.deps.remote);
  }

  private credentialOf(r: Row): RemoteCredential {
    if (!r.sshKeySealed) throw new AppError('conflict', `${r.name} has no stored SSH credential`);
    return JSON.parse(openSecret(this.deps.secretKey, SECRET_LABELS.transporterSshKey, r.sshKeySealed)) as RemoteCredential;
  }

  private specOf(r: Row): RemoteHostSpec & { installDir: string } {
    return { host: r.sshHost!, port: r.sshPort ?? 22, username: r.sshUser!, credential: this.credentialOf(r), hostKeySha256: r.sshHostKeySha256!, installDir: r.installDir! };
  }

  private async remoteRow(id: string): Promise<Row> {
    const row = await this.deps.db.transporter.findUnique({ where: { id } });
    if (!row || !row.sshHost) throw new AppError('not_found', 'no such remote Transporter');
    return row;
  }

  private async exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(id)) throw new AppError('conflict', 'another operation on this Transporter is still running; try again when it finished');
    this.busy.add(id);
    try {
      return await fn();
    } finally {
      this.busy.delete(id);
    }
  }

  /**
   * Stopping a Transporter cancels the VMs it is backing up or restoring (cleanly, but the run fails):
   * restart, upgrade and remove wait until it is idle, unless a removal is forced.
   */
  private async refuseWhileBusy(row: Row, what: string): Promise<void> {
    const running = await this.deps.db.runVm.count({ where: { transporterId: row.id, status: 'running' } });
    if (running > 0) throw new AppError('conflict', `${row.name} is running ${running} VM job(s) now; ${what} would cancel them. Wait until they finish or cancel the run first`);
  }

  private async live(id: string) {
    return (await this.deps.registry.list().catch(() => [])).find((t) => t.id === id);
  }

  /** Waits for a heartbeat of the process with this pid (the remote's own clock does not matter). */
  private async waitOnline(id: string, pid: number | null): Promise<boolean> {
    const deadline = Date.now() + (this.config().onlineTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      const t = await this.live(id);
      if (t?.online && (pid === null || t.pid === pid)) return true;
      await new Promise((r) => setTimeout(r, 250));
    }
    return false;
  }

  private async tlsCa(): Promise<string> {
    const file = this.config().tlsCaFile;
    if (!file) throw new AppError('service_unavailable', 'remote Transporters reach PostgreSQL and Redis over TLS only: set VAULTLINE_TRANSPORTER_TLS_CA to the CA certificate that signed their server certificates');
    return readFile(file, 'utf8');
  }

  private async install(row: Row, why: 'deploy' | 'upgrade', who: Requester): Promise<RemoteDeployResult> {
    const { db, audit, secretKey } = this.deps;
    const c = this.config();
    const [bundle, ca] = await Promise.all([c.bundle(), this.tlsCa()]);
    const spec = this.specOf(row);
    // New logins and key pair on every deploy: the previous ones stop working here.
    const cred = await provisionTransporter({ db, redis: this.deps.redis, secretKey, namespace: c.namespace }, row.id);
    const env = remoteTransporterEnv(c, await transporterEndpoints(db), { id: row.id, name: row.name, installDir: spec.installDir }, cred);
    const result = await deployTransporter(spec, bundle, { transporterId: row.id, name: row.name, env, tlsCa: ca });
    const updated = await db.transporter.update({
      where: { id: row.id },
      data: { deployedVersion: result.version, deployedDigest: result.digest, supervisor: result.supervisor, deployedAt: new Date(), installDir: result.installDir },
    });
    const online = await this.waitOnline(row.id, result.pid);
    let message = `${why === 'upgrade' ? 'upgraded to' : 'installed'} version ${result.version} in ${result.versionDir}, started as ${result.supervisor === 'systemd' ? `systemd unit ${result.unit}` : 'a supervised background process (pid file in the install folder)'}`;
    if (!online) {
      const tail = await remoteLogTail(spec, spec.installDir, row.id).catch((e: unknown) => `(log not readable: ${(e as Error).message})`);
      message += `, but no heartbeat came within ${Math.round((c.onlineTimeoutMs ?? 60_000) / 1000)} s: can it reach PostgreSQL and Redis at the Transporter addresses (PUT /api/settings/transporter-endpoints)? Its last log lines: ${tail}`;
    }
    await audit.record({
      actor: who.actor,
      action: `transporter.remote.${why}`,
      subject: row.name,
      detail: { id: row.id, host: spec.host, version: result.version, digest: result.digest, supervisor: result.supervisor, installDir: result.installDir, replaced: result.replaced, online },
      ip: who.ip,
    });
    return { transporter: dto(updated), supervisor: result.supervisor, version: result.version, installDir: result.installDir, pid: result.pid, online, changed: true, message, check: checkDto(result.check) };
  }

  async list(): Promise<RemoteTransporter[]> {
    return (await this.deps.db.transporter.findMany({ where: { sshHost: { not: null } }, orderBy: { name: 'asc' } })).map(dto);
  }

  async add(body: RemoteTransporterCreate, who: Requester): Promise<Confirmable<RemoteAddResult, 201>> {
    const { db, audit, secretKey } = this.deps;
    const c = this.config();
    if (await db.transporter.findFirst({ where: { name: body.name } })) throw new AppError('conflict', `a Transporter named ${body.name} already exists`);
    const presented = await probeHostKey({ host: body.host, port: body.port });
    if (!body.hostKeySha256) {
      return {
        status: 409,
        body: {
          code: 'host_key_confirmation_required',
          message: `confirm that ${body.host}:${body.port} presents the SSH host key ${presented.sha256} (${presented.keyType}; on the host: ssh-keygen -lf /etc/ssh/ssh_host_${presented.keyType.replace(/^ssh-|-.*$/g, '')}_key.pub), then send it back as hostKeySha256`,
          hostKeySha256: presented.sha256,
          keyType: presented.keyType,
        },
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
      actor: who.actor,
      action: 'transporter.remote.add',
      subject: body.name,
      detail: { id: row.id, host: body.host, port: body.port, username: body.username, auth: row.sshAuth, hostKeySha256: presented.sha256, installDir: check.installDir, os: check.facts.os, machine: check.facts.machine, glibc: check.facts.glibc },
      ip: who.ip,
    });
    return { status: 201, body: { transporter: dto(row), check: checkDto(check) } };
  }

  async status(id: string): Promise<RemoteTransporterStatus> {
    const row = await this.remoteRow(id);
    const c = this.config();
    const live = await this.live(id);
    let process: RemoteTransporterStatus['process'] = null;
    let problem: string | undefined;
    if (row.installDir) {
      try {
        const s = await remoteStatus(this.specOf(row), row.installDir, row.id);
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
  }

  deploy(id: string, who: Requester): Promise<RemoteDeployResult> {
    return this.exclusive(id, async () => {
      const row = await this.remoteRow(id);
      if (row.deployedVersion) throw new AppError('conflict', `${row.name} is already deployed (version ${row.deployedVersion}); use upgrade or restart`);
      return this.install(row, 'deploy', who);
    });
  }

  upgrade(id: string, who: Requester): Promise<RemoteDeployResult> {
    return this.exclusive(id, async () => {
      const row = await this.remoteRow(id);
      if (!row.deployedVersion) throw new AppError('conflict', `${row.name} is not deployed yet; deploy it first`);
      const bundle = await this.config().bundle();
      if (row.deployedVersion === bundle.version && row.deployedDigest === bundle.digest) {
        const live = await this.live(id);
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
      await this.refuseWhileBusy(row, 'upgrading it');
      return this.install(row, 'upgrade', who);
    });
  }

  restart(id: string, who: Requester): Promise<RemoteRestartResult> {
    return this.exclusive(id, async () => {
      const row = await this.remoteRow(id);
      if (!row.installDir || !row.deployedVersion) throw new AppError('conflict', `${row.name} is not deployed yet; deploy it first`);
      await this.refuseWhileBusy(row, 'restarting it');
      const state = await restartTransporter(this.specOf(row), row.installDir, row.id);
      const online = await this.waitOnline(row.id, state.pid);
      await this.deps.audit.record({ actor: who.actor, action: 'transporter.remote.restart', subject: row.name, detail: { id: row.id, pid: state.pid, online }, ip: who.ip });
      return { pid: state.pid, running: state.running, online, supervisor: state.installed?.supervisor ?? null };
    });
  }

  /** Pins the key the host presents now (after it was reinstalled), once the admin confirmed it. */
  async repinHostKey(id: string, confirmed: string | undefined, who: Requester): Promise<Confirmable<RemoteTransporter, 200>> {
    const row = await this.remoteRow(id);
    const presented = await probeHostKey({ host: row.sshHost!, port: row.sshPort ?? 22 });
    if (!confirmed) {
      return {
        status: 409,
        body: {
          code: 'host_key_confirmation_required',
          message: `${row.sshHost}:${row.sshPort ?? 22} presents the host key ${presented.sha256} (pinned: ${row.sshHostKeySha256}); confirm it on the host, then send it back as hostKeySha256`,
          hostKeySha256: presented.sha256,
          keyType: presented.keyType,
        },
      };
    }
    if (presented.sha256 !== confirmed) throw new AppError('bad_request', `the host presents ${presented.sha256}, not the confirmed ${confirmed}; nothing changed`, [{ path: 'hostKeySha256', message: 'host_key' }]);
    const updated = await this.deps.db.transporter.update({ where: { id }, data: { sshHostKeySha256: presented.sha256 } });
    await this.deps.audit.record({ actor: who.actor, action: 'transporter.remote.host-key', subject: row.name, detail: { id, from: row.sshHostKeySha256, to: presented.sha256 }, ip: who.ip });
    return { status: 200, body: dto(updated) };
  }

  /**
   * Stops it, deletes its files on the host and revokes its logins; `reauthenticate` (the admin's password
   * again) runs once the Transporter is known and idle. Forced, a host that cannot be cleaned is left as is.
   */
  remove(id: string, force: boolean, who: Requester, reauthenticate: (name: string) => Promise<void>): Promise<RemoteRemoveResult> {
    const { db, registry } = this.deps;
    return this.exclusive(id, async () => {
      const row = await this.remoteRow(id);
      if (!force) await this.refuseWhileBusy(row, 'removing it');
      await reauthenticate(row.name);
      let cleaned = true;
      let message = `${row.name} removed: process stopped, ${row.installDir ?? 'its install folder'} and the env file deleted on ${row.sshHost}`;
      if (row.installDir) {
        try {
          const r = await removeTransporter(this.specOf(row), row.installDir, row.id);
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
      await revokeTransporter({ db, redis: this.deps.redis }, row.id);
      await db.transporter.delete({ where: { id } });
      await registry.remove(id).catch(() => undefined);
      await this.deps.audit.record({ actor: who.actor, action: 'transporter.remote.remove', subject: row.name, detail: { id, host: row.sshHost, installDir: row.installDir, force, cleaned }, ip: who.ip });
      return { ok: true, cleaned, message };
    });
  }
}
