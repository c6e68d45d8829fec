/**
 * What the benchmark scripts share: command-line options, the seeded generator their data comes from, and
 * the median they report, and the process that runs their external commands.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `--name value` from this process's arguments, or `def`. */
export function arg(name: string, def: string): string {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
}

/** A seeded xorshift32 generator of numbers in [0, 1): the same seed gives the same data in every run. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** The median (NaN for no values). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---- external commands ---------------------------------------------------------
// All of them run in bench/runner.mjs, started once before anything else: a bench process never forks after
// that (see the runner for why a fork there would be charged to the next timed step).
export interface Command {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  stdout?: boolean;
  mayFail?: boolean;
}
export interface Step {
  status: number | null;
  error: string | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Starts bench/runner.mjs; `runAll` runs commands there one after the other, stopping at the first failure unless `mayFail`. */
export function commandRunner(): { runAll(commands: Command[]): Promise<Step[]>; runner: ChildProcess } {
  const runner = fork(path.join(path.dirname(fileURLToPath(import.meta.url)), 'runner.mjs'), [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let seq = 0;
  const waits = new Map<number, (steps: Step[]) => void>();
  runner.on('message', (m: { id: number; steps: Step[] }) => {
    waits.get(m.id)?.(m.steps);
    waits.delete(m.id);
  });
  return {
    runner,
    runAll(commands) {
      const id = ++seq;
      return new Promise((resolve) => {
        waits.set(id, resolve);
        runner.send({ id, commands });
      });
    },
  };
}
