import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  VmdkDescriptorError,
  VmdkError,
  ddbUuid,
  descriptorForFlat,
  descriptorSectors,
  formatDescriptor,
  geometryFor,
  openVmdk,
  parseDescriptor,
} from '../src/index.ts';
import type { VmdkDescriptor } from '../src/index.ts';
import { prng, qemuImg, qemuToRaw, sha256, testdata, qemuTmpDir } from './helpers.ts';

const ESXI_CBT = `# Disk DescriptorFile
version=3
encoding="UTF-8"
CID=a8f6c2d1
parentCID=ffffffff
createType="vmfs"

# Extent description
RW 33554432 VMFS "app01-flat.vmdk"

# Change Tracking File
changeTrackPath="app01-ctk.vmdk"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "2088"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.thinProvisioned = "1"
ddb.uuid = "60 00 C2 9a 11 22 33 44-55 66 77 88 99 aa bb cc"
ddb.longContentID = "0123456789abcdef0123456789abcdef"
ddb.virtualHWVersion = "13"
`;

describe('descriptor parse and write', () => {
  it('parses the ESXi descriptor of vmfs_thick.vmdk: header, extent, ddb', async () => {
    const d = parseDescriptor(await readFile(testdata('vmfs_thick.vmdk'), 'utf8'));
    expect(d.version).toBe(1);
    expect(d.cid).toBe('0172e8a4');
    expect(d.parentCid).toBe('ffffffff');
    expect(d.createType).toBe('vmfs');
    expect(d.header.get('encoding')).toBe('UTF-8');
    expect(d.extents).toEqual([{ access: 'RW', sectors: 4096, type: 'VMFS', fileName: 'vmfs_thick-flat.vmdk' }]);
    expect(d.ddb.get('ddb.adapterType')).toBe('lsilogic');
    expect(d.ddb.get('ddb.geometry.cylinders')).toBe('2');
    expect(d.ddb.get('ddb.uuid')).toBe('60 00 C2 98 5d 08 de f2-a0 14 2e 05 94 9d d8 38');
    expect(d.ddb.get('ddb.longContentID')).toBe('c493b057f416b9534001df440172e8a4');
    expect(d.ddb.get('ddb.virtualHWVersion')).toBe('14');
    expect(descriptorSectors(d)).toBe(4096);
  });

  it('parses a CBT-enabled thin ESXi descriptor with changeTrackPath and writes it back byte for byte', () => {
    const d = parseDescriptor(ESXI_CBT);
    expect(d.version).toBe(3);
    expect(d.changeTrackPath).toBe('app01-ctk.vmdk');
    expect(d.ddb.get('ddb.thinProvisioned')).toBe('1');
    expect(formatDescriptor(d)).toBe(ESXI_CBT);
  });

  it('round-trips every real descriptor (separate and embedded) through format and parse', async () => {
    const texts = [await readFile(testdata('vmfs_thick.vmdk'), 'utf8'), await readFile(testdata('twoGbMaxExtentSparse.vmdk'), 'utf8'), ESXI_CBT];
    for (const name of ['monolithicSparse.vmdk', 'streamOptimized.vmdk', 'streamOptimizedWithMarkers.vmdk', 'ext2.vmdk']) {
      const img = await openVmdk(testdata(name));
      expect(img.descriptor, name).toBeDefined();
      texts.push(formatDescriptor(img.descriptor as VmdkDescriptor));
      await img.close();
    }
    for (const t of texts) {
      const d = parseDescriptor(t);
      const again = parseDescriptor(formatDescriptor(d));
      expect(again).toEqual(d);
      expect(formatDescriptor(again)).toBe(formatDescriptor(d));
    }
  });

  it('keeps extent offsets, ZERO extents, RDONLY access, parentFileNameHint and CRLF line ends', () => {
    const text = [
      '# Disk DescriptorFile',
      'version=1',
      'CID=1234abcd',
      'parentCID=ffffffff',
      'isNativeSnapshot="no"',
      'createType="monolithicFlat"',
      '',
      'RW 2048 FLAT "a.img" 100',
      'RDONLY 1024 ZERO',
      'NOACCESS 8 FLAT "b.img"',
      'ddb.adapterType = "ide"',
    ].join('\r\n');
    const d = parseDescriptor(text);
    expect(d.extents).toEqual([
      { access: 'RW', sectors: 2048, type: 'FLAT', fileName: 'a.img', offset: 100 },
      { access: 'RDONLY', sectors: 1024, type: 'ZERO' },
      { access: 'NOACCESS', sectors: 8, type: 'FLAT', fileName: 'b.img' },
    ]);
    expect(d.header.get('isNativeSnapshot')).toBe('no');
    expect(parseDescriptor(formatDescriptor(d))).toEqual(d);
    const delta = parseDescriptor('version=1\nCID=1\nparentCID=0172e8a4\ncreateType="vmfsSparse"\nparentFileNameHint="base.vmdk"\nRW 8 VMFSSPARSE "x-delta.vmdk"\n');
    expect(delta.cid).toBe('00000001');
    expect(delta.header.get('parentFileNameHint')).toBe('base.vmdk');
    expect(formatDescriptor(delta)).toContain('createType="vmfsSparse"\nparentFileNameHint="base.vmdk"\n');
  });

  it('accepts what ovftool writes: unquoted createType and a read-only SPARSE extent', () => {
    const d = parseDescriptor('# Disk DescriptorFile\nversion=1\nCID=2bdc5c77\nparentCID=ffffffff\ncreateType=streamOptimized\n\n# Extent description\nRDONLY 16777216 SPARSE "dest-0.vmdk"\n');
    expect(d.createType).toBe('streamOptimized');
    expect(d.extents).toEqual([{ access: 'RDONLY', sectors: 16777216, type: 'SPARSE', fileName: 'dest-0.vmdk' }]);
  });

  it.each([
    ['no version', 'CID=1\ncreateType="vmfs"\nRW 8 VMFS "a"\n', /missing version/, undefined],
    ['no createType', 'version=1\nRW 8 VMFS "a"\n', /missing createType/, undefined],
    ['no extents', 'version=1\ncreateType="vmfs"\n', /no extents/, undefined],
    ['garbage line', 'version=1\ncreateType="vmfs"\nthis is not a descriptor\n', /expected key=value/, 3],
    ['malformed extent', 'version=1\ncreateType="vmfs"\nRW lots VMFS "a"\n', /malformed extent/, 3],
    ['unknown extent type', 'version=1\ncreateType="vmfs"\nRW 8 TAPE "a"\n', /unknown extent type/, 3],
    ['flat extent without file', 'version=1\ncreateType="vmfs"\nRW 8 FLAT\n', /needs a file name/, 3],
    ['unterminated quote', 'version=1\ncreateType="vmfs\nRW 8 VMFS "a"\n', /unterminated/, 2],
    ['bad CID', 'version=1\nCID=xyz\ncreateType="vmfs"\nRW 8 VMFS "a"\n', /CID must be/, undefined],
    ['duplicate key', 'version=1\ncreateType="vmfs"\nRW 8 VMFS "a"\nddb.uuid = "1"\nddb.uuid = "2"\n', /duplicate key ddb.uuid/, 5],
    ['empty', '\n\n# only comments\n', /empty descriptor/, undefined],
  ])('rejects malformed input with a clear error: %s', (_name, text, message, line) => {
    let err: unknown;
    try {
      parseDescriptor(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmdkDescriptorError);
    expect((err as VmdkError).code).toBe('DESCRIPTOR');
    expect((err as Error).message).toMatch(message);
    expect((err as VmdkDescriptorError).line).toBe(line);
  });

  it('formats ddb.uuid the VMware way and computes IDE/SCSI geometry', () => {
    expect(ddbUuid('6000c29a-dc4a-120f-2acb-5c027ecf6d0e')).toBe('60 00 c2 9a dc 4a 12 0f-2a cb 5c 02 7e cf 6d 0e');
    expect(() => ddbUuid('nope')).toThrow(VmdkDescriptorError);
    expect(geometryFor(33554432, 'lsilogic')).toEqual({ cylinders: 2088, heads: 255, sectors: 63 });
    expect(geometryFor(20480, 'ide')).toEqual({ cylinders: 20, heads: 16, sectors: 63 });
  });
});

describe('descriptorForFlat', () => {
  const tmp = qemuTmpDir();

  it('writes a monolithicFlat descriptor that our reader and qemu-img both open over the flat file', async () => {
    const capacity = 3 * 1024 * 1024 + 512;
    const data = prng(7)(capacity);
    await writeFile(join(tmp.dir, 'restored-flat.vmdk'), data);
    const text = descriptorForFlat(capacity, 'restored-flat.vmdk', { adapterType: 'pvscsi', uuid: '6000c29a-dc4a-120f-2acb-5c027ecf6d0e', thinProvisioned: true });
    await writeFile(join(tmp.dir, 'restored.vmdk'), text);
    const d = parseDescriptor(text);
    expect(d.createType).toBe('monolithicFlat');
    expect(d.extents).toEqual([{ access: 'RW', sectors: capacity / 512, type: 'FLAT', fileName: 'restored-flat.vmdk', offset: 0 }]);
    expect(d.ddb.get('ddb.adapterType')).toBe('lsilogic');
    expect(d.ddb.get('ddb.thinProvisioned')).toBe('1');
    expect(d.ddb.get('ddb.uuid')).toBe('60 00 c2 9a dc 4a 12 0f-2a cb 5c 02 7e cf 6d 0e');
    expect(d.ddb.get('ddb.longContentID')).toMatch(new RegExp(`^[0-9a-f]{24}${d.cid}$`));

    const img = await openVmdk(join(tmp.dir, 'restored.vmdk'));
    expect(img.format).toBe('monolithicFlat');
    expect(sha256(await img.read(0, img.capacity))).toBe(sha256(data));
    await img.close();

    const info = qemuImg(['info', '--output=json', join(tmp.dir, 'restored.vmdk')]);
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)['virtual-size']).toBe(capacity);
    expect(sha256(await qemuToRaw(join(tmp.dir, 'restored.vmdk'), tmp.dir))).toBe(sha256(data));
  });

  it('writes the ESXi flavour (createType vmfs, VMFS extent) and refuses capacities that are not whole sectors', () => {
    const d = parseDescriptor(descriptorForFlat(1 << 30, 'db01-flat.vmdk', { createType: 'vmfs', cid: '0000abcd' }));
    expect(d.createType).toBe('vmfs');
    expect(d.cid).toBe('0000abcd');
    expect(d.extents).toEqual([{ access: 'RW', sectors: 2097152, type: 'VMFS', fileName: 'db01-flat.vmdk' }]);
    expect(() => descriptorForFlat(1000, 'x-flat.vmdk')).toThrow(VmdkError);
  });
});
