/**
 * A small tar writer (POSIX ustar, with a PAX header for names that do not fit)
 * for the Transporter bundle: regular files (from disk or memory), directories
 * and symbolic links, owned by 0:0, read by GNU tar and BusyBox tar alike.
 * Written here rather than shelling out to tar so the bundle's layout (the
 * appliance's node binary at the top, generated launchers) is exactly ours.
 */
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';

export type TarEntry =
  | { type: 'file'; path: string; mode: number; size: number; mtime: number; source: string }
  | { type: 'file'; path: string; mode: number; mtime: number; content: Buffer }
  | { type: 'dir'; path: string; mode: number; mtime: number }
  | { type: 'symlink'; path: string; target: string; mtime: number };

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, opts: { size: number; mode: number; mtime: number; typeflag: string; linkname?: string; prefix?: string }): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(opts.mode & 0o7777, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii');
  h.write(octal(0, 8), 116, 8, 'ascii');
  h.write(octal(opts.size, 12), 124, 12, 'ascii');
  h.write(octal(Math.floor(opts.mtime), 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii');
  h.write(opts.typeflag, 156, 1, 'ascii');
  if (opts.linkname) h.write(opts.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  if (opts.prefix) h.write(opts.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return h;
}

/** Splits a name into ustar's prefix/name fields, or returns null when it needs a PAX header. */
function ustarName(name: string): { name: string; prefix: string } | null {
  if (Buffer.byteLength(name) <= 100) return { name, prefix: '' };
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100) return { name: rest, prefix };
  }
  return null;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest, 0);
}

async function write(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
}

function headersFor(entry: TarEntry, size: number): Buffer[] {
  const name = entry.type === 'dir' && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path;
  const typeflag = entry.type === 'file' ? '0' : entry.type === 'dir' ? '5' : '2';
  const mode = entry.type === 'symlink' ? 0o777 : entry.mode;
  const linkname = entry.type === 'symlink' ? entry.target : undefined;
  const split = ustarName(name);
  const out: Buffer[] = [];
  const records: string[] = [];
  if (!split) records.push(paxRecord('path', name));
  if (linkname && Buffer.byteLength(linkname) > 100) records.push(paxRecord('linkpath', linkname));
  if (records.length) {
    const body = Buffer.from(records.join(''), 'utf8');
    out.push(header('PaxHeader', { size: body.length, mode: 0o644, mtime: entry.mtime, typeflag: 'x' }), body, padding(body.length));
  }
  const short = split ?? { name: name.slice(-100), prefix: '' };
  out.push(header(short.name, { size, mode, mtime: entry.mtime, typeflag, linkname: linkname && Buffer.byteLength(linkname) <= 100 ? linkname : undefined, prefix: short.prefix }));
  return out;
}

/** Writes the entries as a tar stream into `out` (not ended). */
export async function writeTar(entries: Iterable<TarEntry>, out: Writable): Promise<void> {
  for (const entry of entries) {
    const size = entry.type !== 'file' ? 0 : 'content' in entry ? entry.content.length : entry.size;
    for (const h of headersFor(entry, size)) await write(out, h);
    if (entry.type !== 'file') continue;
    if ('content' in entry) {
      await write(out, entry.content);
    } else {
      let seen = 0;
      for await (const chunk of createReadStream(entry.source)) {
        seen += (chunk as Buffer).length;
        if (seen > size) throw new Error(`${entry.source} grew while it was being bundled`);
        await write(out, chunk as Buffer);
      }
      if (seen !== size) throw new Error(`${entry.source} shrank while it was being bundled`);
    }
    await write(out, padding(size));
  }
  await write(out, Buffer.alloc(BLOCK * 2, 0));
}
