/**
 * SFTP backend against a real OpenSSH sshd on 127.0.0.1 (random free port, own
 * host key, a key-only user), started here and killed afterwards.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { SftpBackend } from '../src/index.ts';
import { backendConformance } from './backend-conformance.ts';
import { tmpDir } from './helpers.ts';

let lab = '';
let port = 0;
let sshd: ChildProcess | null = null;
let madeRunSshd = false;
const user = `vlsftp${crypto.randomBytes(3).toString('hex')}`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** A fresh machine may lack OpenSSH: install it from Debian's packages (without starting its service). */
function ensureSshd(): void {
  if (fs.existsSync('/usr/sbin/sshd') && fs.existsSync('/usr/bin/ssh-keygen')) return;
  if (process.getuid?.() !== 0) throw new Error('the SFTP tests need OpenSSH: apt-get install openssh-server openssh-client');
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

beforeAll(async () => {
  ensureSshd();
  lab = tmpDir('vl-sshd-');
  fs.chmodSync(lab, 0o755);
  const home = path.join(lab, 'home');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(lab, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(lab, 'client_key')]);
  execFileSync('useradd', ['-M', '-d', home, '-s', '/bin/sh', user]);
  execFileSync('usermod', ['-p', '*', user]); // unlocked, but no password: key-only
  fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
  fs.copyFileSync(path.join(lab, 'client_key.pub'), path.join(home, '.ssh', 'authorized_keys'));
  execFileSync('chown', ['-R', `${user}:`, home]);
  fs.chmodSync(home, 0o700);
  fs.chmodSync(path.join(home, '.ssh'), 0o700);
  fs.chmodSync(path.join(home, '.ssh', 'authorized_keys'), 0o600);
  if (!fs.existsSync('/run/sshd')) {
    fs.mkdirSync('/run/sshd', { mode: 0o755 });
    madeRunSshd = true;
  }
  port = await freePort();
  const cfg = path.join(lab, 'sshd_config');
  fs.writeFileSync(
    cfg,
    [`ListenAddress 127.0.0.1:${port}`, `HostKey ${path.join(lab, 'host_key')}`, `PidFile ${path.join(lab, 'sshd.pid')}`, 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PubkeyAuthentication yes', `AllowUsers ${user}`, 'Subsystem sftp internal-sftp', 'StrictModes yes', ''].join('\n'),
  );
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
}, 60_000);

afterAll(() => {
  if (sshd?.pid) process.kill(sshd.pid, 'SIGTERM');
  try {
    execFileSync('userdel', [user]);
  } catch {
    /* already gone */
  }
  if (madeRunSshd) fs.rmSync('/run/sshd', { recursive: true, force: true });
  fs.rmSync(lab, { recursive: true, force: true });
});

let n = 0;
backendConformance('sftp (OpenSSH sshd on loopback)', async () => {
  const root = path.join(lab, 'home', `repo-${n++}`);
  const hostKeyLine = fs.readFileSync(path.join(lab, 'host_key.pub'));
  const backend = await SftpBackend.connect({ host: '127.0.0.1', port, username: user, privateKey: fs.readFileSync(path.join(lab, 'client_key')), hostKey: hostKeyLine, root });
  return {
    backend,
    cleanup: async () => {
      await backend.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
});
