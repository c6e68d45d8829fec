/**
 * Delivering a restore to KVM/Proxmox: the converted disks with domain.xml, <vmid>.conf,
 * import-proxmox.sh and NOTES.txt, in a directory, or over SSH to a KVM/Proxmox host.
 *
 * Over SSH the host key is pinned (RemoteSession of @vaultline/remote checks it on every connection):
 * a host presenting another key is refused during the handshake, before any credential or byte of the
 * restore is sent. The files go as one GNU tar stream with --sparse (holes are read with SEEK_HOLE and
 * not sent, and the remote tar recreates them), so a thin raw image stays thin on the wire and on the
 * host. The remote side needs GNU tar (Debian, Proxmox VE) and sha256sum; every file is checked by
 * SHA-256 after the transfer.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { RemoteSession, shq, type RemoteTarget } from '@vaultline/remote';
import { KvmRestoreError } from './hardware.ts';

/** A bundle file name: plain, no directories (names come from us, but a check costs nothing). */
function assertPlainName(name: string): void {
  if (!/^[\w.-]+$/.test(name) || name.startsWith('.')) throw new KvmRestoreError(`${JSON.stringify(name)} is not a plain file name`);
}

/**
 * Makes `dir` ready to receive a restore: created (0750) when missing, refused when it holds anything,
 * so a restore never mixes with or overwrites other files.
 */
export function prepareDirectory(dir: string): string {
  const abs = path.resolve(dir);
  if (fs.existsSync(abs)) {
    if (!fs.statSync(abs).isDirectory()) throw new KvmRestoreError(`${abs} exists and is not a directory`);
    const entries = fs.readdirSync(abs);
    if (entries.length) throw new KvmRestoreError(`${abs} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); a restore goes into an empty or new directory`);
  } else fs.mkdirSync(abs, { recursive: true, mode: 0o750 });
  return abs;
}

/** Writes small text files of the bundle (configs, NOTES) next to the disks; none may exist. */
export function writeBundleFiles(dir: string, files: Record<string, { text: string; mode?: number }>): string[] {
  const names: string[] = [];
  for (const [name, f] of Object.entries(files)) {
    assertPlainName(name);
    fs.writeFileSync(path.join(dir, name), f.text, { flag: 'wx', mode: f.mode ?? 0o640 });
    names.push(name);
  }
  return names;
}

/**
 * The files as a GNU tar stream with sparse members: what goes over SSH, and what a download of the
 * bundle can serve. `done` settles when tar has finished (rejects with its stderr when it failed).
 */
export function bundleStream(dir: string, names: string[]): { stream: Readable; done: Promise<void> } {
  names.forEach(assertPlainName);
  const child = spawn('tar', ['--sparse', '--format=posix', '--owner=0', '--group=0', '-cf', '-', '-C', dir, '--', ...names], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new KvmRestoreError(`tar of ${dir} failed (${code}): ${stderr.trim()}`))));
  });
  done.catch(() => undefined);
  return { stream: child.stdout, done };
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface SshDelivery {
  target: RemoteTarget;
  /** Absolute directory on the host; created when missing, refused when not empty. */
  remoteDir: string;
}

/**
 * Checks the host before any work: the pinned key (a mismatch throws RemoteProblem 'host_key' and
 * nothing is sent), sign-in, an empty or new remote directory, GNU tar and sha256sum, and the free space
 * for `bytesNeeded` (what the files take, holes excluded).
 */
export async function checkSshTarget(d: SshDelivery, bytesNeeded = 0): Promise<void> {
  if (!path.posix.isAbsolute(d.remoteDir)) throw new KvmRestoreError(`remote directory ${JSON.stringify(d.remoteDir)} is not absolute`);
  const s = await RemoteSession.open(d.target);
  try {
    const dir = shq(d.remoteDir);
    const out = await s.shOk(
      [
        'set -eu',
        `if [ -e ${dir} ] && [ -n "$(ls -A ${dir})" ]; then echo "${d.remoteDir.replace(/["$`\\]/g, '')} is not empty; a restore goes into an empty or new directory" >&2; exit 3; fi`,
        `mkdir -p ${dir}`,
        'tar --version | head -n 1',
        'command -v sha256sum >/dev/null',
        `df -Pk ${dir} | tail -n 1`,
      ].join('\n'),
      'checking the restore target',
      'permission',
    );
    const lines = out.trim().split('\n');
    if (!/GNU tar/.test(lines[0] ?? '')) throw new KvmRestoreError(`${d.target.host} has no GNU tar (found: ${lines[0] ?? 'nothing'}); it is needed to receive thin disk images`);
    const availKiB = Number((lines[lines.length - 1] ?? '').trim().split(/\s+/)[3]);
    if (Number.isFinite(availKiB) && availKiB * 1024 < bytesNeeded) {
      throw new KvmRestoreError(`${d.remoteDir} on ${d.target.host} has ${Math.floor(availKiB / 1024)} MiB free; the restore needs ${Math.ceil(bytesNeeded / 2 ** 20)} MiB`);
    }
  } finally {
    s.dispose();
  }
}

export interface DeliveredFile {
  name: string;
  /** Apparent size. */
  size: number;
  sha256: string;
}

/** Sends `names` from `dir` into the (checked) remote directory and verifies each by SHA-256. */
export async function deliverOverSsh(dir: string, names: string[], d: SshDelivery): Promise<DeliveredFile[]> {
  const s = await RemoteSession.open(d.target);
  let sent = false;
  try {
    const { stream, done } = bundleStream(dir, names);
    sent = true;
    const r = await s.sh(`tar --no-same-owner --no-same-permissions -xf - -C ${shq(d.remoteDir)}`, { stdin: stream });
    await done;
    if (r.code !== 0) throw new KvmRestoreError(`receiving the files on ${d.target.host} failed (exit ${r.code ?? 'signal'}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const local = await Promise.all(names.map(async (name) => ({ name, size: fs.statSync(path.join(dir, name)).size, sha256: await sha256File(path.join(dir, name)) })));
    const out = await s.shOk(`cd ${shq(d.remoteDir)} && sha256sum -- ${names.map(shq).join(' ')}`, 'verifying the delivered files', 'install');
    const remote = new Map(out.trim().split('\n').map((l) => [l.slice(66).replace(/^\*/, ''), l.slice(0, 64)]));
    const bad = local.filter((f) => remote.get(f.name) !== f.sha256).map((f) => f.name);
    if (bad.length) throw new KvmRestoreError(`${bad.join(', ')} arrived on ${d.target.host} with another SHA-256 than sent`);
    return local;
  } catch (err) {
    // Half-received or wrong files are of no use to anyone: remove them (the directory was empty).
    if (sent) await s.sh(`cd ${shq(d.remoteDir)} && rm -f -- ${names.map(shq).join(' ')}`).catch(() => undefined);
    throw err;
  } finally {
    s.dispose();
  }
}
