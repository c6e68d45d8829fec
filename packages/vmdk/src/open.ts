/**
 * `openVmdk(path)`: detect the image format and return one `DiskImageReader`.
 *
 * Detection, from the first bytes of the file:
 *   "KDMV"                 hosted sparse extent with embedded descriptor (or none):
 *                          monolithicSparse, streamOptimized, or a single sparse extent
 *   "COWD"                 vmfsSparse redo log data file — open its descriptor instead
 *   0xcafebabe (u64)       seSparse delta data file — open its descriptor instead
 *   descriptor text        "# Disk DescriptorFile" or a createType= line within the
 *                          first 4 KiB of a small NUL-free text file: monolithicFlat,
 *                          vmfs, twoGbMaxExtent{Flat,Sparse}, or any mix of
 *                          FLAT/VMFS/SPARSE/ZERO extents, concatenated in order
 *   anything else          a raw disk image (capacity = file size) — except a file named
 *                          *.vmdk (not *-flat.vmdk / *-fNNN.vmdk): that is a bad-magic error
 *
 * A vmfsSparse / seSparse descriptor with a parent (parentCID != ffffffff) opens
 * the whole snapshot chain down to the base (chain.ts): the image reads the disk
 * as that snapshot sees it. Other delta disks (hosted sparse children) are refused:
 * their unallocated grains belong to the parent, and zeros would be wrong data.
 */
import { posix } from 'node:path';
import { ChainReader, DELTA_CREATE_TYPES, openChainLinks } from './chain.ts';
import type { ChainLinkInfo } from './chain.ts';
import { readTarget, VmdkBadMagicError, VmdkCorruptError, VmdkRangeError, VmdkTruncatedError, VmdkUnsupportedError } from './errors.ts';
import { descriptorText, NO_PARENT_CID, parseDescriptor } from './descriptor.ts';
import type { VmdkDescriptor } from './descriptor.ts';
import { ImageFile, localFiles } from './image-file.ts';
import type { FileOpener } from './image-file.ts';
import { SparseExtent } from './sparse-extent.ts';
import { COWD_MAGIC, SPARSE_MAGIC } from './sparse-header.ts';
import type { ByteRange, DiskImageReader, ExtentBackend } from './types.ts';

const SECTOR = 512;
const MAX_DESCRIPTOR_FILE = 1024 * 1024;

export type ImageFormat =
  | 'raw'
  | 'monolithicSparse'
  | 'streamOptimized'
  | 'monolithicFlat'
  | 'vmfs'
  | 'twoGbMaxExtentSparse'
  | 'twoGbMaxExtentFlat'
  | (string & {});

export interface VmdkImage extends DiskImageReader {
  /** createType of the descriptor, or 'raw', or the detected sparse flavour. */
  readonly format: ImageFormat;
  /** The descriptor (separate file or embedded), when there is one. */
  readonly descriptor: VmdkDescriptor | undefined;
  /** Snapshot delta links read on top of the base, newest first (absent for a base disk). */
  readonly links?: readonly ChainLinkInfo[];
}

export interface OpenOptions {
  /** Skip detection: 'raw' treats any file as a raw image, 'vmdk' refuses raw files. */
  format?: 'auto' | 'raw' | 'vmdk';
  /**
   * Where files come from (default: local files). Extent files are opened at the
   * descriptor's directory joined with the extent name (POSIX rules, so datastore
   * paths like "[ds1] vm/vm.vmdk" work too).
   */
  files?: FileOpener;
}

class FlatBackend implements ExtentBackend {
  constructor(
    private readonly file: ImageFile,
    private readonly start: number,
    readonly length: number,
  ) {}
  async readInto(offset: number, length: number, into: Buffer, intoOffset: number): Promise<void> {
    await this.file.readExact(this.start + offset, length, 'flat extent', into, intoOffset);
  }
  async *allocated(): AsyncGenerator<ByteRange> {
    if (this.length > 0) yield { offset: 0, length: this.length };
  }
}

class ZeroBackend implements ExtentBackend {
  constructor(readonly length: number) {}
  async readInto(_offset: number, length: number, into: Buffer, intoOffset: number): Promise<void> {
    into.fill(0, intoOffset, intoOffset + length);
  }
  async *allocated(): AsyncGenerator<ByteRange> {}
}

/** A sparse extent longer than the descriptor says is cut to the descriptor's size. */
class ClippedBackend implements ExtentBackend {
  constructor(
    private readonly inner: ExtentBackend,
    readonly length: number,
  ) {}
  readInto(offset: number, length: number, into: Buffer, intoOffset: number): Promise<void> {
    return this.inner.readInto(offset, length, into, intoOffset);
  }
  async *allocated(): AsyncGenerator<ByteRange> {
    for await (const r of this.inner.allocated()) {
      if (r.offset >= this.length) return;
      yield { offset: r.offset, length: Math.min(r.length, this.length - r.offset) };
    }
  }
}

class CompositeImage implements VmdkImage {
  readonly capacity: number;
  private readonly starts: number[] = [];

  constructor(
    readonly format: ImageFormat,
    readonly descriptor: VmdkDescriptor | undefined,
    private readonly extents: ExtentBackend[],
    private readonly files: ImageFile[],
  ) {
    let at = 0;
    for (const e of extents) {
      this.starts.push(at);
      at += e.length;
    }
    this.capacity = at;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const out = readTarget(offset, length, this.capacity, into);
    let off = offset;
    let at = 0;
    let i = this.extentIndex(offset);
    while (at < length) {
      const e = this.extents[i];
      const start = this.starts[i];
      if (e === undefined || start === undefined) throw new VmdkRangeError(`no extent at offset ${off}`);
      const inExtent = off - start;
      const n = Math.min(length - at, e.length - inExtent);
      if (n > 0) await e.readInto(inExtent, n, out, at);
      off += n;
      at += n;
      i++;
    }
    return out;
  }

  private extentIndex(offset: number): number {
    let lo = 0;
    let hi = this.extents.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  async *allocatedExtents(): AsyncGenerator<ByteRange> {
    let pending: ByteRange | undefined;
    for (let i = 0; i < this.extents.length; i++) {
      const e = this.extents[i];
      const start = this.starts[i] ?? 0;
      if (!e) continue;
      for await (const r of e.allocated()) {
        const abs = { offset: start + r.offset, length: r.length };
        if (pending && pending.offset + pending.length === abs.offset) {
          pending.length += abs.length;
        } else {
          if (pending) yield pending;
          pending = abs;
        }
      }
    }
    if (pending) yield pending;
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled(this.files.map((f) => f.close()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed && failed.status === 'rejected') throw failed.reason;
  }
}

/** Why `head` (the first bytes of a file of `size` bytes) is not a descriptor file, or null when it is one. */
function descriptorProblem(head: Buffer, size: number): string | null {
  if (size > MAX_DESCRIPTOR_FILE) return `${size} bytes is larger than a descriptor file can be`;
  const text = descriptorText(head);
  if (/^\s*# Disk DescriptorFile/.test(text)) return null;
  if (/^\s*createType\s*=/m.test(text) && /^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+\w+/m.test(text)) return null;
  return 'no "# Disk DescriptorFile" line, nor a createType and an extent line, before its first NUL';
}

function checkBaseDisk(d: VmdkDescriptor, path: string): void {
  if (d.parentCid !== NO_PARENT_CID) {
    throw new VmdkUnsupportedError(
      `delta disk (parentCID=${d.parentCid}${d.header.get('parentFileNameHint') ? `, parent ${d.header.get('parentFileNameHint')}` : ''}): reading needs the parent chain, which is not supported`,
      { path },
    );
  }
}

async function openSparseFile(file: ImageFile, files: ImageFile[]): Promise<VmdkImage> {
  const extent = await SparseExtent.open(file);
  let descriptor: VmdkDescriptor | undefined;
  if (extent.descriptorText !== undefined && extent.descriptorText.trim() !== '') {
    descriptor = parseDescriptor(extent.descriptorText, { path: file.path });
    checkBaseDisk(descriptor, file.path);
  }
  const format = descriptor?.createType ?? (extent.compressed ? 'streamOptimized' : 'monolithicSparse');
  return new CompositeImage(format, descriptor, [extent], files);
}

async function openDescriptorFile(file: ImageFile, files: ImageFile[], opener: FileOpener): Promise<VmdkImage> {
  const descriptor = parseDescriptor(descriptorText(await file.readExact(0, file.size, 'descriptor')), { path: file.path });
  if (descriptor.parentCid !== NO_PARENT_CID && DELTA_CREATE_TYPES[descriptor.createType]) return openChain(file, descriptor, files, opener);
  checkBaseDisk(descriptor, file.path);
  const base = posix.dirname(file.path);
  const backends: ExtentBackend[] = [];
  for (const [i, e] of descriptor.extents.entries()) {
    const len = e.sectors * SECTOR;
    if (e.type === 'ZERO') {
      backends.push(new ZeroBackend(len));
      continue;
    }
    if (e.fileName === undefined) throw new VmdkCorruptError(`extent ${i} has no file`, { path: file.path });
    const extPath = posix.isAbsolute(e.fileName) ? e.fileName : posix.join(base, e.fileName);
    if (e.type === 'FLAT' || e.type === 'VMFS') {
      const f = await ImageFile.open(extPath, opener);
      files.push(f);
      const start = (e.offset ?? 0) * SECTOR;
      if (start + len > f.size) {
        throw new VmdkTruncatedError(`flat extent ${i} needs ${start + len} bytes but the file has ${f.size}`, { path: extPath });
      }
      backends.push(new FlatBackend(f, start, len));
    } else if (e.type === 'SPARSE') {
      const f = await ImageFile.open(extPath, opener);
      files.push(f);
      const sparse = await SparseExtent.open(f);
      if (sparse.length < len) {
        throw new VmdkCorruptError(`sparse extent ${i} holds ${sparse.length} bytes but the descriptor says ${len}`, { path: extPath });
      }
      backends.push(sparse.length === len ? sparse : new ClippedBackend(sparse, len));
    } else {
      throw new VmdkUnsupportedError(`extent type ${e.type} is not supported`, { path: file.path });
    }
  }
  return new CompositeImage(descriptor.createType, descriptor, backends, files);
}

class ChainImage extends ChainReader implements VmdkImage {
  readonly format: ImageFormat;
  constructor(
    readonly descriptor: VmdkDescriptor,
    links: ConstructorParameters<typeof ChainReader>[0],
    base: VmdkImage,
    files: ImageFile[],
  ) {
    super(links, base, files);
    this.format = descriptor.createType;
  }
}

async function openChain(file: ImageFile, descriptor: VmdkDescriptor, files: ImageFile[], opener: FileOpener): Promise<VmdkImage> {
  const { links, basePath } = await openChainLinks(file.path, descriptor, opener, files);
  const base = await openVmdk(basePath, { files: opener, format: 'vmdk' });
  try {
    return new ChainImage(descriptor, links, base, files);
  } catch (e) {
    await base.close();
    throw e;
  }
}

/**
 * Open a snapshot's disk from its newest descriptor: follows parentFileNameHint down to
 * the base, checks the links (VmdkChainError on a missing parent, a parentCID that is
 * not the parent's CID, mixed formats), and reads the composed disk. `links` lists the
 * deltas, newest first. A base disk opens as itself (no links).
 */
export async function openVmdkChain(path: string, options?: Omit<OpenOptions, 'format'>): Promise<VmdkImage & { links: readonly ChainLinkInfo[] }> {
  const img = await openVmdk(path, { ...options, format: 'vmdk' });
  return Object.assign(img, { links: img.links ?? [] });
}

/** Open a VMDK (any supported layout) or raw disk image for reading. */
export async function openVmdk(path: string, options?: OpenOptions): Promise<VmdkImage> {
  const mode = options?.format ?? 'auto';
  const opener = options?.files ?? localFiles;
  const file = await ImageFile.open(path, opener);
  const files: ImageFile[] = [file];
  try {
    if (mode === 'raw') return new CompositeImage('raw', undefined, [new FlatBackend(file, 0, file.size)], files);
    const head = await file.readUpTo(0, 4096);
    const magic = head.length >= 4 ? head.readUInt32LE(0) : -1;
    if (magic === SPARSE_MAGIC) return await openSparseFile(file, files);
    if (magic === COWD_MAGIC) {
      throw new VmdkUnsupportedError('a vmfsSparse (COWD) delta data file has no parent link: open its descriptor (createType "vmfsSparse") instead', { path });
    }
    if (head.length >= 8 && head.readBigUInt64LE(0) === 0xcafebaben) {
      throw new VmdkUnsupportedError('a seSparse delta data file has no parent link: open its descriptor (createType "seSparse") instead', { path });
    }
    const notDescriptor = descriptorProblem(head, file.size);
    if (notDescriptor === null) return await openDescriptorFile(file, files, opener);
    // A *.vmdk that is neither sparse nor a descriptor is damaged, unless it is a flat extent opened directly.
    const vmdkName = /\.vmdk$/i.test(path) && !/-(flat|f\d{3}|rdm|rdmp)\.vmdk$/i.test(path);
    if (mode === 'vmdk' || vmdkName) {
      const m = head.subarray(0, 4).toString('hex');
      throw new VmdkBadMagicError(`not a VMDK: first bytes ${m} are neither the sparse magic "KDMV" nor a descriptor (${notDescriptor})`, { path });
    }
    return new CompositeImage('raw', undefined, [new FlatBackend(file, 0, file.size)], files);
  } catch (e) {
    await Promise.allSettled(files.map((f) => f.close()));
    throw e;
  }
}
