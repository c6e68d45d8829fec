/**
 * Just enough POSIX tar to write an OVA: ustar headers for regular files, a
 * pax extended header when a size does not fit ustar's 11 octal digits
 * (8 GiB - 1), zero padding to 512-byte blocks, and the two zero blocks that
 * end an archive. Writing only; names are ours (ASCII, short), so long names
 * are refused rather than split into prefix/name.
 */
export const TAR_BLOCK = 512;
/** The largest size a ustar header holds (11 octal digits). */
export const USTAR_MAX_SIZE = 0o77777777777;

export interface TarEntry {
  /** Path inside the archive: 1..100 bytes of printable ASCII, no leading slash, no `..`. */
  name: string;
  size: number;
  /** Modification time (default: the epoch). */
  mtime?: Date;
  /** Permission bits (default 0644). */
  mode?: number;
}

function octal(buf: Buffer, value: number, offset: number, width: number): void {
  // width - 1 digits, NUL-terminated.
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new RangeError(`tar field overflow: ${value} does not fit ${width - 1} octal digits`);
  buf.write(s, offset, 'ascii');
  buf[offset + width - 1] = 0;
}

function checkName(name: string): void {
  if (!/^[\x21-\x7e][\x20-\x7e]{0,99}$/.test(name) || name.startsWith('/') || name.split('/').includes('..')) {
    throw new RangeError(`tar entry name must be 1-100 printable ASCII characters, relative, without "..": ${JSON.stringify(name)}`);
  }
}

function ustarHeader(name: string, size: number, mtime: number, mode: number, type: '0' | 'x'): Buffer {
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(name, 0, 100, 'ascii');
  octal(h, mode, 100, 8);
  octal(h, 0, 108, 8); // uid
  octal(h, 0, 116, 8); // gid
  octal(h, size, 124, 12);
  octal(h, mtime, 136, 12);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h.write(type, 156, 1, 'ascii');
  h.write('ustar\u000000', 257, 8, 'ascii'); // magic "ustar\0" + version "00"
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 8, 'ascii');
  return h;
}

/** A pax record "<len> <key>=<value>\n", where <len> counts the whole record including itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

/**
 * The header block(s) of a regular file. Sizes above USTAR_MAX_SIZE get a pax
 * extended header (typeflag 'x', key `size`) first, which GNU tar, bsdtar and
 * every pax-aware reader apply to the entry that follows.
 */
export function tarHeader(entry: TarEntry): Buffer {
  checkName(entry.name);
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw new RangeError(`tar entry size must be a non-negative integer, got ${entry.size}`);
  const mtime = Math.max(0, Math.floor((entry.mtime?.getTime() ?? 0) / 1000));
  const mode = entry.mode ?? 0o644;
  if (entry.size <= USTAR_MAX_SIZE) return ustarHeader(entry.name, entry.size, mtime, mode, '0');
  const pax = Buffer.from(paxRecord('size', String(entry.size)), 'ascii');
  const paxName = `PaxHeaders/${entry.name}`.slice(0, 100);
  return Buffer.concat([ustarHeader(paxName, pax.length, mtime, 0o644, 'x'), pax, tarPadding(pax.length), ustarHeader(entry.name, 0, mtime, mode, '0')]);
}

/** Zeros that pad `size` bytes of entry data to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK);
}

/** End of archive: two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * TAR_BLOCK);
}

