/**
 * A restore point's disk converted to an image file KVM and Proxmox import: raw or qcow2, thin.
 *
 * raw: the repository's sequential restore (DiskReader.restoreToFile) writes only the point's data
 * into a file sized to the capacity: holes of the point and all-zero blocks are never written, so the
 * file is sparse and takes the space of the data.
 *
 * qcow2: the disk is served read-only by our NBD server (@vaultline/flr) on a private unix socket and
 * `qemu-img convert` reads it straight from `nbd+unix://`: it asks the export's allocation map
 * (base:allocation, which is the point's own hole map) and skips the holes, and it does not allocate
 * clusters for zero data. Only the qcow2 file is written: no raw copy first, so a restore needs the
 * space of the data once, not twice.
 *
 * Both write to `<path>.partial` and rename at the end; any failure (a full filesystem included)
 * removes the partial file and says what happened.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { diskExport, NbdServer } from '@vaultline/flr';
import { DiskReader } from '@vaultline/repository';
import type { Repository, RestorePointRef } from '@vaultline/repository';
import { KvmRestoreError } from './hardware.ts';
import type { ImageFormat } from './libvirt.ts';

export interface ConvertRequest {
  repo: Repository;
  ref: RestorePointRef;
  /** The key the point stores the disk under (String(vSphere device key)). */
  diskKey: string;
  /** The image to create; it must not exist. */
  path: string;
  format: ImageFormat;
  /** Stops the conversion (the partial file is removed). */
  signal?: AbortSignal | undefined;
}

export interface ConvertedDisk {
  path: string;
  format: ImageFormat;
  /** Virtual size of the disk. */
  capacity: number;
  /** What the file takes on its filesystem (st_blocks × 512). */
  allocatedBytes: number;
  durationMs: number;
}

/** A target filesystem that filled up during a conversion. */
export class TargetFullError extends KvmRestoreError {
  override name = 'TargetFullError';
}

function isNoSpace(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'NO_SPACE') return true;
  }
  return false;
}

/** The ways qemu-img says the target is full. */
const QEMU_NO_SPACE = /No space left on device|Disk quota exceeded/i;

function runQemuImg(args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < 64 * 1024) stderr += s;
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new KvmRestoreError('qemu-img is not installed (Debian: apt-get install qemu-utils)') : err);
    });
    child.on('close', (code, sig) => {
      if (code === 0) return resolve();
      const e = new Error(`qemu-img ${args[0]} failed (${code ?? sig}): ${stderr.trim().split('\n').slice(-3).join(' | ') || '(no output)'}`);
      if (QEMU_NO_SPACE.test(stderr)) (e as NodeJS.ErrnoException).code = 'ENOSPC';
      reject(e);
    });
  });
}

async function toQcow2(reader: DiskReader, partial: string, signal?: AbortSignal): Promise<void> {
  // The socket lives in a directory of our own (0700): nobody else can connect to the export.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vl-kvm-nbd-'));
  const socket = path.join(dir, 'nbd.sock');
  let served: string | null = null;
  const server = new NbdServer([diskExport('disk', reader)], {
    onError: (m) => {
      served ??= m;
    },
  });
  try {
    await server.listen(socket);
    // -f raw: the export is the disk's bytes; never let qemu-img probe a guest's data for a format header.
    await runQemuImg(['convert', '-f', 'raw', '-O', 'qcow2', `nbd+unix:///disk?socket=${socket}`, partial], signal);
  } catch (err) {
    if (served && !(err as NodeJS.ErrnoException).code) throw new Error(`${(err as Error).message} (NBD server: ${served})`, { cause: err });
    throw err;
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Converts one disk of a restore point. The target must not exist; on failure nothing is left behind. */
export async function convertDisk(req: ConvertRequest): Promise<ConvertedDisk> {
  const started = Date.now();
  const target = path.resolve(req.path);
  const partial = `${target}.partial`;
  if (fs.existsSync(target)) throw new KvmRestoreError(`${target} exists already; a restore never overwrites a file`);
  const reader = await DiskReader.open(req.repo, req.ref, req.diskKey);
  // Claims the name: a second restore into the same place fails here instead of writing over this one.
  try {
    fs.closeSync(fs.openSync(partial, 'wx', 0o640));
  } catch (err) {
    reader.close();
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new KvmRestoreError(`${partial} exists: another restore is writing there, or a failed one left it (remove it)`);
    throw err;
  }
  try {
    req.signal?.throwIfAborted();
    if (req.format === 'raw') await reader.restoreToFile(partial);
    else await toQcow2(reader, partial, req.signal);
    req.signal?.throwIfAborted();
    fs.renameSync(partial, target);
  } catch (err) {
    fs.rmSync(partial, { force: true });
    if (isNoSpace(err)) {
      throw new TargetFullError(
        `the filesystem of ${path.dirname(target)} is full: disk ${req.diskKey} (${reader.capacity} bytes virtual, thin) did not fit as ${req.format}; ` +
          'the partial image was removed. Free space or choose another directory.',
        { cause: err },
      );
    }
    throw err;
  } finally {
    reader.close();
  }
  const st = fs.statSync(target);
  return { path: target, format: req.format, capacity: reader.capacity, allocatedBytes: st.blocks * 512, durationMs: Date.now() - started };
}

/** What `qemu-img info` says of an image (format, virtual size, bytes allocated). */
export async function imageInfo(file: string): Promise<{ format: string; virtualSize: number; actualSize: number }> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('qemu-img', ['info', '--output=json', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`qemu-img info ${file} failed: ${stderr.trim()}`))));
  });
  const j = JSON.parse(out) as { format: string; 'virtual-size': number; 'actual-size': number };
  return { format: j.format, virtualSize: j['virtual-size'], actualSize: j['actual-size'] };
}
