/**
 * vaultline-flr, the file-level restore helper: the only process that mounts
 * guest filesystems (which a compromised VM controls). It runs with only the
 * capabilities mounting needs, in a mount namespace of its own (systemd
 * PrivateMounts=yes, the container's own, or `unshare -m` from `npm start`),
 * and never sees the appliance key or a repository passphrase: disks come from
 * the Director's NBD server over a unix socket (docs/SECURITY-flr.md).
 *
 *   VAULTLINE_FLR_RUN_DIR    flr.sock (0660) and token (0640) are created here; shared with the Director
 *   VAULTLINE_FLR_STATE_DIR  journal/ (one file per layer) and sessions/ (mount points), 0700
 *
 * Files it creates belong to its primary group, which should be the Director's
 * (systemd Group=vaultline, compose user "0:<gid>"). At start it undoes what a
 * helper that died left, then listens; SIGTERM closes every session.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { loadEnvOrExit } from '@vaultline/config';
import { createLogger } from '@vaultline/logger';
import { fileFlrJournal } from '../file-journal.ts';
import { MountSessions } from '../mounts.ts';
import { SOCKET_NAME, TOKEN_NAME } from './protocol.ts';
import { helperServer } from './server.ts';

const env = loadEnvOrExit('flr');
const log = createLogger({ name: 'flr', level: env.VAULTLINE_LOG_LEVEL, pretty: process.stdout.isTTY });
const runDir = path.resolve(env.VAULTLINE_FLR_RUN_DIR ?? path.join(env.VAULTLINE_DATA_DIR, 'flr-run'));
const stateDir = path.resolve(env.VAULTLINE_FLR_STATE_DIR ?? path.join(env.VAULTLINE_DATA_DIR, 'flr-state'));
const socketPath = path.join(runDir, SOCKET_NAME);
const tokenPath = path.join(runDir, TOKEN_NAME);

const ignoreMissing = (err: NodeJS.ErrnoException) => {
  if (err.code !== 'ENOENT') throw err;
};

const sessions = new MountSessions({ root: path.join(stateDir, 'sessions'), journal: fileFlrJournal(path.join(stateDir, 'journal')), log });
await mkdir(stateDir, { recursive: true, mode: 0o700 });
await mkdir(runDir, { recursive: true, mode: 0o770 });
// A stale token would let the Director believe an old helper still runs.
await unlink(tokenPath).catch(ignoreMissing);
await unlink(socketPath).catch(ignoreMissing);
const report = await sessions.start();
const token = randomBytes(32).toString('base64url');
const server = helperServer({ sessions, token, log });
await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(socketPath, () => resolve());
});
await chmod(socketPath, 0o660);
const tmp = `${tokenPath}.${process.pid}`;
const fh = await open(tmp, 'w', 0o640);
await fh.writeFile(`${token}\n`);
await fh.close();
await chmod(tmp, 0o640);
await rename(tmp, tokenPath);
log.info({ socket: socketPath, stateDir, swept: report.sessions }, 'file restore helper: listening');
process.stdout.write(`${JSON.stringify({ ready: true, socket: socketPath, pid: process.pid })}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  server.close();
  await sessions.closeAll();
  await unlink(tokenPath).catch(() => undefined);
  await unlink(socketPath).catch(() => undefined);
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
