import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';

/** The shared real VMDK files (read in place, never copied into the project). */
export const TESTDATA = fileURLToPath(new URL('../../../../shared/testdata/vmdk/', import.meta.url));

export function testdata(name: string): string {
  const p = join(TESTDATA, name);
  if (!existsSync(p)) throw new Error(`test data missing: ${p} (see ../shared/testdata/README.md)`);
  return p;
}

function qemuImgWorks(): boolean {
  const r = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * qemu-img is the independent peer these tests compare against. Install Debian's
 * qemu-utils when it is missing and we are root; otherwise fail with a clear message
 * (never skip silently).
 */
export function ensureQemuImg(): void {
  if (qemuImgWorks()) return;
  if (process.getuid?.() !== 0) {
    throw new Error('qemu-img is missing and the tests are not running as root: install it with `apt-get install -y qemu-utils`');
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'qemu-utils'], { encoding: 'utf8', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { encoding: 'utf8', env });
    r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'qemu-utils'], { encoding: 'utf8', env });
  }
  if (r.status !== 0 || !qemuImgWorks()) {
    throw new Error(`qemu-img is missing and \`apt-get install -y qemu-utils\` failed:\n${r.stderr ?? ''}${r.error ? String(r.error) : ''}`);
  }
}

export function qemuImg(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `qemu-img convert -O raw` of an image, returned as bytes. */
export async function qemuToRaw(image: string, dir: string): Promise<Buffer> {
  const out = join(dir, `qemu-raw-${Math.random().toString(36).slice(2)}.raw`);
  const r = qemuImg(['convert', '-O', 'raw', image, out]);
  if (r.status !== 0) throw new Error(`qemu-img convert failed: ${r.stderr}`);
  try {
    return await readFile(out);
  } finally {
    await rm(out, { force: true });
  }
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

export async function withTmpDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'vaultline-vmdk-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * For a describe block that compares with qemu-img: makes sure qemu-img is
 * there and gives the block a temp folder, removed after it. Read `.dir`
 * inside tests (it exists once beforeAll has run).
 */
export function qemuTmpDir(): { readonly dir: string } {
  let tmp: Awaited<ReturnType<typeof withTmpDir>> | undefined;
  beforeAll(async () => {
    ensureQemuImg();
    tmp = await withTmpDir();
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });
  return {
    get dir() {
      if (!tmp) throw new Error('qemuTmpDir() is only usable inside tests');
      return tmp.dir;
    },
  };
}

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export function prng(seed: number): (n: number) => Buffer {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 0xff;
    }
    return b;
  };
}

/**
 * An in-memory sparse disk: zeros except the given segments. Reads compose the
 * segments, so large virtual sizes cost nothing. Records every read.
 */
export class SyntheticDisk {
  readonly reads: { offset: number; length: number }[] = [];
  private readonly segments: { offset: number; data: Buffer }[] = [];
  constructor(readonly capacity: number) {}

  put(offset: number, data: Buffer): this {
    if (offset + data.length > this.capacity) throw new Error('segment past capacity');
    this.segments.push({ offset, data });
    this.segments.sort((a, b) => a.offset - b.offset);
    return this;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > this.capacity) throw new Error(`read out of range ${offset}+${length}`);
    this.reads.push({ offset, length });
    return this.readSync(offset, length);
  }

  readSync(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (const s of this.segments) {
      const a = Math.max(offset, s.offset);
      const b = Math.min(offset + length, s.offset + s.data.length);
      if (a < b) s.data.copy(out, a - offset, a - s.offset, b - s.offset);
    }
    return out;
  }

  /** The whole disk as one buffer (only for small disks). */
  bytes(): Buffer {
    return this.readSync(0, this.capacity);
  }

  /** Segment ranges, merged, ascending. */
  async *allocatedExtents(): AsyncGenerator<{ offset: number; length: number }> {
    let cur: { offset: number; length: number } | undefined;
    for (const s of this.segments) {
      if (cur && s.offset <= cur.offset + cur.length) {
        cur.length = Math.max(cur.length, s.offset + s.data.length - cur.offset);
      } else {
        if (cur) yield cur;
        cur = { offset: s.offset, length: s.data.length };
      }
    }
    if (cur) yield cur;
  }
}
