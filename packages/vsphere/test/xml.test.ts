import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/index.ts';
import { el, esc, parseXml, val } from '../src/soap/xml.ts';

describe('XML', () => {
  it('resolves the type attribute by namespace URI: xsi:, XMLSchema-instance: (simulator) and any other prefix', () => {
    for (const prefix of ['xsi', 'XMLSchema-instance', 'q1']) {
      const doc = parseXml(
        `<a xmlns="urn:vim25"><VirtualDevice xmlns:${prefix}="http://www.w3.org/2001/XMLSchema-instance" ${prefix}:type="VirtualDisk"><key>1</key></VirtualDevice></a>`,
      );
      expect(doc.children[0]!.xsiType).toBe('VirtualDisk');
      expect(doc.children[0]!.ns).toBe('urn:vim25');
      expect(doc.children[0]!.attrs).toEqual({});
    }
    // a "type" attribute without the namespace is a moref type, not xsi:type
    const r = parseXml('<x><obj type="VirtualMachine">vm-1</obj></x>');
    expect(r.children[0]!.xsiType).toBeUndefined();
    expect(r.children[0]!.attrs.type).toBe('VirtualMachine');
  });

  it('strips the prefix of an xsi:type value (xsd:string -> string)', () => {
    const r = parseXml('<v xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xsi:type="xsd:string">a</v>');
    expect(r.xsiType).toBe('string');
  });

  it('escapes every value sent and rejects characters XML cannot carry', () => {
    expect(esc(`a&b<c>"d'`)).toBe('a&amp;b&lt;c&gt;&quot;d&apos;');
    expect(val('name', '</name><evil/>')).toBe('<name>&lt;/name&gt;&lt;evil/&gt;</name>');
    expect(el('obj', esc('vm-1'), { type: 'A"B' })).toBe('<obj type="A&quot;B">vm-1</obj>');
    expect(() => esc('bad\u0001')).toThrow(/cannot be sent in XML/);
  });

  it('malformed and truncated documents raise ProtocolError', () => {
    expect(() => parseXml('<a><b></a>')).toThrow(ProtocolError);
    expect(() => parseXml('<a><b>')).toThrow(/malformed XML/);
    expect(() => parseXml('')).toThrow(ProtocolError);
    expect(() => parseXml('<a xmlns:x="u"><y:b/></a>')).toThrow(ProtocolError); // unbound prefix
  });
});
