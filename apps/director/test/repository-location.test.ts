import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDirectorProcess, type DirectorProcess } from './director-process.ts';

/** The Director answers each within a second; the margin is for a loaded test machine. */
const SOON = 5_000;

describe('a local repository path that cannot hold a repository (a real Director process)', () => {
  let director: DirectorProcess;
  let cookie: string;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-location-'));
    await symlink(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    await symlink('/proc', path.join(dir, 'into-proc'));
    director = await startDirectorProcess();
    cookie = await director.signInAdmin();
  }, 60_000);
  afterAll(async () => {
    await director?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const create = (location: string) =>
    director.fetch(`${director.url}/api/repositories`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: JSON.stringify({ kind: 'local', name: `r-${path.basename(location)}-${Math.random().toString(36).slice(2)}`, location }),
      signal: AbortSignal.timeout(SOON),
    });

  it('/proc, /sys and /dev, a dangling symbolic link and a link into /proc: one clear 400 each at once, and the Director still answers', async () => {
    const cases: Array<[string, RegExp]> = [
      ['/proc/x', /^\/proc\/x lies under \/proc, a kernel filesystem, not storage/],
      ['/sys/x', /^\/sys\/x lies under \/sys, a kernel filesystem/],
      ['/dev/x', /^\/dev\/x lies under \/dev, a kernel filesystem/],
      [path.join(dir, 'dangling/repo'), new RegExp(`goes through the dangling symbolic link ${dir}/dangling \\(its target ${dir}/nowhere does not exist\\)`)],
      [path.join(dir, 'into-proc/vaultline'), /leads \(through symbolic links\) to \/proc\/vaultline, under \/proc, a kernel filesystem/],
    ];
    for (const [location, message] of cases) {
      const res = await create(location);
      const body = (await res.json()) as { code: string; message: string };
      expect(res.status, `${location}: ${JSON.stringify(body)}`).toBe(400);
      expect(body.message).toMatch(message);
    }
    expect(existsSync('/dev/x')).toBe(false);
    expect(existsSync(path.join(dir, 'nowhere'))).toBe(false);
    const health = await director.fetch(`${director.url}/api/health`, { signal: AbortSignal.timeout(SOON) });
    expect(health.status).toBe(200);
    const list = await director.fetch(`${director.url}/api/repositories`, { headers: { cookie }, signal: AbortSignal.timeout(SOON) });
    // Only the default repository of the data dir: none of the refused ones was recorded.
    expect(((await list.json()) as Array<{ name: string }>).map((r) => r.name)).toEqual(['Local repository']);
  });

  it('an ordinary folder that does not exist yet is created, through a symbolic link too', async () => {
    await symlink(dir, path.join(dir, 'alias'));
    const res = await create(path.join(dir, 'alias/new/repo'));
    expect(res.status, await res.clone().text()).toBe(201);
    expect(existsSync(path.join(dir, 'new/repo/config'))).toBe(true);
  });
});
