/**
 * The operating-system side: running the tools (argv arrays, never a shell),
 * telling whether a process is still the one we started (pid + start time),
 * and whether this process may mount at all.
 */
import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export class FlrError extends Error {
  override name = 'FlrError';
}

/**
 * File-level restore cannot run (its helper is not running, may not mount, a tool is missing): the API
 * answers 503 with this message.
 */
export class FlrUnavailableError extends FlrError {
  override name = 'FlrUnavailableError';
  constructor(readonly missing: string[]) {
    super(`file-level restore is not available: ${missing.join('; ')}`);
  }
}

/** A request about a browse session that cannot be served as asked (answered with the matching 4xx). */
export class FlrSessionError extends Error {
  override name = 'FlrSessionError';
  constructor(
    readonly code: 'bad_request' | 'not_found' | 'forbidden' | 'conflict' | 'rate_limited',
    message: string,
  ) {
    super(message);
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a tool; rejects with a message naming the command and its stderr. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; allowFail?: boolean } = {}): Promise<RunResult & { code: number }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : -1) : 0;
      if (err && !opts.allowFail) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is not installed' : `failed: ${(stderr || err.message).trim().split('\n').slice(-3).join(' / ')}`;
        reject(new FlrError(`${cmd} ${args.join(' ')} ${why}`));
        return;
      }
      resolve({ stdout, stderr, code });
    });
  });
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null when the process is gone. */
export async function processStart(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

export async function processAlive(pid: number, start: string): Promise<boolean> {
  return (await processStart(pid)) === start;
}

export async function processCmdline(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

export interface Owner {
  host: string;
  pid: number;
  start: string;
}

let self: Owner | null = null;
export async function selfOwner(): Promise<Owner> {
  if (!self) self = { host: os.hostname(), pid: process.pid, start: (await processStart(process.pid)) ?? '0' };
  return self;
}

const CAP_SYS_ADMIN = 21n;

async function hasCapSysAdmin(): Promise<boolean> {
  try {
    const status = await readFile('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
    return m ? ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n : false;
  } catch {
    return false;
  }
}

const BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function onPath(tool: string): boolean {
  return BIN_DIRS.some((dir) => existsSync(path.join(dir, tool)));
}

/** Tools every session needs, with the Debian package that brings each. */
export const REQUIRED_TOOLS: Array<[tool: string, pkg: string]> = [
  ['nbdfuse', 'libnbd-bin'],
  ['fusermount3', 'fuse3'],
  ['losetup', 'mount'],
  ['mount', 'mount'],
  ['umount', 'mount'],
  ['blkid', 'util-linux'],
];

/**
 * What stops this process from opening browse sessions: mounting needs root or
 * CAP_SYS_ADMIN, read/write access to /dev/fuse and /dev/loop-control, and the
 * tools above. An empty list means it can.
 */
export async function missingPrivileges(): Promise<string[]> {
  const missing: string[] = [];
  if (!(await hasCapSysAdmin())) {
    missing.push(`mounting needs root or CAP_SYS_ADMIN, and this process (uid ${process.getuid?.() ?? '?'}) has neither`);
  }
  for (const dev of ['/dev/fuse', '/dev/loop-control']) {
    try {
      await access(dev, constants.R_OK | constants.W_OK);
    } catch {
      missing.push(`${dev} is missing or not read/writable by this process`);
    }
  }
  const tools = REQUIRED_TOOLS.filter(([t]) => !onPath(t));
  if (tools.length) missing.push(`missing tools: ${tools.map(([t, p]) => `${t} (apt-get install ${p})`).join(', ')}`);
  return missing;
}

export { onPath as toolInstalled };
