/**
 * POSIX tar (pax) headers for directories, regular files and symlinks, written
 * as a stream. Names are bytes: a name that is not short printable ASCII goes
 * into a pax `path` record (and `linkpath` for a symlink target) holding the
 * raw bytes, which GNU tar and bsdtar extract as they are (no `hdrcharset`:
 * GNU tar 1.34 warns about it). Sizes beyond ustar's 11 octal digits also use pax.
 */
export const BLOCK = 512;
const USTAR_MAX = 0o77777777777;

export type TarType = 'file' | 'directory' | 'symlink';

export interface TarHeader {
  /** Path inside the archive, raw bytes, relative, '/'-separated (a directory without the trailing slash). */
  path: Buffer;
  type: TarType;
  size: number;
  mode: number;
  mtime: Date;
  uid: number;
  gid: number;
  linkTarget?: Buffer;
}

function octal(buf: Buffer, value: number, offset: number, width: number): void {
  const s = Math.max(0, Math.floor(value)).toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) {
    // Too big for octal: GNU base-256 (first byte 0x80) — only uid/gid can get here (sizes go to pax).
    buf[offset] = 0x80;
    let v = BigInt(Math.floor(value));
    for (let i = width - 1; i > 0; i--) {
      buf[offset + i] = Number(v & 0xffn);
      v >>= 8n;
    }
    return;
  }
  buf.write(s, offset, 'ascii');
  buf[offset + width - 1] = 0;
}

const printable = (b: Buffer) => b.every((c) => c >= 0x20 && c < 0x7f);

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function ustar(name: Buffer, h: { size: number; mode: number; mtime: number; uid: number; gid: number }, typeflag: string, link: Buffer | null): Buffer {
  const b = Buffer.alloc(BLOCK);
  name.copy(b, 0, 0, Math.min(100, name.length));
  octal(b, h.mode, 100, 8);
  octal(b, h.uid, 108, 8);
  octal(b, h.gid, 116, 8);
  octal(b, h.size, 124, 12);
  octal(b, h.mtime, 136, 12);
  b.fill(0x20, 148, 156);
  b.write(typeflag, 156, 1, 'ascii');
  if (link) link.copy(b, 157, 0, Math.min(100, link.length));
  b.write('ustar\u000000', 257, 8, 'ascii');
  let sum = 0;
  for (const c of b) sum += c;
  b.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return b;
}

export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

export function end(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

/** The header block(s) of one entry (a pax extended header first when needed). */
export function header(e: TarHeader): Buffer {
  const name = e.type === 'directory' ? Buffer.concat([e.path, Buffer.from('/')]) : e.path;
  const link = e.type === 'symlink' ? (e.linkTarget ?? Buffer.alloc(0)) : null;
  const size = e.type === 'file' ? e.size : 0;
  const mtime = Math.floor(e.mtime.getTime() / 1000);
  const records: Buffer[] = [];
  const needsPax = (b: Buffer) => b.length > 100 || !printable(b);
  if (needsPax(name)) {
    records.push(paxRecord('path', name));
  }
  if (link && needsPax(link)) {
    records.push(paxRecord('linkpath', link));
  }
  if (size > USTAR_MAX) records.push(paxRecord('size', Buffer.from(String(size))));
  const fields = { size, mode: e.mode & 0o1777, mtime, uid: e.uid, gid: e.gid };
  const typeflag = e.type === 'file' ? '0' : e.type === 'directory' ? '5' : '2';
  // The ustar fields hold an ASCII stand-in where a pax record carries the real value.
  const asciiName = needsPax(name) ? Buffer.from(name.toString('latin1').replace(/[^\x20-\x7e]/g, '_').slice(-99)) : name;
  const asciiLink = link && needsPax(link) ? Buffer.from(link.toString('latin1').replace(/[^\x20-\x7e]/g, '_').slice(0, 100)) : link;
  const main = ustar(asciiName, { ...fields, size: size > USTAR_MAX ? 0 : size }, typeflag, asciiLink);
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxName = Buffer.from(`PaxHeader/${asciiName.toString('latin1').slice(-80)}`);
  return Buffer.concat([ustar(paxName, { size: pax.length, mode: 0o644, mtime, uid: 0, gid: 0 }, 'x', null), pax, padding(pax.length), main]);
}
