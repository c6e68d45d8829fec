/**
 * File-level restore, end to end and for real: disk images built with sgdisk,
 * mkfs.ext4, mkfs.vfat/mtools and mkntfs/ntfs-3g on loop devices, stored as a
 * restore point by the real repository writer, then browsed through a real
 * Director over HTTP — our NBD server process in the Director; nbdfuse,
 * read-only loop devices, kernel ext4 and FUSE ntfs-3g/fusefat mounts in the
 * helper process (vaultline-flr, its own mount namespace, no key in reach).
 * GNU tar is the independent reader of archives; /proc/<pid>/mountinfo,
 * losetup and /proc/<pid>/cmdline tell what is left behind and where.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { SECRET_LABELS } from '@vaultline/appliance';
import { sealSecret } from '@vaultline/config';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { buildImages, describeTree, ensureFlrTools, leftoversUnder, mountsIn, ODD_NAME, RAW_NAME, repositoryFingerprint, startFlrHelper, storeRestorePoint, type BuiltImages, type RunningHelper } from '@vaultline/flr/testing';
import { gc, LockedError, Repository, verify } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedFetch } from '@vaultline/tls';
import { SESSION_COOKIE } from '../src/auth/sessions.ts';
import { PG_SERVER, signInAdmin, signInAs, startTestDirector, type TestDirector } from './helpers.ts';

const MiB = 1024 * 1024;
const PASSPHRASE = 'flr repository passphrase';
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
const VM = { uuid: 'flr-vm-uuid', name: 'files01' };

let work: string;
let images: BuiltImages;
let repoDir: string;
let repoPointId: string;
let fingerprint: Map<string, string>;

beforeAll(async () => {
  ensureFlrTools();
  work = await mkdtemp(path.join(os.tmpdir(), 'vaultline-flr-'));
  images = await buildImages(work);
  repoDir = path.join(work, 'repo');
  repoPointId = await storeRestorePoint(repoDir, PASSPHRASE, VM, [
    { key: '2000', image: images.partitioned },
    { key: '2001', image: images.whole },
  ]);
  fingerprint = repositoryFingerprint(repoDir);
}, 300_000);

afterAll(async () => {
  if (work) {
    const left = leftoversUnder(work);
    // Never delete through a mount that a failed test left behind.
    if (left.mounts.length === 0) await rm(work, { recursive: true, force: true });
  }
});

async function registerPoint(db: Db): Promise<string> {
  const row = await db.repository.create({
    data: { name: `flr-${Math.random().toString(36).slice(2)}`, location: repoDir, encrypted: true, passphraseSealed: sealSecret(Buffer.alloc(32, 3), SECRET_LABELS.repositoryPassphrase, PASSPHRASE) },
  });
  const point = await db.restorePoint.create({
    data: { repositoryId: row.id, repoPointId, vmInstanceUuid: VM.uuid, vmName: VM.name, createdAt: new Date(), logicalBytes: BigInt(160 * MiB + 24 * MiB) },
  });
  return point.id;
}

interface Http {
  base: string;
  fetch: ReturnType<typeof pinnedFetch>;
  req(method: string, url: string, cookie: string, headers?: Record<string, string>): Promise<Response>;
}

function http(port: number, fingerprint: string): Http {
  const base = `https://127.0.0.1:${port}`;
  const fetch = pinnedFetch(fingerprint);
  return { base, fetch, req: (method, url, cookie, headers = {}) => fetch(`${base}${url}`, { method, headers: { cookie, ...headers } }) };
}

/**
 * A stand-in for the helper's socket that forwards to the real one and keeps every byte that crosses
 * it, both ways, so a test can show what the Director tells the helper. The token is the helper's.
 */
async function recordingProxy(helper: RunningHelper, dir: string): Promise<{ runDir: string; bytes: () => Buffer; close: () => void }> {
  await mkdir(dir, { recursive: true });
  await copyFile(path.join(helper.runDir, 'token'), path.join(dir, 'token'));
  const seen: Buffer[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(path.join(helper.runDir, 'flr.sock'));
    client.on('data', (b: Buffer) => seen.push(Buffer.from(b)));
    upstream.on('data', (b: Buffer) => seen.push(Buffer.from(b)));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(path.join(dir, 'flr.sock'), r));
  return { runDir: dir, bytes: () => Buffer.concat(seen), close: () => server.close() };
}

const q = (o: Record<string, string | number>) => new URLSearchParams(Object.entries(o).map(([k, v]): [string, string] => [k, String(v)])).toString();

describe('file-level restore through the Director over HTTP (real images, repository, NBD, nbdfuse, loop devices, mounts)', () => {
  let d: TestDirector;
  let h: Http;
  let admin: string;
  let operator2: string;
  let viewer: string;
  let pointId: string;
  let session: string;
  let root: string;
  let base: string;
  let helper: RunningHelper;
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;

  beforeAll(async () => {
    root = path.join(work, 'flr-main');
    helper = await startFlrHelper(root);
    proxy = await recordingProxy(helper, path.join(root, 'proxy'));
    d = await startTestDirector({ fileRestore: { runDir: proxy.runDir } });
    admin = await signInAdmin(d);
    operator2 = await signInAs(d, admin, 'operator2', 'operator');
    viewer = await signInAs(d, admin, 'viewer1', 'viewer');
    pointId = await registerPoint(d.db);
    await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    const addr = d.app.fastify.server.address();
    h = http(typeof addr === 'object' && addr ? addr.port : 0, d.tls.fingerprint);
  });
  afterAll(async () => {
    await d?.close();
    proxy?.close();
    await helper?.stop();
  });

  const get = (suffix: string, params: Record<string, string | number>, cookie = admin, headers?: Record<string, string>) => h.req('GET', `${base}/${suffix}?${q(params)}`, cookie, headers);

  it('opens a session: every disk and partition with its filesystem, label and size, and why some are not mounted', async () => {
    const res = await h.req('POST', `/api/restore-points/${pointId}/browse`, admin);
    expect(res.status).toBe(201);
    const body = (await res.json()) as { session: string; idleTimeoutSeconds: number; disks: Array<{ key: string; partitionTable: string; partitions: Array<Record<string, unknown>> }> };
    session = body.session;
    base = `/api/restore-points/${pointId}/browse/${session}`;
    expect(session).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(body.idleTimeoutSeconds).toBe(1800);
    const [disk1, disk2] = body.disks;
    expect(disk1).toMatchObject({ key: '2000', partitionTable: 'gpt' });
    expect(disk2).toMatchObject({ key: '2001', partitionTable: 'none' });
    const byId = Object.fromEntries(body.disks.flatMap((x) => x.partitions).map((p) => [p.id as string, p]));
    expect(byId.d0p1).toMatchObject({ number: 1, filesystem: 'ext4', label: 'linux', partitionName: 'linux root', mounted: true, offsetBytes: images.p.ext4.offset, sizeBytes: images.p.ext4.size });
    expect(byId.d0p2).toMatchObject({ filesystem: 'vfat', label: 'DATA', mounted: true, sizeBytes: images.p.fat.size });
    expect(byId.d0p3).toMatchObject({ filesystem: 'ntfs', label: 'WINDATA', mounted: true, driver: 'NTFS (ntfs-3g, ro)' });
    expect(byId.d0p4).toMatchObject({ mounted: false, filesystem: null });
    expect(byId.d0p4!.reason).toMatch(/LVM physical volume/);
    expect(byId.d1).toMatchObject({ number: 0, filesystem: 'ext4', label: 'wholedisk', mounted: true, sizeBytes: 24 * MiB });
    // Every layer is read-only.
    const mounts = leftoversUnder(root, helper.pid).mounts;
    expect(mounts.length).toBe(6); // 2 nbdfuse files + 4 filesystems
    for (const l of spawnSync('losetup', ['--list', '--noheadings', '--output', 'RO,BACK-FILE'], { encoding: 'utf8' }).stdout.split('\n').filter((x) => x.includes(root))) {
      expect(l.trim().startsWith('1')).toBe(true);
    }
    const again = await h.req('GET', base, admin);
    expect(((await again.json()) as { disks: unknown[] }).disks).toEqual(body.disks);
  });

  it('lists a directory like the original: names, types, sizes, symlink targets, odd names; pages through it', async () => {
    const res = await get('list', { partition: 'd0p1', path: '' });
    expect(res.status).toBe(200);
    const listing = (await res.json()) as { total: number; entries: Array<{ name: string; ref: string; type: string; size: number; target?: string; nameLossy?: boolean; mtime: string }> };
    const source = describeTree(images.source);
    const top = [...source.keys()].filter((k) => !k.includes('/')).sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
    expect(listing.entries.map((e) => Buffer.from(e.ref, 'base64url').toString('latin1'))).toEqual(top);
    expect(listing.total).toBe(top.length);
    const by = Object.fromEntries(listing.entries.map((e) => [e.name, e]));
    expect(by['big.bin']).toMatchObject({ type: 'file', size: 20 * MiB });
    expect(by['passwd-link']).toMatchObject({ type: 'symlink', target: '/etc/passwd' });
    expect(by['a-fifo']).toMatchObject({ type: 'fifo' });
    expect(by['empty']).toMatchObject({ type: 'file', size: 0 });
    expect(by['docs']).toMatchObject({ type: 'directory' });
    expect(by[ODD_NAME]).toMatchObject({ type: 'file', size: 24 });
    const raw = listing.entries.find((e) => Buffer.from(e.ref, 'base64url').equals(RAW_NAME));
    expect(raw).toMatchObject({ nameLossy: true, type: 'file', size: 9 });
    expect(Number.isNaN(Date.parse(by['big.bin']!.mtime))).toBe(false);

    const nested = (await (await get('list', { partition: 'd0p1', path: 'docs/reports/2026' })).json()) as { entries: Array<{ name: string }> };
    expect(nested.entries.map((e) => e.name)).toEqual(['q4.txt']);

    // Paging: three at a time gives the same entries in the same order.
    const paged: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page = (await (await get('list', { partition: 'd0p1', path: '', limit: 3, ...(cursor ? { cursor } : {}) })).json()) as { entries: Array<{ ref: string }>; nextCursor: string | null };
      expect(page.entries.length).toBeLessThanOrEqual(3);
      paged.push(...page.entries.map((e) => e.ref));
      cursor = page.nextCursor;
    }
    expect(paged).toEqual(listing.entries.map((e) => e.ref));

    const ntfs = (await (await get('list', { partition: 'd0p3', path: 'docs' })).json()) as { entries: Array<{ name: string; type: string }> };
    expect(ntfs.entries.map((e) => `${e.name}:${e.type}`)).toEqual(['readme.md:file', 'reports:directory']);
    const whole = (await (await get('list', { partition: 'd1', path: '' })).json()) as { entries: Array<{ name: string }> };
    expect(whole.entries.map((e) => e.name)).toEqual(['hello.txt']);
  });

  it('downloads files whose SHA-256 equals the original (ext4, NTFS, FAT, odd and raw names), with a download name', async () => {
    const want = sha(images.big);
    const t0 = performance.now();
    const res = await get('file', { partition: 'd0p1', path: 'big.bin' });
    const body = Buffer.from(await res.arrayBuffer());
    const ms = performance.now() - t0;
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(20 * MiB));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="big.bin"; filename*=UTF-8''big.bin`);
    expect(sha(body)).toBe(want);
    console.log(`file-level restore: 20 MiB file from ext4 through NBD + nbdfuse + loop in ${ms.toFixed(0)} ms (${((20 / ms) * 1000).toFixed(0)} MiB/s, first read)`);

    const ntfs = await get('file', { partition: 'd0p3', path: 'big.bin' });
    expect(sha(Buffer.from(await ntfs.arrayBuffer()))).toBe(want);
    // fusefat shows 8.3 names upper-case when no long name was stored.
    const fat = await get('file', { partition: 'd0p2', path: 'BIG.BIN' });
    expect(sha(Buffer.from(await fat.arrayBuffer()))).toBe(want);

    const odd = await get('file', { partition: 'd0p1', path: ODD_NAME });
    expect(await odd.text()).toBe('odd name, plain content\n');
    expect(odd.headers.get('content-disposition')).toContain(`filename*=UTF-8''${encodeURIComponent(ODD_NAME)}`);
    const raw = await get('file', { partition: 'd0p1', ref: RAW_NAME.toString('base64url') });
    expect(await raw.text()).toBe('raw name\n');
    const empty = await get('file', { partition: 'd0p1', path: 'empty' });
    expect(empty.status).toBe(200);
    expect((await empty.arrayBuffer()).byteLength).toBe(0);
    const nested = await get('file', { partition: 'd0p1', path: 'docs/reports/2026/q4.txt' });
    expect(await nested.text()).toBe('quarterly figures\n'.repeat(1000));
  });

  it('answers Range requests (206 with Content-Range, suffix ranges, 416 past the end)', async () => {
    const mid = await get('file', { partition: 'd0p1', path: 'big.bin' }, admin, { range: 'bytes=1048570-1048585' });
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 1048570-1048585/${20 * MiB}`);
    expect(Buffer.from(await mid.arrayBuffer()).equals(images.big.subarray(1048570, 1048586))).toBe(true);
    const tail = await get('file', { partition: 'd0p1', path: 'big.bin' }, admin, { range: 'bytes=-100' });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(images.big.subarray(20 * MiB - 100))).toBe(true);
    const open = await get('file', { partition: 'd0p1', path: 'big.bin' }, admin, { range: `bytes=${19 * MiB}-` });
    expect(sha(Buffer.from(await open.arrayBuffer()))).toBe(sha(images.big.subarray(19 * MiB)));
    const past = await get('file', { partition: 'd0p1', path: 'big.bin' }, admin, { range: `bytes=${20 * MiB}-` });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${20 * MiB}`);
  });

  it('streams a directory as a tar that GNU tar extracts to exactly the original tree (links kept as links, the FIFO left out)', async () => {
    const out = path.join(work, 'x-ext4');
    const res = await get('archive', { partition: 'd0p1', path: '' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-tar');
    const tarball = Buffer.from(await res.arrayBuffer());
    spawnSync('mkdir', ['-p', out]);
    const x = spawnSync('tar', ['-x', '-f', '-', '-C', out], { input: tarball });
    expect(x.stderr.toString()).toBe('');
    expect(x.status).toBe(0);
    const want = describeTree(images.source);
    want.delete('a-fifo');
    expect(describeTree(out)).toEqual(want);

    const sub = path.join(work, 'x-docs');
    spawnSync('mkdir', ['-p', sub]);
    const docs = Buffer.from(await (await get('archive', { partition: 'd0p1', path: 'docs' })).arrayBuffer());
    expect(spawnSync('tar', ['-x', '-f', '-', '-C', sub], { input: docs }).status).toBe(0);
    expect(describeTree(path.join(sub, 'docs'))).toEqual(new Map([...want].filter(([k]) => k.startsWith('docs/')).map(([k, v]) => [k.slice(5), v])));

    const ntfsOut = path.join(work, 'x-ntfs');
    spawnSync('mkdir', ['-p', ntfsOut]);
    const ntfs = Buffer.from(await (await get('archive', { partition: 'd0p3', path: '' })).arrayBuffer());
    expect(spawnSync('tar', ['-x', '-f', '-', '-C', ntfsOut], { input: ntfs }).status).toBe(0);
    const ntfsWant = new Map([...want].filter(([k, v]) => v.type !== 'symlink' && k !== RAW_NAME.toString('latin1')));
    expect(describeTree(ntfsOut)).toEqual(ntfsWant);
  });

  it('refuses traversal, absolute paths, NUL bytes, and reading through or from symbolic links, FIFOs and directories', async () => {
    const code = async (params: Record<string, string>, suffix = 'file') => {
      const r = await get(suffix, { partition: 'd0p1', ...params });
      return { status: r.status, message: ((await r.json()) as { message: string }).message };
    };
    expect(await code({ path: '../../../etc/passwd' })).toMatchObject({ status: 400, message: expect.stringContaining('..') });
    expect(await code({ path: 'docs/../../x' })).toMatchObject({ status: 400 });
    expect(await code({ path: '/etc/passwd' })).toMatchObject({ status: 400, message: expect.stringContaining('absolute paths are refused') });
    expect(await code({ path: 'docs\u0000/x' })).toMatchObject({ status: 400 });
    expect(await code({ ref: Buffer.from('../etc').toString('base64url') })).toMatchObject({ status: 400 });
    expect(await code({ path: 'passwd-link' })).toMatchObject({ status: 409, message: expect.stringContaining('symbolic link') });
    expect(await code({ path: 'docs/q4-link' })).toMatchObject({ status: 409, message: expect.stringContaining('never followed') });
    expect(await code({ path: 'passwd-link/x' })).toMatchObject({ status: 409 });
    expect(await code({ path: 'passwd-link' }, 'list')).toMatchObject({ status: 409 });
    expect(await code({ path: 'a-fifo' })).toMatchObject({ status: 409, message: expect.stringContaining('fifo, not a regular file') });
    expect(await code({ path: 'docs' })).toMatchObject({ status: 409, message: expect.stringContaining('archive') });
    expect(await code({ path: 'nope.txt' })).toMatchObject({ status: 404 });
    const link = await get('archive', { partition: 'd0p1', path: 'passwd-link' });
    expect(link.status).toBe(200); // an archive of a link holds the link, not its target
    const listed = spawnSync('tar', ['-t', '-v', '-f', '-'], { input: Buffer.from(await link.arrayBuffer()) }).stdout.toString();
    expect(listed).toMatch(/^l.* passwd-link -> \/etc\/passwd\n$/);
    const noPart = await get('list', { partition: 'd0p4', path: '' });
    expect(noPart.status).toBe(409);
    expect(((await noPart.json()) as { message: string }).message).toMatch(/not mounted: Linux LVM/);
    expect((await get('list', { partition: 'd7p1', path: '' })).status).toBe(404);
  });

  it('binds the session to its user: another operator gets 403, a viewer cannot open one, an unknown token is 404', async () => {
    expect((await get('list', { partition: 'd0p1', path: '' }, operator2)).status).toBe(403);
    expect((await get('file', { partition: 'd0p1', path: 'big.bin' }, operator2)).status).toBe(403);
    expect((await h.req('DELETE', base, operator2)).status).toBe(403);
    expect((await h.req('POST', `/api/restore-points/${pointId}/browse`, viewer)).status).toBe(403);
    expect((await get('list', { partition: 'd0p1', path: '' }, viewer)).status).toBe(403);
    expect((await h.req('GET', `/api/restore-points/${pointId}/browse/${'A'.repeat(43)}/list?partition=d0p1`, admin)).status).toBe(404);
    expect((await h.req('GET', `/api/restore-points/${pointId}/browse/short/list?partition=d0p1`, admin)).status).toBe(400);
    expect((await h.req('GET', `${base}/list?partition=d0p1`, '')).status).toBe(401);
  });

  it('mounts only in the helper: the Director process (this one) sees no guest mount, the helper sees all six in its own namespace', async () => {
    expect(session).toBeTruthy();
    expect(mountsIn('self', root)).toEqual([]);
    expect(mountsIn(process.pid, root)).toEqual([]);
    expect(mountsIn(helper.pid, root).length).toBe(6);
    expect(await readlink(`/proc/${helper.pid}/ns/mnt`)).not.toBe(await readlink('/proc/self/ns/mnt'));
  });

  it('the helper never receives the repository passphrase, the appliance key or where the repository is', async () => {
    const traffic = proxy.bytes();
    expect(traffic.includes('POST /v1/sessions ')).toBe(true); // the session was opened through the recorder
    expect(traffic.includes('/list ')).toBe(true);
    const key = Buffer.alloc(32, 3); // the test Director's appliance key
    const sealed = (await d.db.repository.findFirstOrThrow({ where: { location: repoDir } })).passphraseSealed!;
    for (const secret of [PASSPHRASE, key.toString('hex'), key.toString('base64'), key.toString('base64url'), sealed, repoDir]) {
      expect(traffic.includes(secret), `the helper's socket carried ${secret}`).toBe(false);
    }
    expect(traffic.includes(key)).toBe(false);
    // Nor its environment, nor any file it (or its nbdfuse) holds open.
    const environ = await readFile(`/proc/${helper.pid}/environ`, 'utf8');
    expect(Object.keys(helper.env).sort()).toEqual(['PATH', 'VAULTLINE_FLR_RUN_DIR', 'VAULTLINE_FLR_STATE_DIR', 'VAULTLINE_LOG_LEVEL']);
    for (const secret of [PASSPHRASE, key.toString('hex'), key.toString('base64'), 'VAULTLINE_SECRET_KEY', 'DATABASE_URL', repoDir]) expect(environ).not.toContain(secret);
    const helperSide = [helper.pid, ...leftoversUnder(root).processes.filter((p) => p.includes('nbdfuse')).map((p) => Number(p.split(' ')[0]))];
    expect(helperSide.length).toBe(3); // the helper and one nbdfuse per disk
    for (const pid of helperSide) {
      for (const fd of await readdir(`/proc/${pid}/fd`)) {
        const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
        expect(target.startsWith(repoDir), `process ${pid} holds ${target}`).toBe(false);
      }
    }
  });

  it('audits each action and logs neither the session token nor the repository passphrase', async () => {
    const actions = (await d.db.auditEvent.findMany({ where: { action: { startsWith: 'restore-point.' } } })).map((a) => a.action);
    expect(actions).toContain('restore-point.browse');
    expect(actions).toContain('restore-point.file-download');
    expect(actions).toContain('restore-point.archive-download');
    const logs = d.logs.join('');
    expect(logs).not.toContain(session);
    expect(logs).not.toContain(PASSPHRASE);
    expect(logs).toContain('file restore: session open');
  });

  it('while a session is open, garbage collection cannot run (it would sweep what the session reads); after closing it can', async () => {
    const repo = await Repository.open(repoDir, { passphrase: PASSPHRASE, locks: { waitMs: 300 } });
    try {
      await expect(gc(repo)).rejects.toBeInstanceOf(LockedError);
    } finally {
      await repo.close();
    }
  });

  it('closing unmounts everything: no mount, loop device, FUSE mount or NBD process is left and the journal is resolved', async () => {
    expect(leftoversUnder(root, helper.pid).processes.length).toBeGreaterThan(0);
    expect((await readdir(path.join(helper.stateDir, 'journal'))).length).toBe(1 + 2 + 4 + 4); // the helper's: session, 2 nbdfuse, 4 loops, 4 mounts
    const res = await h.req('DELETE', base, admin);
    expect(res.status).toBe(204);
    expect(leftoversUnder(root, helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
    expect(await d.db.flrJournalEntry.count({ where: { resolvedAt: null } })).toBe(0);
    expect(await d.db.flrJournalEntry.count()).toBe(1 + 1); // the Director's: session, NBD server
    expect(await readdir(path.join(helper.stateDir, 'journal'))).toEqual([]);
    expect((await get('list', { partition: 'd0p1', path: '' })).status).toBe(404);
    // The session's repository lock went with it.
    const repo = await Repository.open(repoDir, { passphrase: PASSPHRASE, locks: { waitMs: 300 } });
    try {
      const exclusive = await repo.locks.acquire('exclusive', 'test: nobody holds the repository');
      await exclusive.release();
    } finally {
      await repo.close();
    }
  });

  it('leaves the repository byte-identical and verifying clean', async () => {
    expect(repositoryFingerprint(repoDir)).toEqual(fingerprint);
    const repo = await Repository.open(repoDir, { passphrase: PASSPHRASE });
    try {
      const report = await verify(repo, { sample: 1 });
      expect(report).toMatchObject({ ok: true, damagedChunks: [], brokenRestorePoints: [] });
      expect(report.chunksChecked).toBeGreaterThan(0);
    } finally {
      await repo.close();
    }
    expect(repositoryFingerprint(repoDir)).toEqual(fingerprint);
  });
});

describe('file-level restore sessions time out when idle and are limited in number', () => {
  let d: TestDirector;
  let cookie: string;
  let pointId: string;
  let root: string;
  let helper: RunningHelper;
  beforeAll(async () => {
    root = path.join(work, 'flr-idle');
    helper = await startFlrHelper(root);
    d = await startTestDirector({ fileRestore: { runDir: helper.runDir, idleMs: 3_000, maxSessions: 1 } });
    cookie = await signInAdmin(d);
    pointId = await registerPoint(d.db);
  });
  afterAll(async () => {
    await d?.close();
    await helper?.stop();
  });
  const post = () => d.app.fastify.inject({ method: 'POST', url: `/api/restore-points/${pointId}/browse`, headers: { cookie } });

  it('refuses a second session past the limit (429), then closes the idle one by itself, leaving nothing', async () => {
    const first = await post();
    expect(first.statusCode).toBe(201);
    expect(leftoversUnder(root, helper.pid).mounts.length).toBe(6);
    const token = first.json().session as string;
    const second = await post();
    expect(second.statusCode).toBe(429);
    expect(second.json().message).toContain('1 browse sessions are open');
    // The idle close tears down layer by layer and resolves each journal row after its undo: wait for all of it.
    const end = Date.now() + 30_000;
    const open = async () => Object.values(leftoversUnder(root, helper.pid)).some((l) => l.length > 0) || (await d.db.flrJournalEntry.count({ where: { resolvedAt: null } })) > 0;
    while (Date.now() < end && (await open())) await new Promise((r) => setTimeout(r, 250));
    expect(leftoversUnder(root, helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
    const gone = await d.app.fastify.inject({ method: 'GET', url: `/api/restore-points/${pointId}/browse/${token}/list?partition=d0p1`, headers: { cookie } });
    expect(gone.statusCode).toBe(404);
    expect(await d.db.flrJournalEntry.count({ where: { resolvedAt: null } })).toBe(0);
    const third = await post();
    expect(third.statusCode).toBe(201);
    expect((await d.app.fastify.inject({ method: 'DELETE', url: `/api/restore-points/${pointId}/browse/${third.json().session as string}`, headers: { cookie } })).statusCode).toBe(204);
    expect(leftoversUnder(root, helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
  });
});

describe('file-level restore sessions: a few per user, and an absolute lifetime', () => {
  let d: TestDirector;
  let admin: string;
  let operator: string;
  let pointId: string;
  let root: string;
  let helper: RunningHelper;
  beforeAll(async () => {
    root = path.join(work, 'flr-per-user');
    helper = await startFlrHelper(root);
    d = await startTestDirector({ fileRestore: { runDir: helper.runDir, maxPerUser: 1, maxLifetimeMs: 5_000 } });
    admin = await signInAdmin(d);
    operator = await signInAs(d, admin, 'opera', 'operator');
    pointId = await registerPoint(d.db);
  });
  afterAll(async () => {
    await d?.close();
    await helper?.stop();
  });
  const post = (cookie: string) => d.app.fastify.inject({ method: 'POST', url: `/api/restore-points/${pointId}/browse`, headers: { cookie } });

  it("a user's second session is a 429 naming the limit while another user still opens one; both close at the end of their lifetime", async () => {
    const first = await post(admin);
    expect(first.statusCode, first.body).toBe(201);
    expect(Date.parse(first.json().expiresAt) - Date.parse(first.json().createdAt)).toBe(5_000);
    const second = await post(admin);
    expect(second.statusCode).toBe(429);
    expect(second.json()).toEqual({ code: 'rate_limited', message: 'admin has 1 browse session open, the most one user may; close one (DELETE …/browse/<session>) first' });
    const other = await post(operator);
    expect(other.statusCode, other.body).toBe(201);
    const end = Date.now() + 60_000;
    const open = async () => Object.values(leftoversUnder(root, helper.pid)).some((l) => l.length > 0) || (await d.db.flrJournalEntry.count({ where: { resolvedAt: null } })) > 0;
    while (Date.now() < end && (await open())) await new Promise((r) => setTimeout(r, 250));
    expect(leftoversUnder(root, helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
    const gone = await d.app.fastify.inject({ method: 'GET', url: `/api/restore-points/${pointId}/browse/${first.json().session as string}`, headers: { cookie: admin } });
    expect(gone.statusCode).toBe(404);
    expect((await post(admin)).statusCode).toBe(201);
  }, 120_000);
});

describe('a Director without any capability browses through the helper; killed with SIGKILL while holding a session, the next start sweeps everything; without a helper that may mount it answers 503', () => {
  let database: TestDatabase;
  let db: Db;
  let dataDir: string;
  let root: string;
  let runDir: string;
  let pointId: string;
  let helper: RunningHelper | undefined;
  const children: ChildProcess[] = [];
  /** A Director with no capability at all (root without any, as for an unprivileged user). */
  const NO_CAPS = ['setpriv', '--bounding-set', '-all', '--inh-caps', '-all', '--'];

  beforeAll(async () => {
    database = await createTestDatabase(PG_SERVER);
    await applyMigrations(database.url, MIGRATIONS_DIR);
    db = createDb(database.url);
    pointId = await registerPoint(db);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-flr-director-'));
    root = path.join(work, 'flr-killed');
    runDir = path.join(root, 'run');
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (root && helper && leftoversUnder(root, helper.pid).mounts.length > 0) {
      // A failed assertion above left a session behind: a Director's start has the helper sweep it.
      const sweeper = await startChild();
      sweeper.child.kill('SIGTERM');
      await new Promise((r) => sweeper.child.once('exit', r));
    }
    await helper?.stop();
    await db?.$disconnect();
    await database?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function startChild(prefix: string[] = []): Promise<{ child: ChildProcess; port: number; adminPassword: string | null; fingerprint: string }> {
    const entry = path.join(import.meta.dirname, 'fixtures', 'flr-director.ts');
    const argv = [...prefix, process.execPath, '--import', 'tsx', entry];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, FLR_TEST_DATABASE_URL: database.url, FLR_TEST_DATA_DIR: dataDir, FLR_TEST_RUN_DIR: runDir, FLR_TEST_NAMESPACE: database.name },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (c) => reject(new Error(`the Director exited (${c}) before listening: ${stderr}`)));
    });
    const info = JSON.parse(line) as { port: number; adminPassword: string | null; fingerprint: string };
    return { child, ...info };
  }

  const stopChild = async (child: ChildProcess) => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };

  const login = async (h: Http, password: string) => {
    const r = await h.fetch(`${h.base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
    const c = r.headers.getSetCookie().find((x) => x.startsWith(`${SESSION_COOKIE}=`))!.split(';')[0]!;
    return c;
  };

  const browse = async (h: Http, cookie: string) => {
    const res = await h.req('POST', `/api/restore-points/${pointId}/browse`, cookie);
    return { status: res.status, body: (await res.json()) as { message?: string; session?: string } };
  };

  it('answers 503 naming the helper when it is not running, and naming CAP_SYS_ADMIN when the helper may not mount; never a stack', async () => {
    const { child, port, adminPassword, fingerprint: tlsFingerprint } = await startChild(NO_CAPS);
    const h = http(port, tlsFingerprint);
    const cookie = await login(h, adminPassword!);
    const change = await h.fetch(`${h.base}/api/auth/change-password`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ currentPassword: adminPassword, newPassword: 'flr-admin-password-2' }) });
    expect(change.status).toBe(200);
    const down = await browse(h, cookie);
    expect(down.status).toBe(503);
    expect(down.body.message).toBe(`file-level restore is not available: its helper (vaultline-flr) is not running (no ${path.join(runDir, 'token')}); start it (systemctl start vaultline-flr, or the compose service flr)`);

    const weak = await startFlrHelper(root, { prefix: ['setpriv', '--bounding-set', '-sys_admin', '--inh-caps', '-sys_admin', '--'] });
    try {
      // Only the token of this start of the helper is accepted.
      const tokenFile = path.join(runDir, 'token');
      const token = await readFile(tokenFile, 'utf8');
      await writeFile(tokenFile, `${'x'.repeat(43)}\n`);
      const wrong = await browse(h, cookie);
      expect(wrong.status).toBe(503);
      expect(wrong.body.message).toContain("the helper (vaultline-flr) refused this Director's token");
      await writeFile(tokenFile, token);
      const denied = await browse(h, cookie);
      expect(denied.status).toBe(503);
      expect(denied.body.message).toMatch(/^file-level restore is not available: the helper \(vaultline-flr\) cannot mount: mounting needs root or CAP_SYS_ADMIN/);
      expect(denied.body.message).not.toMatch(/\n\s+at /);
    } finally {
      await weak.stop();
    }
    const gone = await browse(h, cookie); // a helper that stopped is as good as none
    expect(gone.status).toBe(503);
    expect(gone.body.message).toContain('is not running');
    expect(leftoversUnder(root)).toEqual({ mounts: [], loops: [], processes: [] });
    expect(await db.flrJournalEntry.count({ where: { resolvedAt: null } })).toBe(0);
    await stopChild(child);
  });

  it('a Director with no capability browses; killed with a session open, the next Director has the helper remove everything at start', async () => {
    helper = await startFlrHelper(root);
    const a = await startChild(NO_CAPS);
    expect((await readFile(`/proc/${a.child.pid}/status`, 'utf8')).match(/^CapEff:\s*(\w+)$/m)![1]).toBe('0000000000000000');
    const h = http(a.port, a.fingerprint);
    const cookie = await login(h, 'flr-admin-password-2');
    const res = await browse(h, cookie);
    expect(res.status).toBe(201);
    const list = await h.req('GET', `/api/restore-points/${pointId}/browse/${res.body.session}/list?${q({ partition: 'd1', path: '' })}`, cookie);
    expect(((await list.json()) as { entries: Array<{ name: string }> }).entries.map((e) => e.name)).toEqual(['hello.txt']);
    const before = leftoversUnder(root, helper.pid);
    expect(before.mounts.length).toBe(6);
    expect(before.loops.length).toBe(4);
    expect(mountsIn(a.child.pid!, root)).toEqual([]);
    a.child.kill('SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    const after = leftoversUnder(root, helper.pid);
    expect(after.mounts.length).toBe(6); // what a killed Director leaves: every mount, in the helper
    expect(await db.flrJournalEntry.count({ where: { resolvedAt: null } })).toBe(2); // its session directory and NBD server

    const b = await startChild(NO_CAPS); // its start sweeps (and has the helper sweep) before it listens
    expect(leftoversUnder(root, helper.pid)).toEqual({ mounts: [], loops: [], processes: [] });
    expect(await db.flrJournalEntry.count({ where: { resolvedAt: null } })).toBe(0);
    expect(await readdir(path.join(helper.stateDir, 'journal'))).toEqual([]);
    await stopChild(b.child);
    expect(repositoryFingerprint(repoDir)).toEqual(fingerprint);
  }, 180_000);
});
