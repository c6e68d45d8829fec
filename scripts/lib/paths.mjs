// Where things are: the repository, its state folder, and whether this runs as root.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const STATE = path.join(ROOT, '.vaultline');
export const DATA = path.join(STATE, 'data');
export const SERVICES = path.join(STATE, 'services');
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export const LAB_CLI = 'packages/vsphere-lab/src/cli.ts';
