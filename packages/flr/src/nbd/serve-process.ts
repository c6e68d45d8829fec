/**
 * Entry of the NBD server process of one browse session (started by
 * NbdProcess). It is a process of its own, not a thread of the Director,
 * because the Director reads files from mounts whose every block comes back
 * through this server: served from the Director's own event loop and libuv
 * pool, a burst of file reads occupying every pool thread would wait for block
 * reads that need a pool thread themselves.
 *
 * Protocol with the parent (IPC): it sends one `serve` message (where the
 * repository is, its passphrase or SSH key, which disks); we answer `ready`
 * once the socket listens, or `failed`. We exit when the parent says `stop` or
 * goes away (IPC disconnect), so a killed Director does not leave us running.
 */
import { backendFor } from '@vaultline/appliance';
import { DiskReader, Repository, type Lock } from '@vaultline/repository';
import { diskExport } from './repository-export.ts';
import { NbdServer } from './server.ts';

export interface ServeMessage {
  type: 'serve';
  socketPath: string;
  /** 0660 when the file-level restore helper (the socket's group) connects nbdfuse to it. */
  socketMode?: number;
  repository: { kind: string; location: string; sftpHostKeySha256?: string | null };
  /** Unsealed by the Director; only this repository's secrets come here, never the appliance key. */
  passphrase?: string;
  /** The storage credential: SSH key (SFTP) or secret access key (S3). */
  credential?: string;
  ref: { vmId: string; id: string };
  disks: Array<{ key: string; exportName: string }>;
}

let server: NbdServer | null = null;
let repo: Repository | null = null;
let lock: Lock | null = null;

async function stop(code: number): Promise<never> {
  await server?.close().catch(() => undefined);
  await lock?.release().catch(() => undefined);
  await repo?.close().catch(() => undefined);
  process.exit(code);
}

async function serve(msg: ServeMessage): Promise<void> {
  repo = await Repository.open(await backendFor(msg.repository, msg.credential), msg.passphrase ? { passphrase: msg.passphrase } : {});
  // A shared lock for as long as the session is open: garbage collection (exclusive) waits, so it
  // can never sweep chunks this session is reading, even if retention removes the point meanwhile.
  lock = await repo.locks.acquire('shared', `file-level restore of ${msg.ref.vmId}/${msg.ref.id}`);
  const exports = [];
  for (const d of msg.disks) {
    const reader = await DiskReader.open(repo, msg.ref, d.key, { cacheChunks: 128, readAhead: 8 });
    exports.push(diskExport(d.exportName, reader, `disk ${d.key} of restore point ${msg.ref.id}`));
  }
  server = new NbdServer(exports, { onError: (message) => process.send?.({ type: 'log', message }) });
  await server.listen(msg.socketPath, msg.socketMode);
  process.send?.({ type: 'ready' });
}

process.on('disconnect', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
process.on('message', (msg: ServeMessage | { type: 'stop' }) => {
  if (msg.type === 'stop') void stop(0);
  else if (msg.type === 'serve') {
    serve(msg).catch((err: unknown) => {
      process.send?.({ type: 'failed', message: (err as Error).message });
      void stop(1);
    });
  }
});
