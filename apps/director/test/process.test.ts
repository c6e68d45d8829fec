import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SERVER = path.resolve(import.meta.dirname, '../src/server.ts');

function run(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SERVER], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (b) => (stderr += String(b)));
    child.stdout.on('data', (b) => (stdout += String(b)));
    child.once('exit', (code) => resolve({ code, stderr, stdout }));
  });
}

describe('Director process configuration errors', () => {
  it('DATABASE_URL=nonsense → one clear message, exit code 2, no stack trace', async () => {
    const r = await run({ DATABASE_URL: 'nonsense' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Invalid configuration \(1 problem\):\n\s+DATABASE_URL: must be a URL starting with postgresql:\/\/ or postgres:\/\//);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unreachable database → a clear message without the password, exit code ≠ 0', async () => {
    const r = await run({ DATABASE_URL: 'postgresql://vault:topsecret@127.0.0.1:1/vaultline', VAULTLINE_PORT: '0' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('cannot prepare the database at postgresql://***@127.0.0.1:1/vaultline');
    expect(r.stderr + r.stdout).not.toContain('topsecret');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
