/**
 * Running the build's tools (argv arrays, never a shell string built from input)
 * with errors that name the command and the end of its output, plus the small
 * file and digest helpers the builders share.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, lstat, readFile, readdir, readlink, rm } from 'node:fs/promises';
import path from 'node:path';

export class BuildError extends Error {
  override name = 'BuildError';
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Keep stdout (default true); stderr is always kept for the error message. */
  capture?: boolean;
  /** Resolve instead of reject on a non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
  /** Called with every chunk of output (for long steps that log). */
  onOutput?: (chunk: string) => void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const tail = (s: string, lines = 15) => s.trim().split('\n').slice(-lines).join('\n');

/** Runs `cmd args`; rejects with a BuildError naming the command, its exit code and the end of its output. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      const s = d.toString();
      if (opts.capture !== false) stdout += s;
      opts.onOutput?.(s);
    });
    child.stderr!.on('data', (d: Buffer) => {
      const s = d.toString();
      stderr += s;
      if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
      opts.onOutput?.(s);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      reject(new BuildError(err.code === 'ENOENT' ? `${cmd} is not installed` : `${cmd} could not run: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const result = { code: code ?? -1, stdout, stderr };
      if ((code === 0 && !signal) || opts.allowFail) return resolve(result);
      const why = signal ? `was killed by ${signal}${opts.timeoutMs ? ` (time limit ${opts.timeoutMs} ms)` : ''}` : `failed with exit code ${code}`;
      reject(new BuildError(`${[cmd, ...args].join(' ')} ${why}\n${tail(stderr || stdout)}`));
    });
    if (child.stdin) {
      // A child that exits without reading its input must not crash the build.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

export async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * A digest over a folder's tree: every path, type, permission bits, symlink
 * target and file content, in sorted order. Two trees with the same digest
 * build the same image.
 */
export async function treeDigest(root: string, hash = createHash('sha256')): Promise<string> {
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      const rel = path.relative(root, full);
      const st = await lstat(full);
      if (st.isSymbolicLink()) hash.update(`L ${rel} ${await readlink(full)}\n`);
      else if (st.isDirectory()) {
        hash.update(`D ${rel} ${(st.mode & 0o7777).toString(8)}\n`);
        await walk(full);
      } else if (st.isFile()) {
        hash.update(`F ${rel} ${(st.mode & 0o7777).toString(8)} ${st.size}\n`);
        for await (const chunk of createReadStream(full)) hash.update(chunk as Buffer);
      }
    }
  };
  await walk(root);
  return hash.digest('hex');
}

/** Step logger: `label…` then the seconds it took. */
export function stepLogger(prefix: string, write: (s: string) => void = (s) => process.stderr.write(s)) {
  return async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    write(`${prefix} ${label}…\n`);
    const out = await fn();
    write(`${prefix} ${label}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    return out;
  };
}
export type Step = ReturnType<typeof stepLogger>;

/** Unmounts everything mounted at or below `dir` (deepest first), e.g. what a killed build left. */
export async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/mounts', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', [m]).catch(() => run('umount', ['-l', m], { allowFail: true }));
}

/** rm -rf that first unmounts what is mounted inside (never deletes through a mount). */
export async function removeTree(dir: string): Promise<void> {
  await unmountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}
