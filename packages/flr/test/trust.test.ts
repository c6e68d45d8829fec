/**
 * The sweep trusts nothing it reads from flr_journal (Postgres, real mounts
 * and processes): forged rows, rows signed with another key, paths that lead
 * out of the FLR root through a symlink, devices that are not loop devices and
 * processes that are not the NBD server are refused — marked once, never acted
 * on — while a genuine row is still undone.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { journalMac } from '@vaultline/appliance';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { memoryLogger } from '@vaultline/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgFlrJournal, sweep } from '../src/index.ts';
import { processStart, selfOwner } from '../src/system.ts';

const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const mounted = async (p: string) => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === p);

describe.skipIf(!isRoot)('the file-restore sweep acts only on what is its own (root: real mounts)', () => {
  let database: TestDatabase;
  let db: Db;
  let tmp: string;
  let root: string;
  let outside: string;
  const key = randomBytes(32);
  const children: ChildProcess[] = [];
  // A Director of this host that is gone (pid 2^22 - 1 is above any pid_max default; its start time never matches).
  const deadOwner = async () => ({ host: (await selfOwner()).host, pid: 4_194_303, start: '1' });

  beforeAll(async () => {
    database = await createTestDatabase(PG_SERVER, 'vaultline_flr_trust');
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'vaultline-flr-trust-'));
    root = path.join(tmp, 'data', 'flr');
    outside = path.join(tmp, 'precious');
    await mkdir(root, { recursive: true });
    await mkdir(outside);
    execFileSync('mount', ['-t', 'tmpfs', 'precious', outside]);
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    if (outside && (await mounted(outside))) execFileSync('umount', [outside]);
    if (tmp) {
      for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
        const mp = line.split(' ')[4];
        if (mp?.startsWith(`${tmp}/`)) execFileSync('umount', ['-l', mp]);
      }
      await rm(tmp, { recursive: true, force: true });
    }
    await db?.$disconnect();
    await database?.drop();
  });

  const run = async () => {
    const { log, lines } = memoryLogger('flr-sweep');
    const journal = pgFlrJournal(db, key, { log });
    return { report: await sweep({ journal, log, self: await selfOwner(), root }), lines };
  };
  const row = (id: string) => db.flrJournalEntry.findUniqueOrThrow({ where: { id } });
  const signed = (owner: { host: string; pid: number; start: string }, sessionId: string, layer: 'mount' | 'loop' | 'fuse' | 'nbd_server' | 'session', target: Record<string, unknown>) =>
    pgFlrJournal(db, key).add(sessionId, layer, target, owner);

  it('a forged row (no MAC, or signed with another key) naming a real mount outside the FLR root: nothing touched, refused once', async () => {
    const owner = await deadOwner();
    const sessionId = randomUUID();
    const base = { sessionId, host: owner.host, ownerPid: owner.pid, ownerStart: owner.start };
    const unsigned = await db.flrJournalEntry.create({ data: { ...base, layer: 'mount', target: { mountPoint: outside, device: '/dev/loop0' } } });
    const other = await pgFlrJournal(db, randomBytes(32)).add(sessionId, 'mount', { mountPoint: outside, device: '/dev/loop0' }, owner);
    // A row of ours whose target was rewritten in the database afterwards.
    const changed = await signed(owner, sessionId, 'mount', { mountPoint: path.join(root, sessionId, 'mnt', 'p1'), device: '/dev/loop0' });
    await db.flrJournalEntry.update({ where: { id: changed }, data: { target: { mountPoint: outside, device: '/dev/loop0' } } });

    const { report, lines } = await run();
    expect(await mounted(outside)).toBe(true);
    expect(report.unmounted).toEqual([]);
    for (const id of [unsigned.id, other, changed]) expect(await row(id)).toMatchObject({ resolvedAt: null, attempts: 0, refusedAt: expect.any(Date) });
    expect((await row(unsigned.id)).refusal).toMatch(/no MAC/);
    expect((await row(other)).refusal).toMatch(/MAC is wrong/);
    expect(lines.filter((l) => l.includes('refused a row'))).toHaveLength(3);
    // Once: a second sweep neither acts on them nor reports them again.
    const again = await run();
    expect(again.lines.filter((l) => l.includes('refused a row'))).toHaveLength(0);
    expect(await mounted(outside)).toBe(true);
  });

  it('a signed row whose mount point is a symlink under the root leading outside: refused, nothing unmounted', async () => {
    const owner = await deadOwner();
    const sessionId = randomUUID();
    await mkdir(path.join(root, sessionId, 'mnt'), { recursive: true });
    const link = path.join(root, sessionId, 'mnt', 'p1');
    await symlink(outside, link);
    const id = await signed(owner, sessionId, 'mount', { mountPoint: link, device: '/dev/loop0' });
    const dotdot = await signed(owner, sessionId, 'fuse', { mountPoint: `${root}/${sessionId}/../../../precious`, pid: null });
    const { report } = await run();
    expect(await mounted(outside)).toBe(true);
    expect(report.refused).toHaveLength(2);
    expect(await row(id)).toMatchObject({ resolvedAt: null, refusal: expect.stringMatching(/resolves to .*precious, outside/) });
    expect(await row(dotdot)).toMatchObject({ resolvedAt: null, refusal: expect.stringMatching(/not under/) });
  });

  it('a signed row naming /dev/sda, or a loop backing file outside the root: refused', async () => {
    const owner = await deadOwner();
    const sessionId = randomUUID();
    const mountPoint = path.join(root, sessionId, 'mnt', 'p1');
    await mkdir(mountPoint, { recursive: true });
    const sda = await signed(owner, sessionId, 'mount', { mountPoint, device: '/dev/sda' });
    const loop = await signed(owner, sessionId, 'loop', { backingFile: '/var/lib/important.img', offset: 0 });
    const { report } = await run();
    expect(report.refused).toHaveLength(2);
    expect(report.loopsDetached).toEqual([]);
    expect(await row(sda)).toMatchObject({ resolvedAt: null, refusal: expect.stringMatching(/\/dev\/sda.*not a device Vaultline uses/) });
    expect(await row(loop)).toMatchObject({ resolvedAt: null, refusal: expect.stringMatching(/not under/) });
  });

  it('a signed NBD server row whose pid is another process (its command line even names the socket): not signalled', async () => {
    const owner = await deadOwner();
    const sessionId = randomUUID();
    const socket = path.join(root, sessionId, 'nbd.sock');
    await mkdir(path.dirname(socket), { recursive: true });
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)', socket], { stdio: 'ignore' });
    children.push(child);
    let start: string | null = null;
    while (!(start = await processStart(child.pid!))) await new Promise((r) => setTimeout(r, 20));
    const id = await signed(owner, sessionId, 'nbd_server', { socket, pid: child.pid, start });
    const { report } = await run();
    expect(report.failures).toEqual([]);
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
    expect(await processStart(child.pid!)).toBe(start);
    expect(await row(id)).toMatchObject({ resolvedAt: expect.any(Date) });
  });

  it('a genuine row is still undone: the mount under the root is unmounted and the row resolved', async () => {
    const owner = await deadOwner();
    const sessionId = randomUUID();
    const dir = path.join(root, sessionId);
    const mountPoint = path.join(dir, 'mnt', 'p1');
    await mkdir(mountPoint, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'p1', mountPoint]);
    const session = await signed(owner, sessionId, 'session', { dir });
    const mount = await signed(owner, sessionId, 'mount', { mountPoint, device: '/dev/loop7' });
    const { report } = await run();
    expect(report).toMatchObject({ unmounted: [mountPoint], refused: [], failures: [] });
    expect(await mounted(mountPoint)).toBe(false);
    for (const id of [session, mount]) expect(await row(id)).toMatchObject({ resolvedAt: expect.any(Date), refusedAt: null });
    expect(await mounted(outside)).toBe(true);
    // A MAC made with the right key over the same fields is what the journal wrote.
    const r = await row(mount);
    expect(r.mac).toBe(journalMac(key, 'flr_journal', [r.id, r.sessionId, r.layer, r.host, r.ownerPid, r.ownerStart, r.createdAt, r.target]));
  });
});
