import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../../..');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

describe.runIf(isRoot)('the front door on a machine without PostgreSQL and Redis where they can be started', () => {
  it('starts project-local instances on non-default ports, reports them, and stops them on exit', async () => {
    // Point at closed ports: to the script this machine has neither service running.
    const { stdout } = await run(process.execPath, ['scripts/vaultline.mjs', 'services'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: 'postgresql://postgres@127.0.0.1:5999/vaultline', REDIS_URL: 'redis://127.0.0.1:6999' },
      timeout: 180_000,
    });
    expect(stdout).toContain('PostgreSQL is not reachable at 127.0.0.1:5999; starting a project-local one');
    expect(stdout).toContain('started a project-local PostgreSQL on 127.0.0.1:15432 (data in .vaultline/services/postgres)');
    expect(stdout).toContain('started a project-local Redis on 127.0.0.1:16379');
    expect(stdout).toMatch(/ready: DATABASE_URL=postgresql:\/\/\*\*\*@127\.0\.0\.1:15432\/vaultline REDIS_URL=redis:\/\/127\.0\.0\.1:16379/);
    expect(await listening(15432)).toBe(false);
    expect(await listening(16379)).toBe(false);
  });

  it('stops with one clear message when a command is unknown', async () => {
    const err = await run(process.execPath, ['scripts/vaultline.mjs', 'frobnicate'], { cwd: ROOT }).catch((e: { stderr: string; code: number }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr.trim()).toBe('vaultline: unknown command "frobnicate"; use start, test, setup, services, build-ova, lab, bench or cli');
  });
});
