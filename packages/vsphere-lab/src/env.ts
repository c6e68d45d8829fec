// The only module of @vaultline/vsphere-lab that reads process.env.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** packages/vsphere-lab */
export const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The repository root (two levels above the package). */
export const repoRoot = path.resolve(packageDir, '..', '..');

export const labEnv = {
  /** Debian's GOPATH tree that holds govmomi's sources. */
  debianGopath: process.env.VAULTLINE_LAB_DEBIAN_GOPATH ?? '/usr/share/gocode',
  /** Build cache (binary, GOCACHE); git-ignored. */
  cacheDir: process.env.VAULTLINE_LAB_CACHE ?? path.join(packageDir, '.cache'),
  /** Where the CLI keeps its lab (default <repo>/.vaultline/lab). */
  cliLabDir: process.env.VAULTLINE_LAB_DIR ?? path.join(repoRoot, '.vaultline', 'lab'),
  /** Print the server's log to stderr as it runs. */
  verbose: process.env.VAULTLINE_LAB_VERBOSE === '1',
};

/** The environment for child processes (go, the lab server, system tools). */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
