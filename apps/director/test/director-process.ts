/**
 * A real Director process (src/server.ts) on its own database, Redis namespace
 * and data dir, for what only a process shows: a blocked event loop, signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase } from '@vaultline/db/testing';
import { certificateFingerprint, pinnedFetch, SELF_SIGNED_CERT } from '@vaultline/tls';
import { SESSION_COOKIE } from '../src/auth/sessions.ts';
import { PG_SERVER, REDIS_URL } from './helpers.ts';

const SERVER = path.resolve(import.meta.dirname, '../src/server.ts');

export interface DirectorProcess {
  child: ChildProcess;
  /** https://127.0.0.1:<port> */
  url: string;
  /** fetch pinned to the certificate the Director made in its data dir. */
  fetch: ReturnType<typeof pinnedFetch>;
  /** SHA-256 fingerprint of that certificate. */
  fingerprint: string;
  dataDir: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when it has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Signs in as the first admin and completes the first-login change; returns the cookie. */
  signInAdmin(): Promise<string>;
  /** Kills it if still running, drops its database and data dir. */
  stop(): Promise<void>;
}

export async function startDirectorProcess(opts: { env?: Record<string, string>; databaseUrl?: (url: string) => string } = {}): Promise<DirectorProcess> {
  const database = await createTestDatabase(PG_SERVER);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-director-process-'));
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], {
    env: {
      ...process.env,
      DATABASE_URL: opts.databaseUrl ? opts.databaseUrl(database.url) : database.url,
      REDIS_URL,
      VAULTLINE_REDIS_NAMESPACE: database.name,
      VAULTLINE_HOST: '127.0.0.1',
      VAULTLINE_PORT: '0',
      VAULTLINE_DATA_DIR: dataDir,
      VAULTLINE_LOG_LEVEL: 'info',
      VAULTLINE_WEB_DIST: path.join(dataDir, 'no-web'),
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += String(b);
      const m = /Server listening at (https:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(({ code }) => reject(new Error(`the Director exited (${code}) before listening:\n${out}`)));
  });
  const fingerprint = certificateFingerprint(await readFile(path.join(dataDir, SELF_SIGNED_CERT), 'utf8'));
  const fetch = pinnedFetch(fingerprint);
  return {
    child,
    url,
    fetch,
    fingerprint,
    dataDir,
    output: () => out,
    exited,
    async signInAdmin() {
      const first = /password: (\S+)/.exec(await readFile(path.join(dataDir, 'first-login.txt'), 'utf8'))![1]!;
      const login = await fetch(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: first }) });
      const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]!).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
      if (!cookie) throw new Error(`sign-in failed: ${login.status} ${await login.text()}`);
      const change = await fetch(`${url}/api/auth/change-password`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie },
        body: JSON.stringify({ currentPassword: first, newPassword: 'correct-horse-battery' }),
      });
      if (change.status !== 200) throw new Error(`password change failed: ${await change.text()}`);
      return cookie;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await database.drop().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
