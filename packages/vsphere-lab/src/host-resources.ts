/**
 * Host resources of a lab: the TLS certificate, SAN images on loop devices,
 * server processes, and the cleanup of a run dir (loop devices, mounts,
 * stale temp labs). Cleanup does not trust bookkeeping: it detaches every loop
 * device whose backing file lies under run/, unmounts every mount under run/
 * and removes run/.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { childEnv } from './env.ts';

const GiB = 1024 ** 3;

export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: childEnv() });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  return r.stdout.trim();
}

/** A self-signed certificate for 127.0.0.1/localhost, made once per lab dir. */
export function ensureCert(dir: string): { cert: string; key: string; pem: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if (!fs.existsSync(cert) || !fs.existsSync(key)) {
    fs.mkdirSync(dir, { recursive: true });
    sh('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650',
      '-keyout', key, '-out', cert, '-subj', '/O=Vaultline lab/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ]);
    fs.chmodSync(key, 0o600);
  }
  return { cert, key, pem: fs.readFileSync(cert, 'utf8') };
}

// ---------------------------------------------------------------------------
// Cleanup of a run dir (also used by `lab down`)

function loopDevices(): { name: string; backFile: string }[] {
  const r = spawnSync('losetup', ['-J', '-l'], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) return [];
  const j = JSON.parse(r.stdout) as { loopdevices?: { name: string; 'back-file'?: string }[] };
  return (j.loopdevices ?? []).map((d) => ({ name: d.name, backFile: (d['back-file'] ?? '').replace(/ \(deleted\)$/, '') }));
}

function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** Loop devices whose backing file lies under `dir`. */
export function loopDevicesUnder(dir: string): string[] {
  const real = fs.existsSync(dir) ? fs.realpathSync(dir) : dir;
  return loopDevices()
    .filter((d) => under(d.backFile, dir) || under(d.backFile, real))
    .map((d) => d.name);
}

/** Mount points under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const real = fs.existsSync(dir) ? fs.realpathSync(dir) : dir;
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m && (under(m, dir) || under(m, real)))
    .sort((a, b) => b.length - a.length);
}

/** Detaches loop devices, unmounts and removes `run` (nothing is left behind). */
export function cleanupRunDir(run: string, removeDir = true): void {
  if (!fs.existsSync(run)) return;
  const detach = () => {
    for (const dev of loopDevicesUnder(run)) {
      spawnSync('losetup', ['-d', dev]);
      // `losetup -r` leaves the device's read-only flag set after detach: clear it for the next user.
      spawnSync('blockdev', ['--setrw', dev]);
    }
  };
  detach(); // HotAdd devices first: they keep files on the datastore filesystems busy
  for (const m of mountsUnder(run)) {
    if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
  }
  detach(); // the SAN image devices, now unmounted
  if (removeDir) fs.rmSync(run, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function stopPid(pid: number, timeoutMs = 8000): Promise<void> {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!pidAlive(pid)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

export function sanSetup(run: string, byId: string, name: string, dsPath: string): { naa: string; lunDevice: string } {
  const img = path.join(run, 'san', `${name}.img`);
  fs.mkdirSync(path.dirname(img), { recursive: true });
  fs.closeSync(fs.openSync(img, 'w'));
  fs.truncateSync(img, 256 * GiB); // sparse; large enough that thin demo disks never exceed the free space
  sh('mkfs.ext4', ['-q', '-F', '-N', '4096', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-L', name.slice(0, 16), img]);
  const rw = sh('losetup', ['-f', '--show', img]);
  // A read-only flag set on this loop device by an earlier user (BLKROSET) outlives
  // its detach; the datastore must be writable.
  sh('blockdev', ['--setrw', rw]);
  sh('mount', ['-t', 'ext4', rw, dsPath]);
  const lun = sh('losetup', ['-f', '--show', '-r', img]);
  const hex = `6000c29${createHash('sha256').update(`${run}/${name}`).digest('hex').slice(0, 25)}`;
  fs.symlinkSync(lun, path.join(byId, `wwn-0x${hex}`));
  fs.symlinkSync(lun, path.join(byId, `scsi-3${hex}`));
  return { naa: `naa.${hex}`, lunDevice: lun };
}

/**
 * Removes temp labs whose owning process died without stop() (e.g. a killed
 * test worker): stops their server, detaches loop devices, unmounts, deletes.
 */
export async function sweepStaleLabs(): Promise<void> {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    if (!name.startsWith('vaultline-lab-')) continue;
    const dir = path.join(tmp, name);
    let owner: { owner: number; detached: boolean };
    try {
      owner = JSON.parse(fs.readFileSync(path.join(dir, 'owner.json'), 'utf8')) as typeof owner;
    } catch {
      continue;
    }
    if (owner.detached || pidAlive(owner.owner)) continue;
    try {
      const { pid } = JSON.parse(fs.readFileSync(path.join(dir, 'server.json'), 'utf8')) as { pid: number };
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('vcsim-lab') && cmd.includes(dir)) await stopPid(pid);
    } catch {
      /* no server left */
    }
    cleanupRunDir(dir);
  }
}
