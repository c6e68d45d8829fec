/**
 * A real OpenSSH sshd on 127.0.0.1 for tests: a random free port, its own host
 * key, and a fresh local user that can sign in with a key only (or also with a
 * password, when asked). Needs root (useradd); OpenSSH is installed from
 * Debian's packages when missing. stop() kills sshd by its pid and removes the
 * user, its home and everything the lab made.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '@vaultline/config';

export interface SshLabOptions {
  /** Prefix of the generated user name (a random suffix is added). */
  userPrefix?: string;
  /** Also allow this password for the user (PasswordAuthentication yes). */
  password?: string;
}

export interface SshLab {
  host: '127.0.0.1';
  port: number;
  user: string;
  uid: number;
  /** The user's home (owned by the user, mode 0700). */
  home: string;
  /** The client's private key (OpenSSH format) that the user accepts. */
  privateKey: string;
  /** The server's public host key line (`ssh-ed25519 AAAA…`). */
  hostKeyLine(): string;
  /** The host key's SHA-256 fingerprint as `ssh-keygen -l` prints it (`SHA256:…`). */
  hostKeyFingerprint(): string;
  /** Restarts sshd on the same port with a newly generated host key. */
  rotateHostKey(): Promise<void>;
  /** Kills sshd, removes the user and every file of the lab. */
  stop(): Promise<void>;
}

/** A fresh machine may lack OpenSSH: install it from Debian's packages (without starting its service). */
export function ensureSshd(): void {
  if (fs.existsSync('/usr/sbin/sshd') && fs.existsSync('/usr/bin/ssh-keygen')) return;
  if (process.getuid?.() !== 0) throw new Error('the SSH tests need OpenSSH: apt-get install openssh-server openssh-client');
  const policy = '/usr/sbin/policy-rc.d';
  const hadPolicy = fs.existsSync(policy);
  if (!hadPolicy) fs.writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', 'openssh-server', 'openssh-client'], { env, stdio: 'ignore' });
    } catch {
      execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
      execFileSync('apt-get', ['install', '-y', '-qq', 'openssh-server', 'openssh-client'], { env, stdio: 'ignore' });
    }
  } finally {
    if (!hadPolicy) fs.rmSync(policy, { force: true });
  }
}

async function waitForPort(port: number, proc: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`sshd exited (${proc.exitCode}): ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port}: ${stderr()}`);
}

export async function startSshLab(opts: SshLabOptions = {}): Promise<SshLab> {
  ensureSshd();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-sshd-'));
  fs.chmodSync(dir, 0o755);
  const user = `${opts.userPrefix ?? 'vlssh'}${randomBytes(3).toString('hex')}`;
  const home = path.join(dir, 'home');
  const hostKey = path.join(dir, 'host_key');
  const keygen = (file: string) => {
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  };
  keygen(hostKey);
  keygen(path.join(dir, 'client_key'));
  execFileSync('useradd', ['-M', '-d', home, '-s', '/bin/sh', user]);
  // useradd leaves the account locked ('!'), which sshd refuses even for keys without PAM.
  if (opts.password) execFileSync('chpasswd', { input: `${user}:${opts.password}\n` });
  else execFileSync('usermod', ['-p', '*', user]);
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
  fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(home, '.ssh', 'authorized_keys'));
  execFileSync('chown', ['-R', `${user}:`, home]);
  fs.chmodSync(home, 0o700);
  fs.chmodSync(path.join(home, '.ssh'), 0o700);
  fs.chmodSync(path.join(home, '.ssh', 'authorized_keys'), 0o600);
  let madeRunSshd = false;
  if (!fs.existsSync('/run/sshd')) {
    fs.mkdirSync('/run/sshd', { mode: 0o755 });
    madeRunSshd = true;
  }
  const port = await freePort();
  const cfg = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    cfg,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'UsePAM no',
      `PasswordAuthentication ${opts.password ? 'yes' : 'no'}`,
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      `AllowUsers ${user}`,
      'Subsystem sftp internal-sftp',
      'StrictModes yes',
      'MaxSessions 32',
      '',
    ].join('\n'),
  );

  let sshd: ChildProcess | null = null;
  const start = async () => {
    let err = '';
    const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (b: Buffer) => {
      err = (err + b.toString()).slice(-4000);
    });
    sshd = proc;
    await waitForPort(port, proc, () => err);
  };
  const kill = async () => {
    const proc = sshd;
    sshd = null;
    if (!proc || proc.exitCode !== null || !proc.pid) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      process.kill(proc.pid!, 'SIGTERM');
    });
  };
  await start();

  return {
    host: '127.0.0.1',
    port,
    user,
    uid,
    home,
    privateKey: fs.readFileSync(path.join(dir, 'client_key'), 'utf8'),
    hostKeyLine: () => fs.readFileSync(`${hostKey}.pub`, 'utf8').trim(),
    hostKeyFingerprint: () => {
      const b64 = fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/)[1]!;
      return `SHA256:${createHash('sha256').update(Buffer.from(b64, 'base64')).digest('base64').replace(/=+$/, '')}`;
    },
    async rotateHostKey() {
      await kill();
      keygen(hostKey);
      await start();
    },
    async stop() {
      await kill();
      // Processes the throwaway user still has (a test that failed half-way) are ended one by one, by pid.
      let pids: number[] = [];
      try {
        pids = execFileSync('ps', ['-o', 'pid=', '-u', user], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
      } catch {
        /* none left (ps exits 1) */
      }
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      try {
        execFileSync('userdel', [user], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
      if (madeRunSshd) fs.rmSync('/run/sshd', { recursive: true, force: true });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
