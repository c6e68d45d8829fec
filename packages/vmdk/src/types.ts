/** Public reader interface shared by every disk image format. */

export interface ByteRange {
  offset: number;
  length: number;
}

export interface DiskImageReader {
  /** Disk size in bytes. */
  readonly capacity: number;
  /**
   * Read `length` bytes at byte `offset` (any alignment). Returns `into.subarray(0, length)`
   * when `into` is given, else a new buffer. Unallocated areas read as zeros.
   * `offset + length` beyond `capacity` is a `VmdkRangeError`.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  /**
   * Allocated byte ranges, ascending and non-overlapping. Where the format does not
   * know (raw files, flat extents) the whole range is reported as allocated.
   */
  allocatedExtents(): AsyncIterable<ByteRange>;
  close(): Promise<void>;
}

/** An extent as the composite disk sees it: a byte range of the disk backed by something. */
export interface ExtentBackend {
  /** Size in bytes. */
  readonly length: number;
  readInto(offset: number, length: number, into: Buffer, intoOffset: number): Promise<void>;
  allocated(): AsyncIterable<ByteRange>;
}
