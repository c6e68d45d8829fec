/**
 * SSH sessions to a remote Transporter host (node-ssh over ssh2). The host key
 * is checked on every connection against the pinned SHA-256 fingerprint; first
 * contact only reads the fingerprint (no credentials are sent) so the admin can
 * confirm it. Errors are RemoteProblems saying what to do.
 */
import { createHash } from 'node:crypto';
import { NodeSSH, type Config } from 'node-ssh';
import type { Readable } from 'node:stream';

export type RemoteProblemKind = 'unreachable' | 'auth' | 'host_key' | 'platform' | 'space' | 'permission' | 'install' | 'credentials' | 'not_installed';

/** An error the admin can act on; the message names the host and what went wrong. */
export class RemoteProblem extends Error {
  override name = 'RemoteProblem';
  constructor(
    readonly kind: RemoteProblemKind,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export type RemoteCredential = { privateKey: string; passphrase?: string } | { password: string };

export interface RemoteEndpoint {
  host: string;
  port: number;
  username: string;
}

export interface RemoteTarget extends RemoteEndpoint {
  credential: RemoteCredential;
  /** The pinned fingerprint (`SHA256:…`); the connection is refused when the host presents another. */
  hostKeySha256: string;
  readyTimeoutMs?: number;
}

/** OpenSSH's notation of a host key fingerprint, as `ssh-keygen -lf` prints it. */
export function fingerprintOf(rawKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(rawKey).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …). */
function keyTypeOf(rawKey: Buffer): string {
  if (rawKey.length < 4) return 'unknown';
  const len = rawKey.readUInt32BE(0);
  return rawKey.subarray(4, 4 + len).toString('latin1') || 'unknown';
}

function where(e: { host: string; port: number }): string {
  return `${e.host}:${e.port}`;
}

function classify(err: unknown, target: RemoteEndpoint, presented: string | null, pinned: string | null): RemoteProblem {
  if (err instanceof RemoteProblem) return err;
  const e = err as { code?: string; level?: string; message?: string };
  const msg = e?.message ?? String(err);
  if (pinned && presented && presented !== pinned) {
    return new RemoteProblem(
      'host_key',
      `the SSH host key of ${where(target)} has changed: it now presents ${presented}, but ${pinned} was confirmed; refusing to connect (if the host was reinstalled, confirm the new key)`,
      { presented, pinned },
    );
  }
  if (/ECONNREFUSED/.test(e?.code ?? msg)) return new RemoteProblem('unreachable', `cannot reach ${where(target)}: the connection was refused (is sshd running and the port right?)`);
  if (/ENOTFOUND|EAI_AGAIN/.test(e?.code ?? msg)) return new RemoteProblem('unreachable', `cannot reach ${where(target)}: the host name does not resolve`);
  if (/EHOSTUNREACH|ENETUNREACH/.test(e?.code ?? msg)) return new RemoteProblem('unreachable', `cannot reach ${where(target)}: no route to the host`);
  if (/ETIMEDOUT|Timed out|No response from server/i.test(`${e?.code ?? ''} ${msg}`)) return new RemoteProblem('unreachable', `cannot reach ${where(target)}: no SSH answer in time (firewall, wrong port or host down?)`);
  if (/ECONNRESET|Connection lost|socket hang up/i.test(`${e?.code ?? ''} ${msg}`)) return new RemoteProblem('unreachable', `${where(target)} closed the connection before SSH was set up (is this an SSH port?)`);
  if (e?.level === 'client-authentication' || /authentication methods failed/i.test(msg)) {
    return new RemoteProblem('auth', `${target.username}@${where(target)} refused the credentials: wrong private key, passphrase, password or user name`);
  }
  if (/passphrase|privateKey|private key|key format/i.test(msg)) return new RemoteProblem('credentials', `the private key cannot be used: ${msg}`);
  return new RemoteProblem('unreachable', `SSH to ${where(target)} failed: ${msg}`);
}

/** First contact: the host key the server presents, without authenticating. */
export async function probeHostKey(endpoint: { host: string; port: number }, timeoutMs = 10_000): Promise<{ sha256: string; keyType: string }> {
  const ssh = new NodeSSH();
  let seen: { sha256: string; keyType: string } | null = null;
  try {
    await ssh.connect({
      host: endpoint.host,
      port: endpoint.port,
      // A user name is needed to start; authentication never starts because the key is refused first.
      username: 'vaultline-probe',
      readyTimeout: timeoutMs,
      hostVerifier: (key: Buffer) => {
        seen = { sha256: fingerprintOf(key), keyType: keyTypeOf(key) };
        return false;
      },
    } as Config);
  } catch (err) {
    if (seen) return seen;
    throw classify(err, { ...endpoint, username: 'vaultline-probe' }, null, null);
  } finally {
    ssh.dispose();
  }
  throw new RemoteProblem('host_key', `${where(endpoint)} accepted a connection without presenting a host key`);
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One authenticated SSH session; the caller disposes it. */
export class RemoteSession {
  private constructor(
    private readonly ssh: NodeSSH,
    readonly target: RemoteEndpoint,
  ) {}

  static async open(target: RemoteTarget): Promise<RemoteSession> {
    const ssh = new NodeSSH();
    let presented: string | null = null;
    const config: Config = {
      host: target.host,
      port: target.port,
      username: target.username,
      readyTimeout: target.readyTimeoutMs ?? 15_000,
      keepaliveInterval: 10_000,
      // Hosts that take passwords only through keyboard-interactive (PAM) get it answered with the password.
      tryKeyboard: 'password' in target.credential,
      hostVerifier: (key: Buffer) => {
        presented = fingerprintOf(key);
        return presented === target.hostKeySha256;
      },
    } as Config;
    if ('password' in target.credential) config.password = target.credential.password;
    else {
      config.privateKey = target.credential.privateKey;
      if (target.credential.passphrase) config.passphrase = target.credential.passphrase;
    }
    try {
      await ssh.connect(config);
    } catch (err) {
      ssh.dispose();
      throw classify(err, target, presented, target.hostKeySha256);
    }
    return new RemoteSession(ssh, target);
  }

  /** Runs a POSIX sh script (sent on stdin, so nothing of it shows in `ps` or the remote's logs). */
  async sh(script: string, opts: { stdin?: Readable } = {}): Promise<ExecResult> {
    if (opts.stdin) {
      // The data goes on stdin; the script itself must then be on the command line (it holds no secrets).
      const r = await this.ssh.execCommand(`sh -c ${shq(script)}`, { stdin: opts.stdin, noTrim: true });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    }
    const r = await this.ssh.execCommand('sh -s', { stdin: script, noTrim: true });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like sh(), but a non-zero exit is an error of `kind` with the script's stderr. */
  async shOk(script: string, what: string, kind: RemoteProblemKind = 'install', opts: { stdin?: Readable } = {}): Promise<string> {
    const r = await this.sh(script, opts);
    if (r.code !== 0) throw new RemoteProblem(kind, `${what} on ${this.target.host} failed (exit ${r.code ?? 'signal'}): ${lastLines(r.stderr || r.stdout, 5)}`);
    return r.stdout;
  }

  dispose(): void {
    this.ssh.dispose();
  }
}

export function lastLines(text: string, n: number): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.slice(-n).join(' | ') || '(no output)';
}

/** POSIX shell single-quoting. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
