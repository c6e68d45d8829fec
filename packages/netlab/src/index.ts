/**
 * A network lab for tests that measure what crosses a link: two hosts on this machine, each in a network
 * namespace of its own, joined by a veth pair on a private /30, with the link's bandwidth limited by `tc`
 * in both directions when asked. A test runs processes on either side (`ip netns exec`), reads the veth's
 * byte and packet counters, and close() ends those processes and deletes both namespaces.
 *
 * Shaping is a token bucket (`tbf`) at the root of each veth end. tbf holds the rate at 100 Mbit/s and at
 * 1 Gbit/s on veth without touching the offloads: a GSO/TSO super-packet larger than the bucket is split
 * by tbf itself, and one that fits is charged for the headers of every segment it carries, so nothing
 * crosses for free (no ethtool needed). A `delayMs` adds `netem` above it, where the kernel has netem.
 *
 * Namespaces are named `vl-<name>-<owner pid>-<random>-a|b`. A namespace whose owner died (a crashed test)
 * is removed, with whatever still runs in it, by the next startLink() or available(); a process that
 * exits with links still open deletes them in its 'exit' hook.
 */
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import * as fs from 'node:fs';

export type Side = 'a' | 'b';

export interface LinkOptions {
  /** Limit each direction to this many Mbit/s (1 Mbit = 10^6 bit); unlimited when absent. */
  rateMbit?: number;
  /** One-way delay added in each direction (netem; fails where the kernel has no netem). */
  delayMs?: number;
  /** Part of the namespaces' names, to tell links apart in `ip netns list` (letters and digits). */
  name?: string;
}

export interface Host {
  /** The network namespace (`ip netns` name). */
  ns: string;
  /** The host's IPv4 address on the link. */
  ip: string;
  /** The veth end inside the namespace. */
  ifname: string;
}

export interface Counters {
  txBytes: number;
  rxBytes: number;
  txPackets: number;
  rxPackets: number;
}

export interface ExecOptions {
  /** The command's environment; the caller's when absent. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the command after this long (SIGTERM), and reject. */
  timeoutMs?: number;
}

export interface LinkSpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Default: ['ignore', 'pipe', 'pipe']. */
  stdio?: StdioOptions;
}

/** What exec() rejects with when the command fails or cannot start. */
export interface ExecError extends Error {
  code?: number | string | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Link {
  name: string;
  a: Host;
  b: Host;
  /** The /30 both hosts are on, e.g. `10.201.7.12/30`. */
  subnet: string;
  /** The rate each direction is limited to, or null when unlimited. */
  rateMbit: number | null;
  delayMs: number;
  /** Runs a command inside a side's namespace to its end: its output, or a rejection with it (ExecError). */
  exec(side: Side, cmd: string, args?: string[], opts?: ExecOptions): Promise<{ stdout: string; stderr: string }>;
  /** Starts a process inside a side's namespace; close() kills it if it still runs. */
  spawn(side: Side, cmd: string, args?: string[], opts?: LinkSpawnOptions): ChildProcess;
  /** The side's veth counters (what the kernel counted on that interface since the link was made). */
  counters(side: Side): Counters;
  /** `tc -s qdisc show` of the side's veth: the shaping in force and what it sent and dropped. */
  qdisc(side: Side): string;
  /** Kills every process it started (and anything else left in its namespaces), deletes both namespaces. */
  close(): Promise<void>;
}

export type Availability = { ok: true } | { ok: false; why: string };

const PREFIX = 'vl-';
/** vl-<name>-<owner pid>-<random>-a|b */
const NS_NAME = /^vl-[a-z0-9]+-(\d+)-[0-9a-f]+-[ab]$/;
const IFNAME: Record<Side, string> = { a: 'vl-a', b: 'vl-b' };

/** Runs a command to its end; a failure carries its stderr. */
function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

function tryRun(cmd: string, args: string[]): void {
  try {
    run(cmd, args);
  } catch {
    // already gone, or nothing to do
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** When a process started (seconds since the epoch), from /proc; null when it is gone. */
function startedAt(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, clock ticks since boot) counted after the command name, which may hold spaces.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    return btime + ticks / 100;
  } catch {
    return null;
  }
}

function namespaces(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/** Kills every process inside a namespace (by pid), then deletes it. */
function removeNamespace(ns: string): void {
  let pids: number[] = [];
  try {
    pids = run('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return; // no such namespace
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  tryRun('ip', ['netns', 'del', ns]);
}

/** Whether the pid now belongs to a process started after the namespace was made (the owner died, its pid was reused). */
function reused(pid: number, ns: string): boolean {
  let made: number;
  try {
    made = fs.statSync(`/run/netns/${ns}`).mtimeMs / 1000;
  } catch {
    return false; // listed without its file: judge by the pid alone
  }
  const started = startedAt(pid);
  return started === null || started > made + 1;
}

/** Removes the lab's namespaces whose owner process died (or whose pid now belongs to a newer process). */
function sweepStale(): void {
  for (const ns of namespaces()) {
    const owner = Number(NS_NAME.exec(ns)?.[1] ?? 0);
    if (owner === 0 || owner === process.pid) continue;
    if (alive(owner) && !reused(owner, ns)) continue;
    removeNamespace(ns);
  }
}

function nsName(name: string, side: Side, tag: string): string {
  return `${PREFIX}${name}-${process.pid}-${tag}-${side}`;
}

let cached: Availability | null = null;
let cachedDelay: Availability | null = null;

/**
 * Whether this machine can make links: root, iproute2's `ip` and `tc`, network namespaces, veth pairs and
 * the tbf qdisc (and netem, with `{ delay: true }`). Probed once per process with a throwaway namespace.
 */
export function available(opts: { delay?: boolean } = {}): Availability {
  cached ??= probe(false);
  if (!cached.ok || !opts.delay) return cached;
  cachedDelay ??= probe(true);
  return cachedDelay;
}

function probe(delay: boolean): Availability {
  if (process.getuid?.() !== 0) return { ok: false, why: 'the network lab needs root (network namespaces, veth pairs, tc)' };
  for (const tool of ['ip', 'tc']) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      return { ok: false, why: `iproute2's \`${tool}\` is missing: apt-get install iproute2` };
    }
  }
  try {
    sweepStale();
  } catch (err) {
    return { ok: false, why: `cannot list network namespaces: ${(err as Error).message}` };
  }
  const ns = nsName('probe', 'a', randomBytes(3).toString('hex'));
  try {
    run('ip', ['netns', 'add', ns]);
  } catch (err) {
    return { ok: false, why: `cannot create a network namespace: ${(err as Error).message}` };
  }
  try {
    run('ip', ['-n', ns, 'link', 'add', 'vl-a', 'type', 'veth', 'peer', 'name', 'vl-b']);
    run('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'vl-a', 'root', 'tbf', 'rate', '100mbit', 'burst', '65536', 'limit', '700000']);
    if (delay) run('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'vl-b', 'root', 'netem', 'delay', '1ms']);
    return { ok: true };
  } catch (err) {
    const what = delay ? 'a veth pair shaped by tbf and delayed by netem' : 'a veth pair shaped by tbf';
    return { ok: false, why: `cannot make ${what} (kernel without veth/sch_tbf${delay ? '/sch_netem' : ''}?): ${(err as Error).message}` };
  } finally {
    removeNamespace(ns);
  }
}

/**
 * The tbf settings for a rate: a bucket of 1 ms at the rate but at least 64 KiB (a whole GSO packet then
 * goes out in one piece: fewer splits, same accounting), and a queue of 50 ms at the rate on top of it.
 */
export function tbfParams(rateMbit: number): string[] {
  const bytesPerSec = (rateMbit * 1e6) / 8;
  const burst = Math.max(64 * 1024, Math.ceil(bytesPerSec / 1000));
  const limit = burst + Math.ceil(bytesPerSec * 0.05);
  return ['tbf', 'rate', `${Math.round(rateMbit * 1e6)}bit`, 'burst', String(burst), 'limit', String(limit)];
}

/** Subnets of this process's open links: each link gets its own /30 in 10.201.0.0/16. */
const usedBlocks = new Set<number>();
const open = new Set<{ closeSync(): void }>();
let exitHook = false;

function pickBlock(): number {
  for (;;) {
    const block = randomInt(0, 16384);
    if (!usedBlocks.has(block)) {
      usedBlocks.add(block);
      return block;
    }
  }
}

/** Makes two namespaces joined by a veth pair, with the rate (and delay) in both directions when asked. */
export async function startLink(opts: LinkOptions = {}): Promise<Link> {
  const delayMs = opts.delayMs ?? 0;
  const can = available({ delay: delayMs > 0 });
  if (!can.ok) throw new Error(`the network lab cannot run here: ${can.why}`);
  if (opts.rateMbit !== undefined && !(opts.rateMbit > 0)) throw new Error(`rateMbit must be a positive number, not ${opts.rateMbit}`);
  if (delayMs < 0) throw new Error(`delayMs must not be negative, not ${delayMs}`);
  sweepStale();

  const name = (opts.name ?? 'link').toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 16) || 'link';
  const tag = randomBytes(3).toString('hex');
  const block = pickBlock();
  const base = `10.201.${block >> 6}`;
  const last = (block & 63) * 4;
  const hosts: Record<Side, Host> = {
    a: { ns: nsName(name, 'a', tag), ip: `${base}.${last + 1}`, ifname: IFNAME.a },
    b: { ns: nsName(name, 'b', tag), ip: `${base}.${last + 2}`, ifname: IFNAME.b },
  };
  const children = new Set<ChildProcess>();
  let closed: Promise<void> | null = null;

  const closeSync = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    removeNamespace(hosts.a.ns);
    removeNamespace(hosts.b.ns);
    usedBlocks.delete(block);
    open.delete(handle);
  };
  const handle = { closeSync };
  open.add(handle);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const link of [...open]) link.closeSync();
    });
  }

  try {
    run('ip', ['netns', 'add', hosts.a.ns]);
    run('ip', ['netns', 'add', hosts.b.ns]);
    run('ip', ['link', 'add', IFNAME.a, 'netns', hosts.a.ns, 'type', 'veth', 'peer', 'name', IFNAME.b, 'netns', hosts.b.ns]);
    for (const side of ['a', 'b'] as const) {
      const { ns, ip, ifname } = hosts[side];
      run('ip', ['-n', ns, 'addr', 'add', `${ip}/30`, 'dev', ifname]);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', ns, 'link', 'set', ifname, 'up']);
      const tbf = opts.rateMbit === undefined ? null : tbfParams(opts.rateMbit);
      if (delayMs > 0) {
        // netem first (the delay), the rate below it: the recipe of tc-netem(8). Its queue holds a delay's worth.
        run('tc', ['-n', ns, 'qdisc', 'add', 'dev', ifname, 'root', 'handle', '1:', 'netem', 'delay', `${delayMs}ms`, 'limit', '100000']);
        if (tbf) run('tc', ['-n', ns, 'qdisc', 'add', 'dev', ifname, 'parent', '1:1', 'handle', '10:', ...tbf]);
      } else if (tbf) {
        run('tc', ['-n', ns, 'qdisc', 'add', 'dev', ifname, 'root', 'handle', '1:', ...tbf]);
      }
    }
    await waitUp(hosts);
  } catch (err) {
    closeSync();
    throw new Error(`the network lab could not make its link: ${(err as Error).message}`, { cause: err });
  }

  const command = (side: Side, cmd: string, args: string[]) => ['netns', 'exec', hosts[side].ns, cmd, ...args];
  const track = (child: ChildProcess) => {
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };

  return {
    name,
    a: hosts.a,
    b: hosts.b,
    subnet: `${base}.${last}/30`,
    rateMbit: opts.rateMbit ?? null,
    delayMs,
    exec(side, cmd, args = [], o = {}) {
      return new Promise((resolve, reject) => {
        const child = execFile(
          'ip',
          command(side, cmd, args),
          { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...(o.env ? { env: o.env } : {}), ...(o.cwd ? { cwd: o.cwd } : {}), ...(o.timeoutMs ? { timeout: o.timeoutMs } : {}) },
          (err, stdout, stderr) => {
            if (!err) return resolve({ stdout, stderr });
            const e = new Error(`${cmd} ${args.join(' ')} (in ${hosts[side].ns}) failed: ${stderr.trim() || err.message}`, { cause: err }) as ExecError;
            e.code = (err as { code?: number | string | null }).code ?? null;
            e.signal = (err as { signal?: NodeJS.Signals | null }).signal ?? null;
            e.stdout = stdout;
            e.stderr = stderr;
            reject(e);
          },
        );
        track(child);
      });
    },
    spawn(side, cmd, args = [], o = {}) {
      const options: SpawnOptions = { stdio: o.stdio ?? ['ignore', 'pipe', 'pipe'], ...(o.env ? { env: o.env } : {}), ...(o.cwd ? { cwd: o.cwd } : {}) };
      return track(spawnChild('ip', command(side, cmd, args), options));
    },
    counters(side) {
      const { ns, ifname } = hosts[side];
      const [info] = JSON.parse(run('ip', ['-n', ns, '-j', '-s', 'link', 'show', 'dev', ifname])) as { stats64: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } } }[];
      if (!info) throw new Error(`no interface ${ifname} in ${ns}`);
      return { txBytes: info.stats64.tx.bytes, rxBytes: info.stats64.rx.bytes, txPackets: info.stats64.tx.packets, rxPackets: info.stats64.rx.packets };
    },
    qdisc(side) {
      return run('tc', ['-n', hosts[side].ns, '-s', 'qdisc', 'show', 'dev', hosts[side].ifname]);
    },
    close() {
      closed ??= (async () => {
        await Promise.all(
          [...children].map(async (child) => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
            child.kill('SIGTERM');
            const t = setTimeout(() => child.kill('SIGKILL'), 3000);
            await exited;
            clearTimeout(t);
          }),
        );
        closeSync();
      })();
      return closed;
    },
  };
}

/** Waits until both veth ends report carrier (they do once both are up). */
async function waitUp(hosts: Record<Side, Host>): Promise<void> {
  for (let i = 0; ; i++) {
    const up = (['a', 'b'] as const).every((side) => {
      const [info] = JSON.parse(run('ip', ['-n', hosts[side].ns, '-j', 'link', 'show', 'dev', hosts[side].ifname])) as { operstate?: string }[];
      return info?.operstate === 'UP';
    });
    if (up) return;
    if (i >= 100) throw new Error('the veth pair did not come up within 5 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}
