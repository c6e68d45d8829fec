/**
 * A long-lived lab shared by processes (the CLI, `npm start`): started detached,
 * described by <dir>/state.json, stopped by labDown(). Default dir:
 * <repo>/.vaultline/lab (VAULTLINE_LAB_DIR overrides).
 */
import fs from 'node:fs';
import path from 'node:path';
import { labEnv } from './env.ts';
import { cleanupRunDir, stopPid } from './host-resources.ts';
import { startLabWith } from './lab.ts';
import { connectLab, labState, type LabState } from './state.ts';
import type { Lab, LabOptions } from './types.ts';

function stateFile(dir: string): string {
  return path.join(dir, 'state.json');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readLabState(dir = labEnv.cliLabDir): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(dir), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

/** The running shared lab's state, or undefined. */
export function labStatus(dir = labEnv.cliLabDir): (LabState & { running: boolean }) | undefined {
  const state = readLabState(dir);
  return state ? { ...state, running: alive(state.pid) } : undefined;
}

/** Starts the shared lab detached (or returns the one already running). */
export async function labUp(opts: Omit<LabOptions, 'dir'> = {}, dir = labEnv.cliLabDir): Promise<LabState> {
  const old = readLabState(dir);
  if (old && alive(old.pid)) return old;
  if (old) cleanupRunDir(old.run);
  const lab = await startLabWith({ ...opts, dir }, { detached: true });
  const state = labState(lab);
  fs.writeFileSync(stateFile(dir), JSON.stringify(state, null, 2));
  return state;
}

/** Stops the shared lab: no process, loop device, mount or run folder is left. */
export async function labDown(dir = labEnv.cliLabDir): Promise<void> {
  const state = readLabState(dir);
  if (state) {
    await stopPid(state.pid);
    cleanupRunDir(state.run);
  } else {
    cleanupRunDir(path.join(dir, 'run'));
  }
  fs.rmSync(stateFile(dir), { force: true });
}

/** A Lab handle on the running shared lab (createVm, guestWrite, diskSha256, …). */
export function sharedLab(dir = labEnv.cliLabDir): Lab {
  const state = readLabState(dir);
  if (!state || !alive(state.pid)) throw new Error('the lab is not running (npm run lab -- up)');
  return connectLab(state);
}
