import { describe, expect, it } from 'vitest';
import { judgeInstallFolder, judgePlatform, parseHostFacts, type HostFacts } from '../src/preflight.ts';
import { renderEnvFile } from '../src/install.ts';
import { RemoteProblem } from '../src/ssh.ts';
import { compareVersions, glibcNeeded } from '../src/bundle.ts';

const bundle = { machine: 'x86_64', glibcRequired: '2.28' };
const linux: HostFacts = { os: 'Linux', machine: 'x86_64', uid: 1000, user: 'ops', home: '/home/ops', glibc: '2.36', systemd: true, tools: { tar: true, gzip: true, setsid: true } };

function problem(fn: () => void): RemoteProblem {
  try {
    fn();
  } catch (err) {
    if (err instanceof RemoteProblem) return err;
    throw err;
  }
  throw new Error('no problem raised');
}

describe('judging a host from what it answered (fake uname/getconf outputs)', () => {
  it('reads the facts script output', () => {
    const f = parseHostFacts('os=Linux\nmachine=aarch64\nuid=0\nuser=root\nhome=/root\nglibc=glibc 2.31\nsystemd=1\nhas_tar=1\nhas_gzip=0\nhas_setsid=1\n');
    expect(f).toEqual({ os: 'Linux', machine: 'aarch64', uid: 0, user: 'root', home: '/root', glibc: '2.31', systemd: true, tools: { tar: true, gzip: false, setsid: true } });
    expect(parseHostFacts('os=Linux\nglibc=\n').glibc).toBeNull();
  });

  it('accepts a Linux host with the bundle architecture and a new enough glibc', () => {
    expect(() => judgePlatform('h', linux, bundle)).not.toThrow();
  });

  it('refuses a host that is not Linux', () => {
    const p = problem(() => judgePlatform('mac.lan', { ...linux, os: 'Darwin' }, bundle));
    expect(p.kind).toBe('platform');
    expect(p.message).toBe('mac.lan is not a Linux host (it reports "Darwin"); remote Transporters run on Linux only');
    expect(problem(() => judgePlatform('win', { ...linux, os: '' }, bundle)).message).toContain('no uname');
  });

  it('refuses another CPU architecture', () => {
    expect(problem(() => judgePlatform('pi', { ...linux, machine: 'aarch64' }, bundle)).message).toBe('pi has an unsupported CPU architecture: aarch64; this appliance ships Transporters for x86_64');
  });

  it('refuses an old glibc and a host without glibc', () => {
    expect(problem(() => judgePlatform('old', { ...linux, glibc: '2.17' }, bundle)).message).toMatch(/^old has glibc 2\.17; the Transporter needs glibc 2\.28 or newer/);
    expect(problem(() => judgePlatform('alpine', { ...linux, glibc: null }, bundle)).message).toContain('no GNU C library');
  });

  it('refuses a host without tar or gzip', () => {
    expect(problem(() => judgePlatform('min', { ...linux, tools: { tar: false, gzip: false, setsid: true } }, bundle)).message).toBe('min lacks tar and gzip, needed to unpack the Transporter; install tar and gzip there');
  });

  it('refuses an install folder without room or write permission', () => {
    const folder = { folder: '/srv/vt', existing: '/srv', freeBytes: 10 * 1024 * 1024, writable: true, writeError: '', isDir: true, existed: false };
    expect(problem(() => judgeInstallFolder('h', 'ops', folder, 300 * 1024 * 1024)).message).toBe('not enough disk space in /srv/vt on h: 10 MiB free in /srv, the Transporter needs 300 MiB');
    expect(problem(() => judgeInstallFolder('h', 'ops', { ...folder, writable: false, writeError: 'Read-only file system' }, 1)).message).toBe(
      'ops has no write permission in /srv/vt on h (Read-only file system); choose a folder ops owns, or sign in as root',
    );
    expect(problem(() => judgeInstallFolder('h', 'ops', { ...folder, isDir: false }, 1)).kind).toBe('permission');
  });
});

describe('the env file', () => {
  it('quotes every value so systemd and node --env-file read the same', () => {
    expect(renderEnvFile({ A: 'postgresql://u:p@h:5432/db?sslmode=require', B: 'remote one' })).toBe(
      '# Written by the Vaultline Director. Mode 0600: holds the appliance key.\nA="postgresql://u:p@h:5432/db?sslmode=require"\nB="remote one"\n',
    );
  });

  it('refuses values it cannot carry', () => {
    expect(() => renderEnvFile({ A: 'x"y' })).toThrow(/A holds a character/);
    expect(() => renderEnvFile({ A: 'x\ny' })).toThrow(/A holds a character/);
    expect(() => renderEnvFile({ A: '$HOME' })).toThrow(/A holds a character/);
    expect(() => renderEnvFile({ 'a-b': 'x' })).toThrow(/bad environment variable name/);
  });
});

describe('glibc needed by the bundle', () => {
  it('finds the highest GLIBC_ version the running node binary needs', async () => {
    const v = await glibcNeeded(process.execPath);
    expect(v).toMatch(/^2\.\d+$/);
    expect(compareVersions(v!, '2.17')).toBeGreaterThanOrEqual(0);
    expect(await glibcNeeded(new URL(import.meta.url).pathname)).toBeNull();
  });

  it('compares versions numerically', () => {
    expect(compareVersions('2.9', '2.28')).toBeLessThan(0);
    expect(compareVersions('2.28', '2.28')).toBe(0);
    expect(compareVersions('2.36', '2.28')).toBeGreaterThan(0);
  });
});
