/**
 * Test helper for the real VMFS volumes in ../shared/testdata/vmfs (made on
 * ESXi; see its README): where they are, the tools that read them, and
 * unpacking one into a (sparse) LUN image at a given byte offset.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, createReadStream, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';

export const TESTDATA = path.resolve(import.meta.dirname, '../../../../shared/testdata/vmfs');
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** The images' sizes once unpacked (../shared/testdata/README.md). */
export const IMAGE_BYTES = { vmfs5: 535_822_336, vmfs6: 1_072_693_248 } as const;

/**
 * Whether the VMFS tests can run here. Outside CI a checkout without the
 * shared test data skips them; on CI (CI=true) that is a failure that says
 * where it looked, since a skip there would pass without testing anything.
 */
export function vmfsTestdataPresent(): boolean {
  if (existsSync(TESTDATA)) return true;
  if (process.env.CI === 'true') {
    throw new Error(
      `the real VMFS images are missing: looked for ${TESTDATA} (vmfs5.bin.gz, vmfs6.bin.gz; ../shared/testdata next to the checkout, see its README.md). ` +
        'CI=true, so the Direct SAN tests on real VMFS must run rather than skip: provide the shared test data on this runner.',
    );
  }
  return false;
}

export function ensureVmfsTools(): void {
  if (existsSync('/usr/sbin/vmfs6-fuse') && existsSync('/usr/sbin/vmfs-fuse')) return;
  if (!isRoot) throw new Error('the VMFS tests need vmfs-tools and vmfs6-tools: apt-get install vmfs-tools vmfs6-tools');
  execFileSync('apt-get', ['install', '-y', '-qq', 'vmfs-tools', 'vmfs6-tools'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: 'ignore' });
}

/**
 * Unpacks ../shared/testdata/vmfs/<name>.bin.gz into `file` (created if need be) at byte `offset`,
 * leaving runs of zeros as holes (the images are mostly empty), and the file
 * at least `size` bytes long. Returns the number of bytes unpacked.
 */
export async function unpackImage(name: 'vmfs5' | 'vmfs6', file: string, offset: number, size: number): Promise<number> {
  const block = 1024 * 1024;
  const zero = Buffer.alloc(block);
  const pending = Buffer.alloc(block);
  let fill = 0;
  let pos = 0;
  const fh = await open(file, constants.O_RDWR | constants.O_CREAT);
  try {
    const flush = async () => {
      const chunk = pending.subarray(0, fill);
      if (!chunk.equals(zero.subarray(0, fill))) await fh.write(chunk, 0, fill, offset + pos);
      pos += fill;
      fill = 0;
    };
    for await (const piece of createReadStream(path.join(TESTDATA, `${name}.bin.gz`)).pipe(createGunzip())) {
      let data = piece as Buffer;
      while (data.length > 0) {
        const n = Math.min(block - fill, data.length);
        data.copy(pending, fill, 0, n);
        fill += n;
        data = data.subarray(n);
        if (fill === block) await flush();
      }
    }
    await flush();
    if ((await fh.stat()).size < size) await fh.truncate(size);
  } finally {
    await fh.close();
  }
  if (pos !== IMAGE_BYTES[name]) throw new Error(`${name}.bin.gz unpacked to ${pos} bytes, the README says ${IMAGE_BYTES[name]}`);
  return pos;
}

export async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}
