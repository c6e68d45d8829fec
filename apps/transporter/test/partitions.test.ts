/**
 * The LUN partition table reader on tables built byte by byte (GPT with 512-
 * and 4096-byte sectors, MBR as VMFS3 wrote it), damaged ones and garbage.
 * No root needed. The test's GPT builder is itself checked against
 * util-linux's partx, so both do not share one wrong idea of the format.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bufferSource, chooseVmfsPartition, guidFromBytes, PartitionTableError, readPartitionTable, type PartitionTable } from '../src/adapters/partitions.ts';
import { gptRegions, guidBytes, imageBuffer, LINUX_TYPE, mbrSector, VMFS_TYPE, VMKCORE_TYPE, writeRegions, type GptLayout } from './partition-images.ts';

const MiB = 1024 * 1024;

/** An ESXi-like LUN: VMFS in partition 1 at 1 MiB, and a vmkcore partition in slot 3 (slot 2 empty). */
function esxiLayout(sectorSize: number, size = 16 * MiB): GptLayout {
  const s = (bytes: number) => bytes / sectorSize;
  return {
    sectorSize,
    sectors: size / sectorSize,
    parts: [
      { type: VMFS_TYPE, firstLba: s(MiB), lastLba: s(9 * MiB) - 1, name: 'datastore1' },
      { type: VMKCORE_TYPE, firstLba: s(10 * MiB), lastLba: s(12 * MiB) - 1, slot: 2 },
    ],
  };
}

function gptBuffer(l: GptLayout): Buffer {
  return imageBuffer(l.sectors * l.sectorSize, gptRegions(l));
}

const read = (b: Buffer) => readPartitionTable(bufferSource(b));

async function readError(b: Buffer, opts?: { mbrSectorSize?: number }): Promise<PartitionTableError> {
  const err = await readPartitionTable(bufferSource(b), opts).then(
    (t) => new Error(`read a table: ${JSON.stringify(t)}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PartitionTableError);
  return err as PartitionTableError;
}

function flip(b: Buffer, at: number, mask: number): void {
  b.writeUInt8(b.readUInt8(at) ^ mask, at);
}

/** A seeded byte stream (xorshift32), so "garbage" is the same garbage every run. */
function garbage(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

describe('GUIDs in GPT are mixed-endian', () => {
  it('the VMFS type GUID is stored as 2A E0 31 AA 0F 40 DB 11 95 90 00 0C 29 11 D1 B8, and read back as written', () => {
    const stored = Buffer.from('2ae031aa0f40db119590000c2911d1b8', 'hex');
    expect(guidBytes(VMFS_TYPE).equals(stored)).toBe(true);
    expect(guidFromBytes(stored)).toBe('AA31E02A-400F-11DB-9590-000C2911D1B8');
  });
});

describe('GPT', () => {
  it('the test builder writes tables that util-linux (partx) reads the same way', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-gpt-'));
    try {
      const file = path.join(dir, 'lun.img');
      const l = esxiLayout(512);
      await writeRegions(file, l.sectors * 512, gptRegions(l));
      const rows = execFileSync('partx', ['-g', '-o', 'NR,START,SECTORS,TYPE,NAME', '--raw', file], { encoding: 'utf8' }).split('\n').filter(Boolean).map((r) => r.trimEnd());
      expect(rows).toEqual([`1 2048 16384 ${VMFS_TYPE.toLowerCase()} datastore1`, `3 20480 4096 ${VMKCORE_TYPE.toLowerCase()}`]);
      expect(execFileSync('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', file], { encoding: 'utf8' }).trim()).toBe('gpt');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads an ESXi-like table: VMFS in partition 1 at 1 MiB, numbered by slot, types and names', async () => {
    const t = await read(gptBuffer(esxiLayout(512)));
    expect(t).toEqual({
      scheme: 'gpt',
      sectorSize: 512,
      notes: [],
      partitions: [
        { number: 1, start: MiB, size: 8 * MiB, type: VMFS_TYPE, typeName: 'VMFS', vmfs: true, name: 'datastore1' },
        { number: 3, start: 10 * MiB, size: 2 * MiB, type: VMKCORE_TYPE, typeName: 'vmkcore', vmfs: false },
      ],
    } satisfies PartitionTable);
  });

  it('finds the header at 4096 bytes on a 4096-byte-sector LUN, and counts LBAs in 4096-byte sectors', async () => {
    const t = await read(gptBuffer(esxiLayout(4096)));
    expect(t?.sectorSize).toBe(4096);
    expect(t?.partitions.map((p) => [p.number, p.start, p.size, p.vmfs])).toEqual([
      [1, MiB, 8 * MiB, true],
      [3, 10 * MiB, 2 * MiB, false],
    ]);
    expect(t?.notes).toEqual([]);
  });

  it('a primary header with a bad CRC32: the backup header at the last LBA is used, and the notes say so', async () => {
    const b = gptBuffer(esxiLayout(512));
    flip(b, 512 + 40, 0x01); // first usable LBA, covered by the header CRC
    const t = await read(b);
    expect(t?.partitions.map((p) => p.number)).toEqual([1, 3]);
    expect(t?.notes).toHaveLength(1);
    expect(t?.notes[0]).toMatch(/primary GPT header \(LBA 1, 512-byte sectors\): header CRC32 mismatch .*: using the backup GPT header at LBA 32767/);
  });

  it('a primary entry array with a bad CRC32: the backup is used', async () => {
    const b = gptBuffer(esxiLayout(512));
    flip(b, 2 * 512 + 32, 0x10); // partition 1's first LBA in the primary array
    const t = await read(b);
    expect(t?.partitions[0]).toMatchObject({ number: 1, start: MiB, vmfs: true });
    expect(t?.notes[0]).toMatch(/entry array CRC32 mismatch.*backup GPT header/);
  });

  it('a wiped primary header behind a protective MBR, 4096-byte sectors: the backup is found at the last 4096-byte LBA', async () => {
    const l = esxiLayout(4096);
    const b = gptBuffer(l);
    b.fill(0, 4096, 8192);
    const t = await read(b);
    expect(t).toMatchObject({ scheme: 'gpt', sectorSize: 4096 });
    expect(t?.partitions.map((p) => [p.number, p.start])).toEqual([
      [1, MiB],
      [3, 10 * MiB],
    ]);
    expect(t?.notes[0]).toMatch(/no primary GPT header.*using the backup GPT header at LBA 4095/);
  });

  it('both headers damaged: an error naming what is wrong with each', async () => {
    const b = gptBuffer(esxiLayout(512));
    flip(b, 512 + 40, 1);
    flip(b, b.length - 512 + 40, 1);
    const err = await readError(b);
    expect(err.message).toMatch(/^no valid GPT: primary GPT header .* header CRC32 mismatch.*; backup GPT header \(LBA 32767, 512-byte sectors\): header CRC32 mismatch/);
  });

  it('a truncated LUN (the table describes a bigger device): the primary partition runs past the end, and the backup is gone', async () => {
    const full = gptBuffer(esxiLayout(512));
    const err = await readError(full.subarray(0, 4 * MiB));
    expect(err.message).toMatch(/partition 1 \(LBA 2048–18431\) runs past the end of the device \(8192 sectors\): truncated\?/);
    expect(err.message).toMatch(/backup GPT header \(LBA 8191.*no "EFI PART" signature/);
  });

  it('an "EFI PART" signature over garbage: refused (no valid GPT), not read as partitions', async () => {
    const b = garbage(2 * MiB, 7);
    b.write('EFI PART', 512, 'latin1');
    const err = await readError(b);
    expect(err.message).toMatch(/^no valid GPT: primary GPT header/);
  });

  it('overlapping partitions are refused', async () => {
    const l = esxiLayout(512);
    l.parts[1] = { type: LINUX_TYPE, firstLba: 4096, lastLba: 8191 };
    const err = await readError(gptBuffer(l));
    expect(err.message).toMatch(/GPT partitions 1 and 2 overlap/);
  });
});

describe('MBR', () => {
  it('a VMFS3-era LUN: type 0xFB at sector 128 is VMFS; entries are numbered by slot', async () => {
    const b = Buffer.alloc(8 * MiB);
    mbrSector([
      { type: 0xfb, lba: 128, sectors: 8192 },
      { type: 0, lba: 0, sectors: 0 },
      { type: 0xfc, lba: 10240, sectors: 2048, status: 0x80 },
    ]).copy(b);
    expect(await read(b)).toEqual({
      scheme: 'mbr',
      sectorSize: 512,
      notes: [],
      partitions: [
        { number: 1, start: 64 * 1024, size: 4 * MiB, type: '0xfb', typeName: 'VMFS', vmfs: true },
        { number: 3, start: 5 * MiB, size: MiB, type: '0xfc', typeName: 'vmkcore', vmfs: false },
      ],
    } satisfies PartitionTable);
  });

  it('sector numbers count in the device logical sector size when told', async () => {
    const b = Buffer.alloc(8 * MiB);
    mbrSector([{ type: 0xfb, lba: 256, sectors: 1024 }]).copy(b);
    expect((await readPartitionTable(bufferSource(b), { mbrSectorSize: 4096 }))?.partitions[0]).toMatchObject({ start: MiB, size: 4 * MiB, vmfs: true });
  });

  it('an extended partition is listed and noted, its logical partitions are not read', async () => {
    const b = Buffer.alloc(8 * MiB);
    mbrSector([{ type: 0xfb, lba: 128, sectors: 4096 }, { type: 0x05, lba: 8192, sectors: 4096 }]).copy(b);
    const t = await read(b);
    expect(t?.partitions.map((p) => [p.number, p.type])).toEqual([
      [1, '0xfb'],
      [2, '0x05'],
    ]);
    expect(t?.notes).toEqual(['MBR partition 2 is an extended partition; the logical partitions in it are not read']);
  });

  it('a partition past the end of the device, or a bad status byte: clear errors', async () => {
    const past = Buffer.alloc(MiB);
    mbrSector([{ type: 0xfb, lba: 128, sectors: 4096 }]).copy(past);
    expect((await readError(past)).message).toBe('MBR partition 1 (sectors 128–4223) runs past the end of the device (2048 sectors): truncated?');
    const status = Buffer.alloc(MiB);
    mbrSector([{ type: 0xfb, lba: 128, sectors: 128, status: 0x13 }]).copy(status);
    expect((await readError(status)).message).toMatch(/MBR entry 1 has status byte 0x13 .* garbled/);
  });
});

describe('no table, garbage, truncation', () => {
  it('a device with no MBR signature and no GPT header has no table (null): an unpartitioned LUN', async () => {
    expect(await read(Buffer.alloc(2 * MiB))).toBeNull();
    const noise = garbage(2 * MiB, 42);
    noise[510] = 0;
    expect(await read(noise)).toBeNull();
  });

  it('garbage that happens to end sector 0 with 55 AA is refused, not read as partitions', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const noise = garbage(2 * MiB, seed);
      noise[510] = 0x55;
      noise[511] = 0xaa;
      for (let slot = 0; slot < 4; slot++) if (noise[446 + slot * 16 + 4] === 0xee) noise[446 + slot * 16 + 4] = 0xfb; // no protective entry
      expect((await readError(noise)).message).toMatch(/^MBR (entry|partition) \d/);
    }
  });

  it('a device shorter than one sector is an error', async () => {
    expect((await readError(Buffer.alloc(100))).message).toBe('the device has 100 bytes, less than one sector: truncated?');
  });
});

describe('choosing the VMFS partition', () => {
  const table = (parts: Partial<PartitionTable['partitions'][number]>[]): PartitionTable => ({
    scheme: 'gpt',
    sectorSize: 512,
    notes: [],
    partitions: parts.map((p, i) => ({ number: i + 1, start: (i + 1) * MiB, size: MiB, type: VMFS_TYPE, typeName: 'VMFS', vmfs: true, ...p })),
  });

  it('vSphere\'s partition when the table has it; the only VMFS partition when vSphere says none; null (whole device) without a table', () => {
    const t = table([{ type: VMKCORE_TYPE, typeName: 'vmkcore', vmfs: false }, {}]);
    expect(chooseVmfsPartition(t, 2)?.number).toBe(2);
    expect(chooseVmfsPartition(t, 0)?.number).toBe(2);
    expect(chooseVmfsPartition(null, 1)).toBeNull();
  });

  it('a partition number the table does not hold, or one that is not VMFS: an error naming what the table holds', () => {
    const t = table([{}, { type: VMKCORE_TYPE, typeName: 'vmkcore', vmfs: false }]);
    expect(() => chooseVmfsPartition(t, 3)).toThrow('vSphere reports the datastore in partition 3, but its GPT holds partitions 1 (VMFS at 1 MiB, 1 MiB), 2 (vmkcore at 2 MiB, 1 MiB)');
    expect(() => chooseVmfsPartition(t, 2)).toThrow(`vSphere reports the datastore in partition 2, but that is not a VMFS partition (type vmkcore, ${VMKCORE_TYPE})`);
  });

  it('no VMFS partition, or several and vSphere says none: errors', () => {
    expect(() => chooseVmfsPartition(table([{ type: LINUX_TYPE, typeName: 'Linux filesystem', vmfs: false }]), 0)).toThrow('no VMFS partition: its GPT holds partition 1 (Linux filesystem at 1 MiB, 1 MiB)');
    expect(() => chooseVmfsPartition(table([{}, {}]), 0)).toThrow('several VMFS partitions (1, 2) and vSphere does not say which holds the datastore');
  });
});
