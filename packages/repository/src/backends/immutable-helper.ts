/**
 * The root helper of hardened local repositories: it makes repository files immutable with the
 * filesystem's immutable attribute (`chattr +i`: no one, root included, can unlink, rename, overwrite or
 * truncate such a file until the attribute is cleared, and clearing it needs CAP_LINUX_IMMUTABLE) and is the
 * only code that ever clears it again.
 *
 * Lock records: `<repository>/.immutable/<path>` holds the date (ISO 8601) until which `<path>` is locked.
 * A record is written before the attribute is set (a crash in between leaves a record that says locked,
 * never an immutable file nobody knows the date of), and it only ever grows. The `.immutable` tree is
 * created by root, owned by root and writable by nobody else; a tree that is not (someone renamed the real
 * one away and made their own) is not trusted: nothing is unlocked from it, and locking is refused.
 *
 * Unlocking: there is no call that unlocks. `release(path)` clears the attribute only when the record says
 * the date has passed, by this process's own clock (never a clock or date a caller passes), just before
 * the file is removed. So whoever can call the helper (the repository code in the Transporter, GC,
 * retention, a Director request deleting a restore point) can at most lock longer; no request can unlock
 * early.
 *
 * Trust model:
 * - The Transporter runs as root: it writes restore points, locks them through this helper (via
 *   LocalBackend's `retention`), and its retention and GC release expired locks.
 * - The Director runs unprivileged in the OVA and the container: it cannot set or clear the attribute at
 *   all (no CAP_LINUX_IMMUTABLE) and cannot write the records (root's, in root's directories). It reads
 *   records to say until when a file is locked; its deletes of locked files fail in the kernel (EPERM),
 *   reported as ImmutableError. An unprivileged helper instance reports `cannotLock` and never locks.
 * - Whoever owns the repository folder or the Director's account ("the storage credentials" of a local
 *   repository) can neither delete, rename nor rewrite a locked file, nor forge a record.
 * - What remains trusted: root on the appliance. A root process (a compromised Transporter, an operator's
 *   shell) can clear the attribute with chattr; this mode protects against everything short of that.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ImmutableError, RepositoryError } from '../errors.ts';
import { tmpName } from './backend.ts';

const run = promisify(execFile);

/** The lock records' folder in the repository (root's own). */
export const RECORDS_DIR = '.immutable';

type Flag = '+i' | '-i';
interface Waiting {
  abs: string;
  done: (err?: unknown) => void;
}

/** chattr processes started by this process (tests count them). */
export let chattrRuns = 0;
/** Files per chattr process at most. */
const CHATTR_BATCH = 128;

async function chattrNow(flag: Flag, files: string[]): Promise<void> {
  chattrRuns++;
  // Paths are absolute, so chattr never reads one as a mode or an option.
  await run('chattr', [flag, ...files], { timeout: 30_000 });
}

/**
 * chattr for many files at once: while a chattr process runs, the files asked for meanwhile wait and go
 * together in the next one (a point locks its packs several at a time, so most of them share a process).
 * When a batch fails, each of its files is tried alone, so an error belongs to the file it names.
 */
function batcher(flag: Flag): (abs: string) => Promise<void> {
  const waiting: Waiting[] = [];
  let running = false;
  const drain = async () => {
    running = true;
    while (waiting.length) {
      const batch = waiting.splice(0, CHATTR_BATCH);
      try {
        await chattrNow(flag, batch.map((w) => w.abs));
        for (const w of batch) w.done();
      } catch (err) {
        if (batch.length === 1) batch[0]!.done(err);
        else await Promise.all(batch.map((w) => chattrNow(flag, [w.abs]).then(() => w.done(), (e: unknown) => w.done(e))));
      }
    }
    running = false;
  };
  return (abs) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ abs, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (!running) void drain();
    });
}

const setFlag: Record<Flag, (abs: string) => Promise<void>> = { '+i': batcher('+i'), '-i': batcher('-i') };
const chattr = (flag: Flag, abs: string) => setFlag[flag](abs);

const stderrOf = (err: unknown) => ((err as { stderr?: string }).stderr || (err as Error).message).trim();

/** statfs magic numbers of the filesystems that keep the immutable attribute (ext2/3/4, XFS, Btrfs). */
const IMMUTABLE_CAPABLE: Record<number, string> = { 0xef53: 'ext4', 0x58465342: 'XFS', 0x9123683e: 'Btrfs' };

/**
 * Whether the repository at `root` can be hardened, asked by whoever creates it: null when it can, else
 * why not. Root tries it for real (ImmutableHelper.open); an unprivileged process (the Director in the OVA
 * and the container, which never locks anything itself) can only check that the filesystem is one that
 * keeps the attribute: the Transporter, as root, locks and says so at the first locked backup otherwise.
 */
export async function hardeningProblem(root: string): Promise<string | null> {
  if (process.getuid?.() === 0) return (await ImmutableHelper.open(root)).cannotLock ?? null;
  let type: number;
  try {
    // The repository's folder may not exist yet: its nearest existing parent is on the same filesystem.
    let at = path.resolve(root);
    while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
    type = (await fsp.statfs(at)).type;
  } catch (err) {
    return `cannot find out the filesystem of ${root}: ${(err as Error).message}`;
  }
  return IMMUTABLE_CAPABLE[type] ? null : `the filesystem of ${root} (type 0x${type.toString(16)}) does not keep the immutable attribute; put the hardened repository on ext4, XFS or Btrfs`;
}

export class ImmutableHelper {
  /** Why this process cannot lock files here; undefined when it can. */
  readonly cannotLock: string | undefined;
  private readonly records: string;

  private constructor(
    readonly root: string,
    cannotLock: string | undefined,
  ) {
    this.cannotLock = cannotLock;
    this.records = path.join(root, RECORDS_DIR);
  }

  /**
   * The helper for the repository at `root`, having found out whether this process can lock there: it must
   * be root, the records' folder must be root's, and the filesystem must take the immutable attribute
   * (tried on a probe file, set and cleared again).
   */
  static async open(root: string): Promise<ImmutableHelper> {
    const uid = process.getuid?.() ?? -1;
    if (uid !== 0) {
      return new ImmutableHelper(
        root,
        `this process runs as uid ${uid}, and only root (CAP_LINUX_IMMUTABLE) can make files immutable; restore points of the hardened repository at ${root} are locked by the Transporter, which runs as root`,
      );
    }
    const helper = new ImmutableHelper(root, undefined);
    try {
      await helper.ownRecordsDir(true);
    } catch (err) {
      return new ImmutableHelper(root, (err as Error).message);
    }
    const probe = path.join(helper.records, tmpName('probe'));
    try {
      await fsp.writeFile(probe, '');
      try {
        await chattr('+i', probe);
      } catch (err) {
        return new ImmutableHelper(root, `the filesystem of ${root} does not take the immutable attribute (chattr +i: ${stderrOf(err)}); put the hardened repository on ext4, XFS or Btrfs`);
      }
      await chattr('-i', probe);
    } finally {
      await fsp.rm(probe, { force: true }).catch(() => undefined);
    }
    return helper;
  }

  /**
   * The records' folder, made when `create` (a folder someone renamed away takes its records with it: the files
   * they name stay immutable, for an operator to clear); refused unless it is root's and writable by root only.
   */
  private async ownRecordsDir(create: boolean): Promise<void> {
    if (create) {
      await fsp.mkdir(this.root, { recursive: true });
      try {
        await fsp.mkdir(this.records, { mode: 0o755 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    const s = await fsp.lstat(this.records);
    if (!s.isDirectory() || s.uid !== 0 || (s.mode & 0o022) !== 0) {
      throw new RepositoryError('BACKEND', `${this.records} is not a folder owned and writable by root only, so its lock records cannot be trusted; check who replaced it`);
    }
  }

  private recordPath(rel: string): string {
    return path.join(this.records, rel);
  }

  /**
   * `rel` on disk, refused when its folder leads (through a symbolic link someone planted in the repository's
   * folders) outside the repository: root must not set or clear the attribute of anything else.
   */
  private async inside(rel: string): Promise<string> {
    const abs = path.join(this.root, rel);
    const [realRoot, realDir] = await Promise.all([fsp.realpath(this.root), fsp.realpath(path.dirname(abs))]);
    if (realDir !== realRoot && !realDir.startsWith(`${realRoot}/`)) {
      throw new RepositoryError('BACKEND', `${rel} leads to ${realDir}, outside the repository ${realRoot}; refusing to change its immutable attribute`);
    }
    return path.join(realDir, path.basename(abs));
  }

  /** The recorded lock date of `rel`, expired or not; null when it was never locked (or its record was released). */
  async recorded(rel: string): Promise<Date | null> {
    let text: string;
    try {
      const s = await fsp.lstat(this.records);
      // A records folder that is not root's says nothing (and nothing is unlocked from it).
      if (!s.isDirectory() || s.uid !== 0 || (s.mode & 0o022) !== 0) return null;
      const rec = this.recordPath(rel);
      const st = await fsp.lstat(rec);
      if (!st.isFile() || st.uid !== 0) return null;
      text = await fsp.readFile(rec, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw err;
    }
    const t = Date.parse(text.trim());
    return Number.isFinite(t) ? new Date(t) : null;
  }

  /** Until when `rel` is locked, by this process's clock; null when it is not (any more). */
  async lockedUntil(rel: string): Promise<Date | null> {
    const until = await this.recorded(rel);
    return until && until.getTime() > Date.now() ? until : null;
  }

  /** Makes `rel` immutable until `until`, or longer if it is already locked longer: a lock only grows. */
  async lockUntil(rel: string, until: Date): Promise<void> {
    if (this.cannotLock) throw new ImmutableError(this.cannotLock);
    const abs = await this.inside(rel);
    await this.ownRecordsDir(true);
    const current = await this.recorded(rel);
    if (!current || current.getTime() < until.getTime()) {
      const rec = this.recordPath(rel);
      const tmp = tmpName(rec);
      // A release may remove a folder of records it emptied just as this one is made: then again.
      for (let attempt = 1; ; attempt++) {
        try {
          await fsp.mkdir(path.dirname(rec), { recursive: true, mode: 0o755 });
          const h = await fsp.open(tmp, 'w', 0o644);
          try {
            await h.writeFile(until.toISOString());
            await h.sync();
          } finally {
            await h.close();
          }
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 3) throw err;
        }
      }
      await fsp.rename(tmp, rec);
      const dir = await fsp.open(path.dirname(rec), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
    try {
      await chattr('+i', abs);
    } catch (err) {
      throw new RepositoryError('BACKEND', `making ${rel} immutable failed: ${stderrOf(err)}`, { cause: err });
    }
  }

  /**
   * Before `rel` is removed: refuses while its lock lasts (ImmutableError naming the date), and clears the
   * attribute of a file whose lock has ended. Unprivileged, an ended lock stays set (removing then fails).
   */
  async release(rel: string): Promise<void> {
    const until = await this.recorded(rel);
    if (!until) return;
    if (until.getTime() > Date.now()) throw new ImmutableError(`${rel} is immutable until ${until.toISOString()}`);
    if (this.cannotLock) return;
    let abs: string;
    try {
      abs = await this.inside(rel);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // its folder is gone, and the file with it
      throw err;
    }
    try {
      await chattr('-i', abs);
    } catch (err) {
      if (fs.existsSync(abs)) throw new RepositoryError('BACKEND', `clearing the immutable attribute of ${rel} failed: ${stderrOf(err)}`, { cause: err });
    }
    const rec = this.recordPath(rel);
    await fsp.rm(rec, { force: true });
    // Folders of records left empty (a deleted restore point's) go too; a folder still in use stays.
    for (let dir = path.dirname(rec); dir.startsWith(`${this.records}/`); dir = path.dirname(dir)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        break;
      }
    }
  }
}
