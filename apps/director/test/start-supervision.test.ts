/**
 * `npm start` (scripts/vaultline.mjs start) keeps its local Transporter running: killed, it is started
 * again and registers anew. The real script, Director and Transporter processes on this machine's
 * PostgreSQL and Redis (a database and Redis namespace of their own), without the lab vCenter.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { connectRedis, TransporterRegistry, type Redis } from '@vaultline/queue';
import { freePort } from '@vaultline/config';
import { afterAll, describe, expect, it } from 'vitest';
import { PG_SERVER, REDIS_URL, until } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

describe('npm start supervises its local Transporter', () => {
  let database: TestDatabase | undefined;
  let redis: Redis | undefined;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vl-start-'));
  afterAll(async () => {
    redis?.disconnect();
    await database?.drop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a killed Transporter is started again after 1 s, says why, and registers again with a new process', async () => {
    database = await createTestDatabase(PG_SERVER);
    redis = connectRedis(REDIS_URL);
    const registry = new TransporterRegistry(redis, 1_000, { namespace: database.name });
    const port = await freePort();
    const child = spawn(process.execPath, ['scripts/vaultline.mjs', 'start'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        REDIS_URL,
        VAULTLINE_REDIS_NAMESPACE: database.name,
        VAULTLINE_PORT: String(port),
        VAULTLINE_DATA_DIR: path.join(tmp, 'data'),
        VAULTLINE_FLR_RUN_DIR: path.join(tmp, 'flr-run'),
        VAULTLINE_FLR_STATE_DIR: path.join(tmp, 'flr-state'),
        VAULTLINE_HEARTBEAT_MS: '1000',
        VAULTLINE_LAB: '0',
        VAULTLINE_TRANSPORTER_NAME: 'supervised',
        VAULTLINE_LOG_DIR: path.join(tmp, 'logs'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += String(d)));
    child.stderr.on('data', (d: Buffer) => (out += String(d)));
    const printed = () => `npm start printed:\n${out.slice(-3000)}`;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until('the appliance to be up', 180_000, async () => out.includes('press Ctrl-C to stop'), printed);
      // The address and the first login come last, once the Transporter reported in, not buried under its start-up lines.
      const banner = out.slice(out.indexOf('is up:'));
      expect(banner).toMatch(/first login \(you will be asked to choose a new password\):\n.*username: admin/);
      expect(banner).not.toContain('has not reported in yet');
      expect(banner).toContain(`logs (JSON, debug and up): ${path.join(tmp, 'logs')}`);
      // Requests are not in the terminal; the Director's file has them, at debug.
      expect(out).not.toContain('request completed');
      const directorLog = await until('the Director log file to hold a request', 10_000, async () => {
        const text = await readFile(path.join(tmp, 'logs', 'director.log'), 'utf8').catch(() => '');
        return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg === 'request completed');
      }, printed);
      expect(directorLog.level).toBe(20);
      const first = await until('the Transporter to register', 60_000, async () => (await registry.list()).find((t) => t.name === 'supervised' && t.online), printed);
      process.kill(first.pid, 'SIGKILL');
      await until('npm start to notice', 10_000, async () => out.includes('vaultline: the local Transporter stopped (SIGKILL); starting it again in 1 s'), printed);
      const second = await until(
        'a new Transporter process to register',
        60_000,
        async () => (await registry.list()).find((t) => t.name === 'supervised' && t.online && t.pid !== first.pid && Date.parse(t.startedAt) > Date.parse(first.startedAt)),
        printed,
      );
      expect(second.id).toBe(first.id);
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  }, 300_000);
});
