/**
 * The layers of a browse session, each made read-only, and how each is undone:
 *
 *   NBD server process  ── unix socket (0600 in a 0700 directory) ──▶
 *   nbdfuse -r           (one per disk: the disk as a read-only file)
 *   losetup -r -o -S     (one per mountable partition: a read-only loop device)
 *   mount -o ro,…        (kernel filesystems: ro + no journal replay + nosuid,nodev,noexec;
 *                         FUSE drivers (ntfs-3g, fusefat, exfat-fuse) with -o ro)
 *
 * Partitions get loop devices of their own (offset + size) rather than
 * `losetup -P`: partitions are read from the table in userspace (partx), so a
 * kernel without partition-table support (like this project's CI kernel) works
 * the same. Undo functions are idempotent and check what they touch: a loop
 * device is detached only when its backing file is ours, a process is
 * signalled only when its start time and command line are the ones recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEVICE_PATTERNS, unsealRepository, type RepositoryRow } from '@vaultline/appliance';
import type { ServeMessage } from './nbd/serve-process.ts';
import { FlrError, processAlive, processCmdline, processStart, run } from './system.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > end) throw new FlrError(`${what} (waited ${Math.round(timeoutMs / 1000)} s)`);
    await sleep(50);
  }
}

// ---- the mount table ---------------------------------------------------------

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export async function mountTable(): Promise<MountInfo[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const f = left!.split(' ');
    const r = (right ?? '').split(' ');
    out.push({ mountPoint: unescapeMount(f[4] ?? ''), options: f[5] ?? '', fsType: r[0] ?? '', source: unescapeMount(r[1] ?? '') });
  }
  return out;
}

export async function isMounted(mountPoint: string): Promise<boolean> {
  return (await mountTable()).some((m) => m.mountPoint === mountPoint);
}

/** Mount points at or below `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<MountInfo[]> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return (await mountTable()).filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(prefix)).sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}

// ---- loop devices --------------------------------------------------------------

export interface LoopInfo {
  device: string;
  backingFile: string;
  offset: number;
  sizeLimit: number;
  readOnly: boolean;
}

export async function loopDevices(): Promise<LoopInfo[]> {
  const { stdout } = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE,OFFSET,SIZELIMIT,RO']);
  if (!stdout.trim()) return [];
  const parsed = JSON.parse(stdout) as { loopdevices?: Array<Record<string, unknown>> };
  return (parsed.loopdevices ?? []).map((l) => ({
    device: String(l.name),
    backingFile: String(l['back-file'] ?? '').replace(/ \(deleted\)$/, ''),
    offset: Number(l.offset ?? 0),
    sizeLimit: Number(l.sizelimit ?? 0),
    readOnly: l.ro === true || l.ro === 1 || l.ro === '1',
  }));
}

/** A read-only loop device over [offset, offset + size) of a file. */
export async function attachLoop(file: string, offset: number, size: number): Promise<string> {
  const { stdout } = await run('losetup', ['--read-only', '--find', '--show', '--offset', String(offset), '--sizelimit', String(size), file]);
  const device = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new FlrError(`losetup answered ${JSON.stringify(device)} instead of a loop device`);
  return device;
}

/** Detaches the loop devices backed by `file` (at `offset` when given); never anyone else's. */
export async function detachLoops(file: string, offset?: number): Promise<string[]> {
  const gone: string[] = [];
  for (const l of await loopDevices()) {
    if (l.backingFile !== file || (offset !== undefined && l.offset !== offset) || !DEVICE_PATTERNS.loop.test(l.device)) continue;
    await run('losetup', ['--detach', l.device]);
    gone.push(l.device);
  }
  return gone;
}

// ---- mounts ----------------------------------------------------------------------

export async function unmount(mountPoint: string): Promise<void> {
  if (!(await isMounted(mountPoint))) return;
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await run('umount', [mountPoint], { allowFail: true });
    if (r.code === 0 || !(await isMounted(mountPoint))) return;
    await sleep(200);
  }
  // Still busy after 2 s (a reader we do not know of): detach it lazily; the kernel finishes when it is free.
  await run('umount', ['--lazy', mountPoint]);
}

export async function removeDir(dir: string): Promise<void> {
  if (await isMounted(dir)) throw new FlrError(`${dir} is still a mount point`);
  await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

// ---- processes -------------------------------------------------------------------------

/** Signals a process only when it is still the one recorded (same start time) and its command line is the one we started; true when it did. */
export async function stopProcess(pid: number, start: string, ours: (argv: string[]) => boolean, timeoutMs = 5_000): Promise<boolean> {
  if (!(await processAlive(pid, start))) return false;
  if (!ours(await processCmdline(pid))) return false;
  process.kill(pid, 'SIGTERM');
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!(await processAlive(pid, start))) return true;
    await sleep(50);
  }
  if (await processAlive(pid, start)) process.kill(pid, 'SIGKILL');
  return true;
}

// ---- the NBD server process ---------------------------------------------------------------

const SERVE_ENTRY = fileURLToPath(new URL('./nbd/serve-process.ts', import.meta.url));

/** The command line NbdProcess.start runs for `socketPath`. */
export const isNbdServerFor = (argv: string[], socketPath: string): boolean => argv.includes(SERVE_ENTRY) && argv[argv.length - 1] === socketPath;

export class NbdProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly pid: number,
    readonly start: string,
    readonly socketPath: string,
  ) {}

  /**
   * Starts the server process and waits until it listens. `onSpawn` runs as
   * soon as the pid is known (before it serves), to journal it.
   */
  static async start(
    opts: { socketPath: string; socketMode?: number; repository: RepositoryRow; secretKey: Buffer; ref: { vmId: string; id: string }; disks: Array<{ key: string; exportName: string }>; timeoutMs?: number; log?: (m: string) => void },
    onSpawn: (pid: number, start: string) => Promise<void>,
  ): Promise<NbdProcess> {
    // --import tsx resolves from cwd; the package's folder finds the workspace's tsx.
    const child = spawn(process.execPath, ['--import', 'tsx', SERVE_ENTRY, opts.socketPath], {
      cwd: path.dirname(SERVE_ENTRY),
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NODE_ENV: 'production' },
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const pid = child.pid;
    if (!pid) throw new FlrError('the NBD server process could not be started');
    const start = await waitFor('the NBD server process did not appear in /proc', 5_000, () => processStart(pid));
    const proc = new NbdProcess(child, pid, start, opts.socketPath);
    try {
      await onSpawn(pid, start);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new FlrError(`the NBD server did not start listening within ${(opts.timeoutMs ?? 60_000) / 1000} s`)), opts.timeoutMs ?? 60_000);
        child.on('message', (m: { type: string; message?: string }) => {
          if (m.type === 'ready') {
            clearTimeout(timer);
            resolve();
          } else if (m.type === 'failed') {
            clearTimeout(timer);
            reject(new FlrError(`the NBD server could not open the restore point: ${m.message}`));
          } else if (m.type === 'log' && m.message) opts.log?.(m.message);
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new FlrError(`the NBD server exited (${signal ?? code}) before serving${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`));
        });
        const { passphrase, credential } = unsealRepository(opts.repository, opts.secretKey);
        const msg: ServeMessage = {
          type: 'serve',
          socketPath: opts.socketPath,
          ...(opts.socketMode ? { socketMode: opts.socketMode } : {}),
          repository: { kind: opts.repository.kind, location: opts.repository.location, sftpHostKeySha256: opts.repository.sftpHostKeySha256 ?? null },
          ...(passphrase ? { passphrase } : {}),
          ...(credential ? { credential } : {}),
          ref: opts.ref,
          disks: opts.disks,
        };
        child.send(msg);
      });
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      if (this.child.connected) this.child.send({ type: 'stop' });
      else this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    if (existsSync(this.socketPath)) await unlink(this.socketPath).catch(() => undefined);
  }
}

// ---- nbdfuse -----------------------------------------------------------------------------

/**
 * Presents one export as a read-only file `<mountPoint>/disk`. nbdfuse daemonises
 * only after serving; -P writes its pid once ready. Returns its pid and start.
 */
export async function startNbdfuse(mountPoint: string, socketPath: string, exportName: string, onSpawn: (pid: number) => Promise<void>): Promise<{ pid: number; start: string; file: string }> {
  const pidFile = `${mountPoint}.pid`;
  const uri = `nbd+unix:///${encodeURIComponent(exportName)}?socket=${encodeURIComponent(socketPath)}`;
  const child = spawn('nbdfuse', ['--readonly', '--pidfile', pidFile, `${mountPoint}/disk`, uri], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  let exited: string | null = null;
  child.once('exit', (code, signal) => {
    exited = `${signal ?? code}`;
  });
  child.once('error', (err) => {
    exited = err.message;
  });
  if (child.pid) await onSpawn(child.pid);
  child.unref();
  const file = `${mountPoint}/disk`;
  let pid: number;
  try {
    pid = await waitFor(`nbdfuse did not present ${file}`, 30_000, async () => {
      if (exited !== null) throw new FlrError(`nbdfuse exited (${exited}) before presenting the disk${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`);
      if (!existsSync(pidFile) || !(await isMounted(mountPoint))) return null;
      const n = Number((await readFile(pidFile, 'utf8')).trim());
      return Number.isInteger(n) && n > 0 ? n : null;
    });
  } catch (err) {
    if (await isMounted(mountPoint)) await run('fusermount3', ['-u', '-z', mountPoint], { allowFail: true });
    if (exited === null) child.kill('SIGTERM');
    await unlink(pidFile).catch(() => undefined);
    throw err;
  }
  await unlink(pidFile).catch(() => undefined);
  const start = (await processStart(pid)) ?? '0';
  return { pid, start, file };
}

/** The command line startNbdfuse runs for `mountPoint`. */
export const isNbdfuseFor = (argv: string[], mountPoint: string): boolean => path.basename(argv[0] ?? '') === 'nbdfuse' && argv.includes(`${mountPoint}/disk`);

export async function stopNbdfuse(mountPoint: string, pid?: number, start?: string): Promise<void> {
  if (await isMounted(mountPoint)) {
    const r = await run('fusermount3', ['-u', mountPoint], { allowFail: true });
    if (r.code !== 0 && (await isMounted(mountPoint))) await run('fusermount3', ['-u', '-z', mountPoint]);
  }
  if (pid && start) {
    // nbdfuse exits by itself once unmounted; give it a moment, then make sure.
    const end = Date.now() + 3_000;
    while (Date.now() < end && (await processAlive(pid, start))) await sleep(50);
    await stopProcess(pid, start, (argv) => isNbdfuseFor(argv, mountPoint));
  }
  await unlink(`${mountPoint}.pid`).catch(() => undefined);
}
