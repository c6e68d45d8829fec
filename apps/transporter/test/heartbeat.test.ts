import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, redisReady, TransporterRegistry } from '@vaultline/queue';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

describe('the Transporter process (real Redis)', () => {
  const redis = connectRedis(REDIS_URL);
  const namespace = `test-${randomUUID()}`;
  let dataDir: string;
  beforeAll(async () => {
    await redisReady(redis);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-transporter-'));
  });
  afterAll(async () => {
    redis.disconnect();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('registers, heartbeats, and deregisters on SIGTERM', async () => {
    const registry = new TransporterRegistry(redis, 200, { namespace });
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, REDIS_URL, VAULTLINE_REDIS_NAMESPACE: namespace, VAULTLINE_HEARTBEAT_MS: '200', VAULTLINE_DATA_DIR: dataDir, VAULTLINE_TRANSPORTER_NAME: 'unit-proxy', VAULTLINE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += String(b)));
    try {
      let found;
      for (let i = 0; i < 100 && !found?.online; i++) {
        await new Promise((r) => setTimeout(r, 100));
        found = (await registry.list()).find((t) => t.name === 'unit-proxy');
      }
      expect(found, stderr).toMatchObject({ name: 'unit-proxy', online: true, host: os.hostname() });
      const first = found!.lastHeartbeat;
      await new Promise((r) => setTimeout(r, 500));
      const later = (await registry.list()).find((t) => t.name === 'unit-proxy');
      expect(Date.parse(later!.lastHeartbeat)).toBeGreaterThan(Date.parse(first));
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    expect(await registry.list()).toEqual([]);
  });

  it('exits with one clear message on bad configuration', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, REDIS_URL: 'nonsense', VAULTLINE_HEARTBEAT_MS: 'often' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += String(b)));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
    expect(stderr).toContain('REDIS_URL');
    expect(stderr).toContain('VAULTLINE_HEARTBEAT_MS');
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
