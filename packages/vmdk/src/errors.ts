/**
 * Typed errors of @vaultline/vmdk.
 *
 * Every failure caused by the *content* of an image (bad magic, truncation,
 * tables pointing outside the file, undecompressable grains, malformed
 * descriptor text) is a `VmdkError` with a stable `code`, so callers can tell
 * "this file is broken" from I/O failures (which stay Node `SystemError`s).
 * We never return made-up data for a damaged image: reads either succeed with
 * the bytes the format describes or throw one of these.
 */

export type VmdkErrorCode =
  /** Descriptor text cannot be parsed (syntax, missing fields, bad numbers). */
  | 'DESCRIPTOR'
  /** Magic number does not match any known format. */
  | 'BAD_MAGIC'
  /** The file ends before a structure the format says is there. */
  | 'TRUNCATED'
  /** Structures are inconsistent (tables outside file, bad sizes, bad markers, inflate failure). */
  | 'CORRUPT'
  /** Valid but not supported here (delta disks, seSparse, COWD, other compression). */
  | 'UNSUPPORTED'
  /** A read or argument outside the disk (offset + length > capacity, negative values). */
  | 'RANGE'
  /** A snapshot chain that does not hold together: parent missing, parentCID != parent's CID, mixed delta formats. */
  | 'CHAIN';

export class VmdkError extends Error {
  override readonly name: string = 'VmdkError';
  readonly code: VmdkErrorCode;
  /** File the problem was found in, when known. */
  readonly path: string | undefined;

  constructor(code: VmdkErrorCode, message: string, options?: { path?: string; cause?: unknown }) {
    super(options?.path ? `${message} (${options.path})` : message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.path = options?.path;
  }
}

export class VmdkDescriptorError extends VmdkError {
  override readonly name = 'VmdkDescriptorError';
  /** 1-based line number in the descriptor text, when the error is tied to a line. */
  readonly line: number | undefined;
  constructor(message: string, options?: { line?: number; path?: string }) {
    super('DESCRIPTOR', options?.line === undefined ? message : `line ${options.line}: ${message}`, options);
    this.line = options?.line;
  }
}

export class VmdkTruncatedError extends VmdkError {
  override readonly name = 'VmdkTruncatedError';
  constructor(message: string, options?: { path?: string; cause?: unknown }) {
    super('TRUNCATED', message, options);
  }
}

export class VmdkCorruptError extends VmdkError {
  override readonly name = 'VmdkCorruptError';
  constructor(message: string, options?: { path?: string; cause?: unknown }) {
    super('CORRUPT', message, options);
  }
}

export class VmdkBadMagicError extends VmdkError {
  override readonly name = 'VmdkBadMagicError';
  constructor(message: string, options?: { path?: string }) {
    super('BAD_MAGIC', message, options);
  }
}

export class VmdkUnsupportedError extends VmdkError {
  override readonly name = 'VmdkUnsupportedError';
  constructor(message: string, options?: { path?: string }) {
    super('UNSUPPORTED', message, options);
  }
}

export class VmdkRangeError extends VmdkError {
  override readonly name = 'VmdkRangeError';
  constructor(message: string) {
    super('RANGE', message);
  }
}

/**
 * Checks a disk read of `length` bytes at `offset` against the disk's `capacity` (and `into`, when given) and
 * returns the buffer the read fills: `into`'s first `length` bytes, or a new one.
 */
export function readTarget(offset: number, length: number, capacity: number, into?: Buffer): Buffer {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new VmdkRangeError(`bad read range offset=${offset} length=${length}`);
  }
  if (offset + length > capacity) throw new VmdkRangeError(`read of ${length} bytes at ${offset} goes past the end of the disk (${capacity} bytes)`);
  if (into && into.length < length) throw new VmdkRangeError(`buffer of ${into.length} bytes cannot hold ${length}`);
  return into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
}

/** A broken snapshot chain; names the link (`path`) and, when known, its parent. */
export class VmdkChainError extends VmdkError {
  override readonly name = 'VmdkChainError';
  /** The parent file, when the problem is between a link and its parent. */
  readonly parent: string | undefined;
  constructor(message: string, options: { child: string; parent?: string }) {
    super('CHAIN', options.parent === undefined ? message : `${message}; parent ${options.parent}`, { path: options.child });
    this.parent = options.parent;
  }
}

/**
 * A VM description that cannot be written as OVF (missing or malformed hardware
 * fields, a disk on a controller OVF cannot describe, a disk without data).
 * About the input, not about an image file, so not a VmdkError.
 */
export class OvfError extends Error {
  override readonly name = 'OvfError';
}
