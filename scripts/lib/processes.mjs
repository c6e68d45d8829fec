// Child processes: commands run to completion, TypeScript entry points run with tsx, and the
// stops registered by whatever this process started (services, the lab), run when it exits.
import { spawn, spawnSync } from 'node:child_process';
import { SetupError } from './output.mjs';
import { ROOT } from './paths.mjs';

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: opts.quiet ? 'pipe' : 'inherit', env: { ...process.env, ...opts.env }, encoding: 'utf8' });
  if (r.error) throw new SetupError(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0 && !opts.allowFail) {
    const out = opts.quiet ? `\n${(r.stdout ?? '') + (r.stderr ?? '')}`.trimEnd() : '';
    throw new SetupError(`${[cmd, ...args].join(' ')} failed with exit code ${r.status}${out}`);
  }
  return r;
}

export const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

export const tsx = (file, args = [], opts = {}) =>
  spawn(process.execPath, ['--import', 'tsx', file, ...args], { cwd: ROOT, stdio: opts.stdio ?? 'inherit', env: { ...process.env, ...opts.env } });

export const stops = [];

export function stopServices() {
  while (stops.length) {
    try {
      stops.pop()();
    } catch {
      /* best effort */
    }
  }
}
