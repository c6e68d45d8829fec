/**
 * Hardened local repositories: files made immutable (chattr +i) by the root helper, on this machine's real
 * filesystem. A locked restore point cannot be deleted through the backend, the repository (delete, GC) or
 * with rm/unlink as root or as the folder's owner until its lock ends; a lock only grows, survives a new
 * process, and nothing unlocks early. Needs root (setting the attribute needs CAP_LINUX_IMMUTABLE).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteRestorePoint, gc, ImmutableError, LocalBackend, openDiskReader, openRestorePointWriter, Repository, verify, type Manifest } from '../src/index.ts';
import { chattrRuns } from '../src/backends/immutable-helper.ts';
import { lockAll } from '../src/immutability.ts';
import { backupImage, seededBytes, sha256, storedFilesOf, tmpDir } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const pkgDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

const dirs: string[] = [];
afterAll(() => {
  // Whatever a failed test left locked would make its folder undeletable.
  for (const d of dirs) {
    spawnSync('chattr', ['-R', '-i', d]);
    fs.rmSync(d, { recursive: true, force: true });
  }
});
const freshDir = () => {
  const d = tmpDir('vl-hardened-');
  dirs.push(d);
  return d;
};
const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
const errnoOf = (fn: () => void) => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
};

const backup = (repo: Repository, img: Buffer, lockedUntil: Date | null, parent?: Manifest, changes?: Array<[number, number]>) => backupImage(repo, 'vm-h', img, lockedUntil, parent, changes);
const filesOf = storedFilesOf;

describe.runIf(isRoot)('hardened local repository (chattr +i by the root helper)', () => {
  it('locks a file until a date: the backend, unlink and rm as root all fail until then; a lock only grows; after it ends the file goes', async () => {
    const root = freshDir();
    const b = await LocalBackend.open(root, { hardened: true });
    expect(b.cannotLock).toBeUndefined();
    expect(b.retention).toBeDefined();
    await b.writeFileAtomic('packs/aa/p1', Buffer.from('pack'));
    const until = new Date(Date.now() + 3000);
    await b.retention!.lockUntil('packs/aa/p1', until);
    expect((await b.retention!.lockedUntil('packs/aa/p1'))?.getTime()).toBe(until.getTime());
    expect(execFileSync('lsattr', ['-d', b.absolute('packs/aa/p1')]).toString()).toMatch(/^\S*i\S* /);
    // Shorter: kept as it is.
    await b.retention!.lockUntil('packs/aa/p1', new Date(Date.now() + 500));
    expect((await b.retention!.lockedUntil('packs/aa/p1'))?.getTime()).toBe(until.getTime());

    const err = await b.remove('packs/aa/p1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImmutableError);
    expect((err as Error).message).toBe(`packs/aa/p1 is immutable until ${until.toISOString()}`);
    await expect(b.writeFileAtomic('packs/aa/p1', Buffer.from('overwritten'))).rejects.toBeInstanceOf(ImmutableError);
    const abs = b.absolute('packs/aa/p1');
    expect(errnoOf(() => fs.unlinkSync(abs))).toBe('EPERM');
    expect(errnoOf(() => fs.writeFileSync(abs, 'x'))).toBe('EPERM');
    expect(errnoOf(() => fs.renameSync(abs, `${abs}.moved`))).toBe('EPERM');
    expect(spawnSync('rm', ['-f', abs]).status).not.toBe(0);
    // The records are root's and only grow: a record cannot be shortened through the helper either.
    expect(fs.readFileSync(path.join(root, '.immutable/packs/aa/p1'), 'utf8')).toBe(until.toISOString());
    expect(fs.readFileSync(abs, 'utf8')).toBe('pack');

    // Extending grows it.
    const later = new Date(until.getTime() + 1500);
    await b.retention!.lockUntil('packs/aa/p1', later);
    expect((await b.retention!.lockedUntil('packs/aa/p1'))?.getTime()).toBe(later.getTime());
    await sleepUntil(until.getTime() + 200);
    await expect(b.remove('packs/aa/p1')).rejects.toThrow(`is immutable until ${later.toISOString()}`);
    await sleepUntil(later.getTime() + 200);
    expect(await b.retention!.lockedUntil('packs/aa/p1')).toBeNull();
    await b.remove('packs/aa/p1');
    expect(fs.existsSync(abs)).toBe(false);
    // Its record, and the folders of records it left empty.
    expect(fs.readdirSync(path.join(root, '.immutable'))).toEqual([]);
    await b.close();
  }, 20_000);

  it('a lock survives a new process: its record is on disk, and another backend refuses the delete just the same', async () => {
    const root = freshDir();
    const first = await LocalBackend.open(root, { hardened: true });
    await first.writeFileAtomic('config', Buffer.from('cfg'));
    const until = new Date(Date.now() + 60_000);
    await first.retention!.lockUntil('config', until);
    await first.close();
    // A separate process, as a restarted Transporter would be.
    const script = `import { LocalBackend } from './src/index.ts';
const b = await LocalBackend.open(${JSON.stringify(root)}, { hardened: true });
const until = await b.retention.lockedUntil('config');
const err = await b.remove('config').then(() => 'removed', (e) => e.name + ': ' + e.message);
console.log(JSON.stringify({ until, err }));`;
    const out = execFileSync(path.join(pkgDir, '../../node_modules/.bin/tsx'), ['--input-type=module', '-e', script], { cwd: pkgDir, encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ until: until.toISOString(), err: `ImmutableError: config is immutable until ${until.toISOString()}` });
    expect(fs.readFileSync(path.join(root, 'config'), 'utf8')).toBe('cfg');
  }, 30_000);

  it('the folder owner without root (the Director, the storage credentials) cannot delete, overwrite or forge a record, nor lock, and checks only the filesystem before creating a hardened repository', async () => {
    const root = freshDir();
    const b = await LocalBackend.open(root, { hardened: true });
    await Repository.init(b, { chunkSize: 64 * 1024 });
    const repo = await Repository.open(b);
    const until = new Date(Date.now() + 60_000);
    // The repository folder and what is not locked belong to the unprivileged user.
    spawnSync('chown', ['-R', String(NOBODY), root]);
    spawnSync('chown', ['-R', '0', path.join(root, '.immutable')]);
    const m = await backup(repo, seededBytes(9, 256 * 1024), until);
    const { own, packs } = await filesOf(repo, m);
    await repo.close();
    // Its folders too (the locked files in them cannot change owner: they are immutable).
    spawnSync('find', [root, '-path', path.join(root, '.immutable'), '-prune', '-o', '-type', 'd', '-exec', 'chown', String(NOBODY), '{}', '+']);
    expect(fs.statSync(path.dirname(path.join(root, own[0]!))).uid).toBe(NOBODY);
    const script = `import * as fs from 'node:fs';
import { hardeningProblem, LocalBackend } from './src/index.ts';
const root = ${JSON.stringify(root)};
const b = await LocalBackend.open(root, { hardened: true });
const code = (fn) => { try { fn(); return 'ok'; } catch (e) { return e.code; } };
console.log(JSON.stringify({
  uid: process.getuid(),
  cannotLock: b.cannotLock,
  retention: b.retention !== undefined,
  remove: await b.remove(${JSON.stringify(own[0])}).then(() => 'removed', (e) => e.name + ': ' + e.message),
  removePack: await b.remove(${JSON.stringify(packs[0])}).then(() => 'removed', (e) => e.name),
  unlink: code(() => fs.unlinkSync(root + '/' + ${JSON.stringify(own[0])})),
  renamePack: code(() => fs.renameSync(root + '/' + ${JSON.stringify(packs[0])}, root + '/moved')),
  overwritePack: code(() => fs.writeFileSync(root + '/' + ${JSON.stringify(packs[0])}, 'encrypted by ransomware')),
  forgeRecord: code(() => fs.writeFileSync(root + '/.immutable/' + ${JSON.stringify(own[0])}, new Date(0).toISOString())),
  newRecord: code(() => fs.writeFileSync(root + '/.immutable/forged', '1970-01-01T00:00:00.000Z')),
  // What the unprivileged Director asks before creating a hardened repository: the filesystem, not the lock.
  hardenable: await hardeningProblem(root + '/not-yet/made'),
  hardenableOnTmpfs: await hardeningProblem('/dev/shm/vaultline-hardened'),
}));`;
    const res = spawnSync(path.join(pkgDir, '../../node_modules/.bin/tsx'), ['--input-type=module', '-e', script], { cwd: pkgDir, encoding: 'utf8', uid: NOBODY, gid: NOBODY, env: { ...process.env, HOME: '/tmp' } });
    expect(res.status, res.stderr).toBe(0);
    const got = JSON.parse(res.stdout.trim().split('\n').pop()!);
    expect(got).toEqual({
      uid: NOBODY,
      cannotLock: expect.stringContaining(`runs as uid ${NOBODY}, and only root (CAP_LINUX_IMMUTABLE) can make files immutable`),
      retention: false,
      remove: `ImmutableError: ${own[0]} is immutable until ${until.toISOString()}`,
      removePack: 'ImmutableError',
      unlink: 'EPERM',
      renamePack: 'EPERM',
      overwritePack: 'EPERM',
      forgeRecord: 'EACCES',
      newRecord: 'EACCES',
      hardenable: null,
      hardenableOnTmpfs: expect.stringMatching(/^the filesystem of \/dev\/shm\/vaultline-hardened \(type 0x[0-9a-f]+\) does not keep the immutable attribute; put the hardened repository on ext4, XFS or Btrfs$/),
    });
    for (const f of [...own, ...packs]) expect(fs.existsSync(path.join(root, f)), f).toBe(true);
  }, 60_000);

  it('a records folder that is not root-only is not trusted: locking is refused with the reason', async () => {
    const root = freshDir();
    fs.mkdirSync(path.join(root, '.immutable'), { mode: 0o777 });
    fs.chmodSync(path.join(root, '.immutable'), 0o777);
    const b = await LocalBackend.open(root, { hardened: true });
    expect(b.retention).toBeUndefined();
    expect(b.cannotLock).toMatch(/\.immutable is not a folder owned and writable by root only, so its lock records cannot be trusted/);
    await Repository.init(b, { chunkSize: 64 * 1024 });
    const repo = await Repository.open(b);
    const err = await openRestorePointWriter(repo, { vmId: 'vm-h', lockedUntil: new Date(Date.now() + 60_000) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImmutableError);
    expect(await b.list('packs')).toEqual([]);
    await repo.close();
  });

  it('a folder of the repository replaced by a symbolic link leading outside: nothing there is locked or unlocked', async () => {
    const root = freshDir();
    const outside = freshDir();
    fs.writeFileSync(path.join(outside, 'victim'), 'not the repository');
    const b = await LocalBackend.open(root, { hardened: true });
    fs.mkdirSync(path.join(root, 'packs'));
    fs.symlinkSync(outside, path.join(root, 'packs', 'zz'));
    await expect(b.retention!.lockUntil('packs/zz/victim', new Date(Date.now() + 60_000))).rejects.toThrow(`packs/zz/victim leads to ${fs.realpathSync(outside)}, outside the repository`);
    expect(execFileSync('lsattr', ['-d', path.join(outside, 'victim')]).toString()).not.toMatch(/^\S*i\S* /);
  });

  it('locks many files with few chattr processes (files asked for while one runs go together); a file that fails fails alone', async () => {
    const root = freshDir();
    const b = await LocalBackend.open(root, { hardened: true });
    const names = Array.from({ length: 60 }, (_, i) => `packs/${String(i % 4).padStart(2, '0')}/p${i}`);
    for (const n of names) {
      fs.mkdirSync(path.dirname(path.join(root, n)), { recursive: true });
      fs.writeFileSync(path.join(root, n), n);
    }
    const until = new Date(Date.now() + 60_000);
    const before = chattrRuns;
    await lockAll(b, names, until);
    expect(chattrRuns - before).toBeLessThan(names.length / 2);
    const flags = execFileSync('lsattr', names.map((n) => path.join(root, n))).toString().trim().split('\n');
    expect(flags).toHaveLength(names.length);
    for (const line of flags) expect(line).toMatch(/^\S*i\S* /);
    // A file gone between its record and chattr: its own lock fails, naming it; the others in its batch hold.
    fs.writeFileSync(path.join(root, 'packs/00/late'), 'x');
    const [ok, gone] = await Promise.allSettled([b.retention!.lockUntil('packs/00/late', until), (async () => {
      fs.mkdirSync(path.join(root, 'packs/09'), { recursive: true });
      return b.retention!.lockUntil('packs/09/never-written', until);
    })()]);
    expect(ok.status).toBe('fulfilled');
    expect(gone.status).toBe('rejected');
    expect(String((gone as PromiseRejectedResult).reason)).toMatch(/making packs\/09\/never-written immutable failed/);
    expect(execFileSync('lsattr', [path.join(root, 'packs/00/late')]).toString()).toMatch(/^\S*i\S* /);
  });

  it('a locked restore point: delete and GC are refused until its lock ends, then it is deleted and GC frees its packs', async () => {
    const root = freshDir();
    const b = await LocalBackend.open(root, { hardened: true });
    await Repository.init(b, { chunkSize: 64 * 1024, packTargetSize: 128 * 1024 });
    const repo = await Repository.open(b);
    const img = seededBytes(5, 2 * 1024 * 1024);
    const untilA = new Date(Date.now() + 4000);
    const a = await backup(repo, img, untilA);
    // B rewrites A's first MiB and is locked for long: the packs holding only that MiB of A are freed once A goes.
    const changed = Buffer.from(img);
    seededBytes(77, 1024 * 1024).copy(changed, 0);
    const untilB = new Date(Date.now() + 3_600_000);
    const bPoint = await backup(repo, changed, untilB, a, [[0, 1024 * 1024]]);
    const ofA = await filesOf(repo, a);
    const ofB = await filesOf(repo, bPoint);
    const onlyA = ofA.packs.filter((p) => !ofB.packs.includes(p));
    expect(onlyA.length).toBeGreaterThan(0);
    // Locked in the storage: its own files to its date, the packs and the config to the lock generation's end.
    for (const f of ofA.own) expect((await b.retention!.lockedUntil(f))?.getTime(), f).toBe(untilA.getTime());
    for (const p of [...ofA.packs, 'config']) expect((await b.retention!.lockedUntil(p))!.getTime(), p).toBeGreaterThanOrEqual(untilA.getTime());

    await expect(deleteRestorePoint(repo, { vmId: 'vm-h', id: a.id })).rejects.toBeInstanceOf(ImmutableError);
    // The repository's own check aside, the storage refuses: through the backend, and to rm as root.
    await expect(b.remove(ofA.own[0]!)).rejects.toThrow(`${ofA.own[0]!} is immutable until ${untilA.toISOString()}`);
    expect(spawnSync('rm', ['-rf', b.absolute(repo.rpDir({ vmId: 'vm-h', id: a.id }))]).status).not.toBe(0);
    expect(errnoOf(() => fs.unlinkSync(b.absolute(onlyA[0]!)))).toBe('EPERM');
    expect(errnoOf(() => fs.unlinkSync(b.absolute('config')))).toBe('EPERM');
    const report = await gc(repo, { graceMs: 0, repackThreshold: 0 });
    expect(report.deletedPacks).toBe(0);
    for (const [m, want] of [[a, img], [bPoint, changed]] as const) {
      const r = await openDiskReader(repo, { vmId: 'vm-h', id: m.id }, 'd0');
      expect(sha256(await r.read(0, r.capacity))).toBe(sha256(want));
    }

    // After A's lock (and its packs' generation) ends: deleted, and GC frees what only A needed.
    await sleepUntil(Date.parse(a.packsLockedUntil ?? a.lockedUntil!) + 500);
    await deleteRestorePoint(repo, { vmId: 'vm-h', id: a.id });
    const after = await gc(repo, { graceMs: 0, repackThreshold: 0 });
    expect(after.deletedPacks).toBe(onlyA.length);
    expect(after.lockedKept).toBeGreaterThan(0);
    for (const p of onlyA) expect(fs.existsSync(b.absolute(p)), p).toBe(false);
    for (const f of [...ofA.own, ...onlyA]) expect(fs.existsSync(path.join(root, '.immutable', f)), f).toBe(false);
    for (const p of ofB.packs) expect(await b.retention!.lockedUntil(p), p).not.toBeNull();
    const r = await openDiskReader(repo, { vmId: 'vm-h', id: bPoint.id }, 'd0');
    expect(sha256(await r.read(0, r.capacity))).toBe(sha256(changed));
    expect((await verify(repo)).ok).toBe(true);
    await repo.close();
  }, 60_000);
});
