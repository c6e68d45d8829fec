/**
 * Storage backend contract. The repository format is defined in terms of
 * these operations only, so every backend (local FS, SFTP, ...) holds the same
 * format. All paths are relative, '/'-separated, and never contain '..'.
 *
 * Durability contract (the crash-safety of the repository rests on it):
 * - `writeFileAtomic` and `FileWriter.commit` make the data durable BEFORE the
 *   name becomes visible (write tmp, fsync file, rename, fsync directory where
 *   the transport allows it). A crash leaves either the old state or the new
 *   file, plus at most a `*.tmp-*` leftover that GC removes.
 * - `createExclusive` fails (returns false) if the name already exists.
 * Errors: a missing file is `NotFoundError`; no space is `RepositoryFullError`.
 * Every backend must pass `test/backend-conformance.ts`.
 */
export interface FileStat {
  size: number;
  mtimeMs: number;
}

export interface FileWriter {
  /** Append `pad` zero bytes (default none), then `data`. The backend does not keep a reference to `data` after the promise resolves. */
  write(data: Uint8Array, pad?: number): Promise<void>;
  /** Bytes appended so far. */
  readonly size: number;
  /** Flush, fsync, rename into place, fsync the directory. */
  commit(): Promise<void>;
  /** Discard the temporary file (idempotent, never throws). */
  abort(): Promise<void>;
}

/**
 * What a backend on this machine's filesystem can do besides the Backend calls: synchronous and
 * O_DIRECT reads of pack ranges, and paths for its own direct readers. Other backends have none.
 */
export interface LocalFiles {
  absolute(path: string): string;
  readRangeSync(path: string, offset: number, length: number, into?: Buffer): Buffer;
  /** O_DIRECT read of a range into `into` (buffered when O_DIRECT is not possible). */
  readRangeDirect(path: string, offset: number, length: number, into: Buffer): Buffer;
  /** Closes the file descriptors it keeps open. */
  dropFds(): void;
}

/**
 * Storage that itself refuses to delete or overwrite an object until a date (S3 Object Lock in
 * compliance mode): what the repository locks cannot be removed early by anyone, this process and
 * whoever holds the storage's keys included.
 */
export interface Retention {
  /** Make `path` undeletable until `until`, or keep it so longer if it already is (retention only grows). */
  lockUntil(path: string, until: Date): Promise<void>;
  /** Until when `path` cannot be deleted; null when it can be now. */
  lockedUntil(path: string): Promise<Date | null>;
}

export interface Backend {
  readonly kind: string;
  /** Present when the repository is a folder on this machine (see LocalFiles). */
  readonly local?: LocalFiles;
  /** Present when the storage can lock objects against deletion (see Retention). */
  readonly retention?: Retention;
  /**
   * Why this storage cannot make restore points immutable, when it is storage that should (an S3 bucket
   * without Object Lock): a locked restore point is then refused before anything is written.
   */
  readonly cannotLock?: string;
  /** A description safe to log (no secrets). */
  readonly location: string;
  readFile(path: string): Promise<Buffer>;
  /** Read `length` bytes at `offset`; short reads (past EOF) throw CorruptDataError. `into` is reused when given. */
  readRange(path: string, offset: number, length: number, into?: Buffer): Promise<Buffer>;
  writeFileAtomic(path: string, data: Uint8Array): Promise<void>;
  /** Create a file only if it does not exist (durably). Returns false if it exists. */
  createExclusive(path: string, data: Uint8Array): Promise<boolean>;
  openWriter(path: string): Promise<FileWriter>;
  /** Names (not paths) in a directory; [] when the directory does not exist. */
  list(dir: string): Promise<string[]>;
  stat(path: string): Promise<FileStat | null>;
  /** Remove a file; missing is not an error. */
  remove(path: string): Promise<void>;
  /** Remove an empty directory; missing or non-empty is not an error. */
  removeDir(path: string): Promise<void>;
  mkdirp(dir: string): Promise<void>;
  close(): Promise<void>;
}

export function tmpName(path: string): string {
  return `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

export function isTmpName(name: string): boolean {
  return name.includes('.tmp-');
}

export function dirOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}
