import { spawn } from 'node:child_process';
import tls from 'node:tls';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startDirectorProcess } from './director-process.ts';
import { PG_SERVER } from './helpers.ts';
import { TcpProxy } from './tcp-proxy.ts';

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

describe('Director process shutdown', () => {
  it('SIGTERM ends it within 10 s with a request hanging: what has not finished after 3 s is cut, and it exits 0', async () => {
    const director = await startDirectorProcess();
    const socket = tls.connect({ port: Number(new URL(director.url).port), host: '127.0.0.1', rejectUnauthorized: false });
    socket.on('error', () => undefined);
    try {
      await new Promise<void>((resolve) => socket.once('secureConnect', resolve));
      // Headers that never end.
      socket.write('GET /api/health HTTP/1.1\r\nHost: director\r\n');
      const cut = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const signalled = Date.now();
      director.child.kill('SIGTERM');
      const { code } = await director.exited;
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(code).toBe(0);
      await cut;
      expect(director.output()).toMatch(/shutdown: cutting the 1 connection\(s\) still busy after 3 s/);
    } finally {
      socket.destroy();
      await director.stop();
    }
  }, 60_000);

  it('SIGTERM ends it within 10 s even with a request hanging on a database that stopped answering, naming in the log what did not close', async () => {
    const pg = new TcpProxy('127.0.0.1', Number(new URL(PG_SERVER).port || 5432));
    await pg.up();
    const director = await startDirectorProcess({
      databaseUrl: (url) => {
        const u = new URL(url);
        u.port = String(pg.port);
        return u.toString();
      },
    });
    try {
      const cookie = await director.signInAdmin();
      pg.stall();
      // Its session lookup waits on Postgres for ever.
      const hanging = director.fetch(`${director.url}/api/repositories`, { headers: { cookie } }).catch(() => 'cut');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const signalled = Date.now();
      director.child.kill('SIGTERM');
      const { code } = await director.exited;
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(code).toBe(1);
      expect(director.output()).toMatch(/shutdown: the database connection did not close within 8 s; exiting anyway/);
      expect(await hanging).toBe('cut');
    } finally {
      await director.stop();
      await pg.down();
    }
  }, 60_000);
});
