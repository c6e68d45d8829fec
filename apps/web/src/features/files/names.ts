/**
 * Names on a restored filesystem are bytes. The Director lists each entry with `ref`, the base64url of its
 * raw path from the partition root, which is what the console navigates and downloads by; names are only
 * ever shown, and shown so that control and direction-changing characters cannot hide or disguise anything.
 */

export function refToBytes(ref: string): Uint8Array {
  const b64 = ref.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function bytesToRef(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** The folders from the root down to `ref`: each one's name (as text, lossy) and ref. */
export function crumbs(ref: string): Array<{ name: string; ref: string }> {
  if (!ref) return [];
  let bytes: Uint8Array;
  try {
    bytes = refToBytes(ref);
  } catch {
    return []; // not base64url (an edited address): the Director refuses it and the page shows its answer
  }
  const out: Array<{ name: string; ref: string }> = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x2f) continue;
    if (i > start) out.push({ name: utf8.decode(bytes.subarray(start, i)), ref: bytesToRef(bytes.subarray(0, i)) });
    start = i + 1;
  }
  return out;
}

/** C0/C1 controls, zero-width characters, and the marks and overrides that reorder text (an "exe.txt" that is "txt.exe"). */
function hidden(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x061c || (code >= 0x200b && code <= 0x200f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2060 && code <= 0x2069) || code === 0xfeff;
}

export type NamePart = { text: string; escaped: boolean };

/** A name split into plain text and visible escapes (\n, \x1b, \u202e, …) for what would not show honestly. */
export function safeName(name: string): NamePart[] {
  const parts: NamePart[] = [];
  let plain = '';
  for (const ch of name) {
    const code = ch.codePointAt(0)!;
    if (!hidden(code)) {
      plain += ch;
      continue;
    }
    if (plain) parts.push({ text: plain, escaped: false });
    plain = '';
    const text = ch === '\n' ? '\\n' : ch === '\t' ? '\\t' : ch === '\r' ? '\\r' : code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    parts.push({ text, escaped: true });
  }
  if (plain) parts.push({ text: plain, escaped: false });
  if (parts.length === 0) parts.push({ text: '""', escaped: true });
  return parts;
}

/** The same as one string (for labels, titles and sorting). */
export const safeText = (name: string) =>
  safeName(name)
    .map((p) => p.text)
    .join('');
