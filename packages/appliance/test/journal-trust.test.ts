import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, deviceMatching, DEVICE_PATTERNS, journalMac, journalMacValid, JournalTrustError, pathUnder } from '../src/journal-trust.ts';

describe('journal trust', () => {
  let tmp: string;
  let root: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'vaultline-trust-'));
    root = path.join(tmp, 'data', 'flr');
    await mkdir(path.join(root, 's1', 'mnt'), { recursive: true });
    await mkdir(path.join(tmp, 'elsewhere'));
    await symlink(path.join(tmp, 'elsewhere'), path.join(root, 's1', 'mnt', 'out'));
    await symlink(path.join(root, 's1'), path.join(root, 'in'));
    await symlink(path.join(root, 'loop-a'), path.join(root, 'loop-b'));
    await symlink(path.join(root, 'loop-b'), path.join(root, 'loop-a'));
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('signs the fields in order, the table and the target canonically (jsonb reorders keys)', () => {
    const key = randomBytes(32);
    const at = new Date('2026-12-05T10:00:00.123Z');
    const mac = journalMac(key, 'flr_journal', ['id', 'mount', at, { b: 1, a: { d: [1, 2], c: null } }]);
    expect(canonicalJson({ b: 1, a: { d: [1, 2], c: null } })).toBe('{"a":{"c":null,"d":[1,2]},"b":1}');
    expect(journalMacValid(key, 'flr_journal', ['id', 'mount', new Date(at), { a: { c: null, d: [1, 2] }, b: 1 }], mac)).toBe(true);
    expect(journalMacValid(key, 'cleanup_journal', ['id', 'mount', at, { b: 1, a: { d: [1, 2], c: null } }], mac)).toBe(false);
    expect(journalMacValid(key, 'flr_journal', ['id', 'loop', at, { b: 1, a: { d: [1, 2], c: null } }], mac)).toBe(false);
    expect(journalMacValid(randomBytes(32), 'flr_journal', ['id', 'mount', at, { b: 1, a: { d: [1, 2], c: null } }], mac)).toBe(false);
    expect(journalMacValid(key, 'flr_journal', ['id', 'mount', at, { b: 1, a: { d: [1, 2], c: null } }], null)).toBe(false);
    expect(journalMacValid(key, 'flr_journal', ['id', 'mount', at, { b: 1, a: { d: [1, 2], c: null } }], 'zz')).toBe(false);
  });

  it('accepts paths that resolve under the directory, existing or not, and returns them resolved', async () => {
    expect(await pathUnder(path.join(root, 's1', 'mnt'), root, 'x')).toBe(path.join(root, 's1', 'mnt'));
    expect(await pathUnder(path.join(root, 's1', 'mnt', 'p9'), root, 'x')).toBe(path.join(root, 's1', 'mnt', 'p9'));
    expect(await pathUnder(path.join(root, 'in', 'mnt'), root, 'x')).toBe(path.join(root, 's1', 'mnt'));
  });

  it('refuses relative paths, the directory itself, .. and symlinks leading out, and symlink loops', async () => {
    const refused = async (p: unknown) => {
      const err = await pathUnder(p, root, 'mount point').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(JournalTrustError);
      return (err as Error).message;
    };
    expect(await refused('s1/mnt')).toMatch(/not an absolute path/);
    expect(await refused(42)).toMatch(/not an absolute path/);
    expect(await refused(root)).toMatch(/not under/);
    expect(await refused('/etc')).toMatch(/not under/);
    expect(await refused(`${root}/s1/../../../elsewhere`)).toMatch(/not under/);
    expect(await refused(`${root}-evil/x`)).toMatch(/not under/);
    expect(await refused(path.join(root, 's1', 'mnt', 'out'))).toMatch(/resolves to .*elsewhere, outside/);
    expect(await refused(path.join(root, 's1', 'mnt', 'out', 'deeper'))).toMatch(/outside/);
    expect(await refused(path.join(root, 'loop-a'))).toMatch(/cannot be resolved \(ELOOP\)/);
  });

  it('accepts only devices of the expected pattern once resolved', async () => {
    expect(await deviceMatching('/dev/loop7', DEVICE_PATTERNS.loop, 'd')).toBe('/dev/loop7');
    await symlink('/dev/sda', path.join(tmp, 'disguised-loop0'));
    for (const [dev, pattern] of [['/dev/sda', DEVICE_PATTERNS.loop], ['/dev/nvme0n1', DEVICE_PATTERNS.scsi], ['/dev/mem', DEVICE_PATTERNS.scsi], [path.join(tmp, 'disguised-loop0'), DEVICE_PATTERNS.loop], ['/dev/loop7/../sda', DEVICE_PATTERNS.loop], ['loop0', DEVICE_PATTERNS.loop]] as const) {
      await expect(deviceMatching(dev, pattern, 'device')).rejects.toBeInstanceOf(JournalTrustError);
    }
  });
});
