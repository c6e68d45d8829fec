/**
 * Snapshot chains: a base disk plus delta links (vmfsSparse or seSparse), newest
 * last on disk, composed into one disk.
 *
 * Opening follows parentFileNameHint from the newest descriptor down to the base
 * (parentCID ffffffff) and checks each link against its parent: the parent
 * descriptor exists, its CID equals the link's parentCID, every delta has the same
 * format (ESXi never mixes vmfsSparse and seSparse in a chain) and capacity.
 * Problems are `VmdkChainError`s naming the child and the parent file.
 *
 * Reading a range: ask the newest link for the states of its grains there (it reads
 * only the grain tables covering the range); allocated runs are read from its file,
 * zero / unmapped runs (seSparse) are zeros, and only the unallocated runs go on to
 * the next link, and what is left at the end to the base. A read therefore touches
 * each link's grain tables for the range, not every grain of every link.
 *
 * allocatedExtents(): the byte ranges holding data in the composed disk: a range is
 * allocated when the link that decides it (the newest that has it) has data there;
 * seSparse zero / unmapped grains hide the parent's data (they read as zeros).
 */
import { posix } from 'node:path';
import { descriptorText, NO_PARENT_CID, parseDescriptor } from './descriptor.ts';
import type { VmdkDescriptor } from './descriptor.ts';
import { SeSparseExtent, VmfsSparseExtent } from './delta-extent.ts';
import type { DeltaExtent, DeltaFormat } from './delta-extent.ts';
import { readTarget, VmdkChainError, VmdkUnsupportedError } from './errors.ts';
import { ImageFile } from './image-file.ts';
import type { FileOpener } from './image-file.ts';
import type { ByteRange, DiskImageReader } from './types.ts';

const SECTOR = 512;
/** ESXi allows 32 snapshots; anything much deeper is a loop or garbage. */
const MAX_CHAIN = 255;
const MAP_WINDOW = 64 * 1024 * 1024;

export interface ChainLinkInfo {
  descriptorPath: string;
  dataPath: string;
  format: DeltaFormat;
  cid: string;
  parentCid: string;
}

export interface DeltaLinkReader extends ChainLinkInfo {
  extent: DeltaExtent;
}

export const DELTA_CREATE_TYPES: Record<string, DeltaFormat> = { vmfsSparse: 'vmfsSparse', seSparse: 'seSparse' };

async function readDescriptor(path: string, opener: FileOpener): Promise<VmdkDescriptor> {
  const f = await ImageFile.open(path, opener);
  try {
    if (f.size > 1024 * 1024) throw new VmdkUnsupportedError('a snapshot link must be a descriptor file', { path });
    const text = descriptorText(await f.readExact(0, f.size, 'descriptor'));
    return parseDescriptor(text, { path });
  } finally {
    await f.close();
  }
}

/** Open one delta link described by `d` (at `path`); its data file is added to `files`. */
async function openLink(path: string, d: VmdkDescriptor, opener: FileOpener, files: ImageFile[]): Promise<DeltaLinkReader> {
  const format = DELTA_CREATE_TYPES[d.createType];
  if (!format) throw new VmdkUnsupportedError(`delta disk of createType ${d.createType}: only vmfsSparse and seSparse snapshot links are read`, { path });
  const want = format === 'seSparse' ? 'SESPARSE' : 'VMFSSPARSE';
  const e = d.extents[0];
  if (d.extents.length !== 1 || !e || e.type !== want || e.fileName === undefined) {
    throw new VmdkUnsupportedError(`a ${format} link needs exactly one ${want} extent`, { path });
  }
  const dataPath = posix.isAbsolute(e.fileName) ? e.fileName : posix.join(posix.dirname(path), e.fileName);
  const file = await ImageFile.open(dataPath, opener);
  files.push(file);
  const extent = format === 'seSparse' ? await SeSparseExtent.open(file) : await VmfsSparseExtent.open(file);
  if (extent.length !== e.sectors * SECTOR) {
    throw new VmdkChainError(`${format} data file holds ${extent.length} bytes but the descriptor says ${e.sectors * SECTOR}`, { child: path, parent: dataPath });
  }
  return { descriptorPath: path, dataPath, format, cid: d.cid, parentCid: d.parentCid, extent };
}

function isNotFound(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && (e as { code: unknown }).code === 'ENOENT';
}

/**
 * Walk a chain from the newest descriptor: returns the delta links (newest first)
 * and the base's path; the caller opens the base. `d` is the newest descriptor.
 */
export async function openChainLinks(
  path: string,
  d: VmdkDescriptor,
  opener: FileOpener,
  files: ImageFile[],
): Promise<{ links: DeltaLinkReader[]; basePath: string }> {
  const links: DeltaLinkReader[] = [];
  const seen = new Set<string>();
  let curPath = path;
  let cur = d;
  for (;;) {
    if (seen.has(curPath) || links.length >= MAX_CHAIN) throw new VmdkChainError(`snapshot chain loops or is deeper than ${MAX_CHAIN} links`, { child: path, parent: curPath });
    seen.add(curPath);
    const link = await openLink(curPath, cur, opener, files);
    const prev = links[links.length - 1];
    if (prev && prev.format !== link.format) {
      throw new VmdkChainError(`chain mixes ${prev.format} and ${link.format} links, which ESXi never does`, { child: prev.descriptorPath, parent: curPath });
    }
    if (prev && prev.extent.length !== link.extent.length) {
      throw new VmdkChainError(`links disagree on the disk size (${prev.extent.length} and ${link.extent.length} bytes)`, { child: prev.descriptorPath, parent: curPath });
    }
    links.push(link);
    const hint = cur.header.get('parentFileNameHint');
    if (hint === undefined || hint === '') throw new VmdkChainError('delta disk has no parentFileNameHint', { child: curPath });
    const parentPath = posix.isAbsolute(hint) ? hint : posix.join(posix.dirname(curPath), hint);
    let parent: VmdkDescriptor;
    try {
      parent = await readDescriptor(parentPath, opener);
    } catch (e) {
      if (isNotFound(e)) throw new VmdkChainError('parent disk not found', { child: curPath, parent: parentPath });
      throw e;
    }
    if (parent.cid !== cur.parentCid) {
      throw new VmdkChainError(`parentCID ${cur.parentCid} does not match the parent's CID ${parent.cid} (the parent changed after the snapshot)`, {
        child: curPath,
        parent: parentPath,
      });
    }
    if (parent.parentCid === NO_PARENT_CID) return { links, basePath: parentPath };
    curPath = parentPath;
    cur = parent;
  }
}

/** Ascending ranges from an async iterator, queried with ascending ranges. */
class RangeCursor {
  private buf: ByteRange[] = [];
  private done = false;
  constructor(private readonly it: AsyncIterator<ByteRange>) {}

  /** Parts of [offset, offset + length) covered by the ranges. */
  async intersect(offset: number, length: number): Promise<ByteRange[]> {
    const end = offset + length;
    while (!this.done && (this.buf.length === 0 || this.tail() < end)) {
      const n = await this.it.next();
      if (n.done) this.done = true;
      else this.buf.push(n.value);
    }
    while (this.buf.length > 0 && this.endOf(this.buf[0]) <= offset) this.buf.shift();
    const out: ByteRange[] = [];
    for (const r of this.buf) {
      if (r.offset >= end) break;
      const a = Math.max(r.offset, offset);
      const b = Math.min(this.endOf(r), end);
      if (a < b) out.push({ offset: a, length: b - a });
    }
    return out;
  }

  private endOf(r: ByteRange | undefined): number {
    return r ? r.offset + r.length : 0;
  }
  private tail(): number {
    return this.endOf(this.buf[this.buf.length - 1]);
  }
}

export class ChainReader implements DiskImageReader {
  readonly capacity: number;

  constructor(
    /** Delta links, newest first. */
    readonly links: DeltaLinkReader[],
    private readonly base: DiskImageReader,
    private readonly files: ImageFile[],
  ) {
    this.capacity = base.capacity;
    for (const l of links) {
      if (l.extent.length !== base.capacity) {
        throw new VmdkChainError(`snapshot link is ${l.extent.length} bytes but the base disk is ${base.capacity}`, { child: l.descriptorPath });
      }
    }
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const out = readTarget(offset, length, this.capacity, into);
    let pending: ByteRange[] = length > 0 ? [{ offset, length }] : [];
    for (const link of this.links) {
      const next: ByteRange[] = [];
      for (const p of pending) {
        for (const r of await link.extent.runs(p.offset, p.length)) {
          const at = r.offset - offset;
          if (r.state === 'allocated') await link.extent.file.readExact(r.filePos, r.length, `${link.format} grain data`, out, at);
          else if (r.state === 'unallocated') next.push({ offset: r.offset, length: r.length });
          else out.fill(0, at, at + r.length);
        }
      }
      pending = next;
      if (pending.length === 0) break;
    }
    for (const p of pending) await this.base.read(p.offset, p.length, out.subarray(p.offset - offset));
    return out;
  }

  async *allocatedExtents(): AsyncGenerator<ByteRange> {
    const base = new RangeCursor(this.base.allocatedExtents()[Symbol.asyncIterator]());
    let run: ByteRange | undefined;
    for (let w = 0; w < this.capacity; w += MAP_WINDOW) {
      const data: ByteRange[] = [];
      let pending: ByteRange[] = [{ offset: w, length: Math.min(MAP_WINDOW, this.capacity - w) }];
      for (const link of this.links) {
        const next: ByteRange[] = [];
        for (const p of pending) {
          for (const r of await link.extent.runs(p.offset, p.length)) {
            if (r.state === 'allocated') data.push({ offset: r.offset, length: r.length });
            else if (r.state === 'unallocated') next.push({ offset: r.offset, length: r.length });
          }
        }
        pending = next;
      }
      for (const p of pending) data.push(...(await base.intersect(p.offset, p.length)));
      data.sort((a, b) => a.offset - b.offset);
      for (const r of data) {
        if (run && run.offset + run.length === r.offset) run.length += r.length;
        else {
          if (run) yield run;
          run = { ...r };
        }
      }
    }
    if (run) yield run;
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled([this.base.close(), ...this.files.map((f) => f.close())]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed && failed.status === 'rejected') throw failed.reason;
  }
}
