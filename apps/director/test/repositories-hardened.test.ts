/**
 * Hardened local repositories through the API, on this machine's filesystem: created hardened (refused, with
 * the reason, where files cannot be made immutable); a point written through the repository row, as the
 * Transporter's backup does, is immutable on disk; deleting it through the API is a 409 until its lock ends,
 * even when the database row no longer says so, and then it goes. Needs root (chattr +i).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openRepository } from '@vaultline/appliance';
import { openRestorePointWriter } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
// The test Director's appliance key and the admin's password after signInAdmin (helpers.ts).
const APPLIANCE_KEY = Buffer.alloc(32, 3);
const PASSWORD = 'correct-horse-battery';

describe.runIf(isRoot)('hardened local repositories (chattr +i by the root helper)', () => {
  const ctx = signedInDirector();
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-hardened-'));
  });
  afterAll(() => {
    // What a failed test left locked would make the folder undeletable.
    if (!dir) return;
    spawnSync('chattr', ['-R', '-i', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const inject = (method: 'POST' | 'DELETE', url: string, payload: object) => ctx.d.app.fastify.inject({ method, url, headers: { cookie: ctx.cookie }, payload });

  it('refuses to create a hardened repository where its lock records could not be trusted, saying why, and stores nothing', async () => {
    const location = path.join(dir, 'untrusted');
    fs.mkdirSync(path.join(location, '.immutable'), { recursive: true });
    fs.chmodSync(path.join(location, '.immutable'), 0o777);
    const res = await inject('POST', '/api/repositories', { kind: 'local', name: 'untrusted', location, hardened: true });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toBe(
      `${location} cannot be a hardened repository: ${location}/.immutable is not a folder owned and writable by root only, so its lock records cannot be trusted; check who replaced it`,
    );
    expect(await ctx.d.db.repository.count({ where: { name: 'untrusted' } })).toBe(0);
    expect(fs.existsSync(path.join(location, 'config'))).toBe(false);
  });

  it('a locked point of a hardened repository cannot be deleted through the API (409) until its lock ends, whatever its row says', async () => {
    const location = path.join(dir, 'hardened');
    const created = await inject('POST', '/api/repositories', { kind: 'local', name: 'hardened', location, hardened: true });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ kind: 'local', hardened: true });
    const row = await ctx.d.db.repository.findUniqueOrThrow({ where: { name: 'hardened' } });
    expect(row.hardened).toBe(true);

    // Written as the Transporter's backup writes: the repository opened from its row, the job's lock date.
    const repo = await openRepository(row, APPLIANCE_KEY);
    const until = new Date(Date.now() + 4000);
    const w = await openRestorePointWriter(repo, { vmId: 'uuid-h1', vm: { name: 'h1' }, lockedUntil: until });
    await (await w.openDisk({ key: '2000', capacity: 1024 * 1024 })).write(0, Buffer.alloc(1024 * 1024, 7));
    const m = await w.commit();
    await repo.close();
    const manifest = path.join(location, 'snapshots', 'uuid-h1', m.id, 'manifest');
    expect(execFileSync('lsattr', ['-d', manifest]).toString()).toMatch(/^\S*i\S* /);
    const point = await ctx.d.db.restorePoint.create({
      data: { repositoryId: row.id, repoPointId: m.id, vmInstanceUuid: 'uuid-h1', vmName: 'h1', createdAt: new Date(m.createdAt), logicalBytes: BigInt(1024 * 1024), immutableUntil: until },
    });
    const what = `the restore point of h1 taken ${point.createdAt.toISOString()}`;

    const refused = await inject('DELETE', `/api/restore-points/${point.id}`, { currentPassword: PASSWORD });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toBe(`${what} is immutable until ${until.toISOString()}`);

    // Whoever can write the database clears the row's date: the repository still refuses.
    await ctx.d.db.restorePoint.update({ where: { id: point.id }, data: { immutableUntil: null } });
    const stillRefused = await inject('DELETE', `/api/restore-points/${point.id}`, { currentPassword: PASSWORD });
    expect(stillRefused.statusCode).toBe(409);
    expect(stillRefused.json().message).toBe(`${what} cannot be deleted: restore point uuid-h1/${m.id} is immutable until ${until.toISOString()}`);
    // And the files themselves refuse root's unlink.
    expect(() => fs.unlinkSync(manifest)).toThrow(expect.objectContaining({ code: 'EPERM' }));
    expect(fs.existsSync(manifest)).toBe(true);
    expect(await ctx.d.db.restorePoint.count({ where: { id: point.id } })).toBe(1);

    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(m.packsLockedUntil ?? m.lockedUntil!) - Date.now() + 500)));
    const deleted = await inject('DELETE', `/api/restore-points/${point.id}`, { currentPassword: PASSWORD });
    expect(deleted.statusCode, deleted.body).toBe(200);
    expect(fs.existsSync(manifest)).toBe(false);
    expect(await ctx.d.db.restorePoint.count({ where: { id: point.id } })).toBe(0);
  }, 30_000);
});
