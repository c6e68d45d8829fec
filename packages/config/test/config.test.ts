import { describe, expect, it } from 'vitest';
import { ConfigError, loadEnv, openSecret, sealSecret } from '../src/index.ts';

describe('loadEnv', () => {
  it('applies defaults when nothing is set', () => {
    const env = loadEnv({});
    expect(env.DATABASE_URL).toMatch(/^postgresql:\/\/.+127\.0\.0\.1:5432/);
    expect(env.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(env.VAULTLINE_PORT).toBe(8080);
    expect(env.VAULTLINE_SESSION_IDLE_MINUTES).toBe(30);
  });

  it('takes the session idle timeout in minutes, between 1 and 720', () => {
    expect(loadEnv({ VAULTLINE_SESSION_IDLE_MINUTES: '5' }).VAULTLINE_SESSION_IDLE_MINUTES).toBe(5);
    expect(() => loadEnv({ VAULTLINE_SESSION_IDLE_MINUTES: '0' })).toThrow(/VAULTLINE_SESSION_IDLE_MINUTES/);
    expect(() => loadEnv({ VAULTLINE_SESSION_IDLE_MINUTES: '721' })).toThrow(ConfigError);
  });

  it('file-level restore: 2 sessions per user and 8 hours at most by default; 0 of either is refused', () => {
    expect(loadEnv({})).toMatchObject({ VAULTLINE_FLR_MAX_SESSIONS_PER_USER: 2, VAULTLINE_FLR_MAX_HOURS: 8 });
    expect(loadEnv({ VAULTLINE_FLR_MAX_SESSIONS_PER_USER: '1', VAULTLINE_FLR_MAX_HOURS: '24' })).toMatchObject({ VAULTLINE_FLR_MAX_SESSIONS_PER_USER: 1, VAULTLINE_FLR_MAX_HOURS: 24 });
    expect(() => loadEnv({ VAULTLINE_FLR_MAX_SESSIONS_PER_USER: '0', VAULTLINE_FLR_MAX_HOURS: '0' })).toThrow(/2 problems[\s\S]*VAULTLINE_FLR_MAX_SESSIONS_PER_USER[\s\S]*VAULTLINE_FLR_MAX_HOURS/);
  });

  it('names every bad key in one error', () => {
    let caught: unknown;
    try {
      loadEnv({ DATABASE_URL: 'nonsense', VAULTLINE_PORT: 'eighty', REDIS_URL: 'http://x' });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const message = (caught as ConfigError).message;
    expect(message).toContain('DATABASE_URL');
    expect(message).toContain('VAULTLINE_PORT');
    expect(message).toContain('REDIS_URL');
    expect((caught as ConfigError).problems).toHaveLength(3);
  });
});

describe('sealed secrets', () => {
  const key = Buffer.alloc(32, 7).toString('hex');

  it('round-trips and never contains the plaintext', () => {
    const sealed = sealSecret(key, 'vcenter-password', 'hunter2!');
    expect(sealed).not.toContain('hunter2');
    expect(openSecret(key, 'vcenter-password', sealed)).toBe('hunter2!');
  });

  it('refuses a value sealed under another label or key', () => {
    const sealed = sealSecret(key, 'vcenter-password', 'x');
    expect(() => openSecret(key, 'ssh-key', sealed)).toThrow(/wrong appliance key or damaged/);
    expect(() => openSecret(Buffer.alloc(32, 1), 'vcenter-password', sealed)).toThrow(/cannot open/);
  });
});
