/**
 * XML for vim25: a namespace-aware reader (saxes) that turns a response into a
 * small element tree, and string builders for requests.
 *
 * Subtleties:
 *  - Polymorphic values carry a type attribute in the XML Schema instance
 *    namespace. vCenter writes `xsi:type`, the simulator writes
 *    `XMLSchema-instance:type`, and any prefix is legal; we resolve the
 *    attribute by namespace URI, never by prefix, and strip the prefix of the
 *    value (`xsd:string` -> `string`).
 *  - Every value we send goes through `esc()`; element builders only accept
 *    already-escaped child markup (`Xml`, a branded string), so raw text
 *    cannot reach the wire unescaped by accident.
 */
import { SaxesParser } from 'saxes';
import { ProtocolError } from './faults.ts';

export const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
export const SOAPENV_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
export const VIM_NS = 'urn:vim25';

export interface XmlNode {
  /** local name */
  name: string;
  /** namespace URI ('' when none) */
  ns: string;
  /** attributes by local name, excluding namespace declarations and xsi:type */
  attrs: Record<string, string>;
  /** local part of the xsi:type value, if any */
  xsiType: string | undefined;
  children: XmlNode[];
  /** concatenated text content of this element (not of descendants) */
  text: string;
}

/** Parses a document; malformed or truncated XML raises ProtocolError. */
export function parseXml(xml: string, what = 'response'): XmlNode {
  const parser = new SaxesParser({ xmlns: true, position: true });
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  let failure: Error | undefined;
  parser.on('error', (e) => {
    failure ??= e;
  });
  parser.on('opentag', (tag) => {
    const attrs: Record<string, string> = {};
    let xsiType: string | undefined;
    for (const a of Object.values(tag.attributes)) {
      if (a.prefix === 'xmlns' || a.name === 'xmlns') continue;
      if (a.uri === XSI_NS && a.local === 'type') {
        const v = a.value;
        const i = v.indexOf(':');
        xsiType = i >= 0 ? v.slice(i + 1) : v;
        continue;
      }
      if (a.uri === XSI_NS) continue;
      attrs[a.local] = a.value;
    }
    const node: XmlNode = { name: tag.local, ns: tag.uri, attrs, xsiType, children: [], text: '' };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(node);
    else root ??= node;
    stack.push(node);
  });
  parser.on('text', (t) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  });
  parser.on('cdata', (t) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  try {
    parser.write(xml);
    parser.close();
  } catch (e) {
    failure ??= e as Error;
  }
  if (failure || !root) {
    const reason = failure ? failure.message.split('\n')[0] : 'empty document';
    throw new ProtocolError(`malformed XML in ${what}: ${reason}`);
  }
  return root;
}

// ---------------------------------------------------------------------------
// Navigation helpers

export function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return node?.children.find((c) => c.name === name);
}
export function children(node: XmlNode | undefined, name: string): XmlNode[] {
  return node ? node.children.filter((c) => c.name === name) : [];
}
export function text(node: XmlNode | undefined, name: string): string | undefined {
  const c = child(node, name);
  return c ? c.text : undefined;
}
/** Follows a dotted path of child names. */
export function path(node: XmlNode | undefined, dotted: string): XmlNode | undefined {
  let cur = node;
  for (const p of dotted.split('.')) cur = child(cur, p);
  return cur;
}
export function num(node: XmlNode | undefined, name: string): number | undefined {
  const t = text(node, name);
  if (t === undefined || t.trim() === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}
export function bool(node: XmlNode | undefined, name: string): boolean | undefined {
  const t = text(node, name);
  if (t === undefined) return undefined;
  return t.trim() === 'true' || t.trim() === '1';
}
/** A ManagedObjectReference element as `{ type, value }`. */
export interface MoRef {
  type: string;
  value: string;
}
export function moref(node: XmlNode | undefined): MoRef | undefined {
  if (!node) return undefined;
  return { type: node.attrs.type ?? '', value: node.text };
}

// ---------------------------------------------------------------------------
// Building

declare const xmlBrand: unique symbol;
/** Markup that is already escaped. */
export type Xml = string & { readonly [xmlBrand]: true };

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Escapes text or attribute content; control characters XML 1.0 forbids are rejected. */
export function esc(value: string | number | boolean | bigint): Xml {
  const s = String(value);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(s)) {
    throw new TypeError('value contains characters that cannot be sent in XML');
  }
  return s.replace(/[&<>"']/g, (c) => ESC[c]!) as Xml;
}

export function raw(markup: string): Xml {
  return markup as Xml;
}

export function join(parts: (Xml | '' | undefined | false | null)[]): Xml {
  return parts.filter((p): p is Xml => typeof p === 'string' && p !== '').join('') as Xml;
}

/** `<name attrs>content</name>`; content is escaped markup. */
export function el(name: string, content: Xml | '' = '', attrs: Record<string, string | undefined> = {}): Xml {
  const a = Object.entries(attrs)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => ` ${k}="${esc(v)}"`)
    .join('');
  return `<${name}${a}>${content}</${name}>` as Xml;
}

/** `<name>escaped value</name>`, or nothing when the value is undefined. */
export function val(name: string, value: string | number | boolean | bigint | undefined): Xml | '' {
  return value === undefined ? '' : el(name, esc(value));
}

/** A typed element: `<name xsi:type="Type">…</name>`. */
export function typed(name: string, type: string, content: Xml | '' = '', attrs: Record<string, string | undefined> = {}): Xml {
  return el(name, content, { 'xsi:type': type, ...attrs });
}

/** A ManagedObjectReference element. */
export function ref(name: string, r: MoRef): Xml;
export function ref(name: string, r: MoRef | undefined): Xml | '';
export function ref(name: string, r: MoRef | undefined): Xml | '' {
  return r ? el(name, esc(r.value), { type: r.type }) : '';
}
