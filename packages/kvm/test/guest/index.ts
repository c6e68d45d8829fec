/**
 * @vaultline/kvm/testing — a bootable test guest for instant boot and restore
 * to KVM: a small raw BIOS disk image (built here from Debian's packages and
 * cached by content), and what a test looks for when it runs.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedGuest, BANNER, GUEST_HOSTNAME, GUEST_SIZE, HEALTH_PORT, MARKER_OFFSET } from './build.ts';

export { BANNER, GUEST_HOSTNAME, GUEST_SIZE, HEALTH_PORT, MARKER_OFFSET, MARKER_PART, ROOT_PART, BIOS_PART } from './build.ts';

/** <repo>/.vaultline/cache/kvm-guest */
export const DEFAULT_GUEST_CACHE = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../.vaultline/cache/kvm-guest');

export interface BootableGuest {
  /** The raw disk image (read-only; copy it to change it). */
  path: string;
  sizeBytes: number;
  /** The guest's kernel, for probing whether KVM runs a kernel on this host. */
  kernel: string;
  /** Matches once the guest waits at its login prompt. */
  loginPrompt: RegExp;
  /** Matches the banner /init prints first. */
  banner: RegExp;
  /** Matches "boot=<uuid>": the id of this boot, which every marker line carries. */
  bootId: RegExp;
  /** Matches "tick=<n> written": the guest wrote marker line n to its disk. */
  tickWritten: RegExp;
  /** Where the guest writes its marker line (bytes from the disk's start; 512 bytes, NUL-padded). */
  markerOffset: number;
  /** The guest's health check answer is served at http://<forward>/health on this guest port. */
  healthPort: number;
  /** Whether this call built the image (false: it came from the cache). */
  built: boolean;
}

/** Parses a marker sector: the boot id and tick the guest wrote, or null when it holds none. */
export function parseMarker(sector: Buffer): { bootId: string; tick: number } | null {
  const m = /^vaultline-guest boot=([0-9a-f-]{36}) tick=(\d+)\n/.exec(sector.toString('latin1'));
  return m ? { bootId: m[1]!, tick: Number(m[2]) } : null;
}

/** The test guest's disk image, from the cache or built now (about a minute cold). */
export async function bootableGuest(opts: { cacheDir?: string } = {}): Promise<BootableGuest> {
  const g = await cachedGuest(opts.cacheDir ?? DEFAULT_GUEST_CACHE);
  return {
    path: g.disk,
    sizeBytes: GUEST_SIZE,
    kernel: g.kernel,
    loginPrompt: new RegExp(`${GUEST_HOSTNAME} login: `),
    banner: new RegExp(BANNER),
    bootId: /vaultline-guest boot=([0-9a-f-]{36})/,
    tickWritten: /vaultline-guest tick=(\d+) written/g,
    markerOffset: MARKER_OFFSET,
    healthPort: HEALTH_PORT,
    built: g.built,
  };
}
