/**
 * Instant recovery on a Transporter with VAULTLINE_NFS_ADDRESS: one NFS server for all its recoveries, and the
 * service that carries out the rows (service.ts). The server listens before the Transporter advertises the
 * capability, so a port it cannot have stops the process at start rather than failing the first recovery.
 */
import { nfsExportHost } from '@vaultline/instant';
import type { Logger } from '@vaultline/logger';
import { NfsServer } from '@vaultline/nfs';
import { InstantRecoveryService, type InstantServiceDeps } from './service.ts';

export { InstantRecoveryService } from './service.ts';
export type { InstantServiceDeps, InstantVSphere } from './service.ts';

export interface InstantNfs {
  /** The address ESXi hosts mount from (VAULTLINE_NFS_ADDRESS), as the heartbeat advertises it. */
  nfsAddress: string;
  /** Starts the service on this server's exports (resume, then poll). */
  start(deps: Omit<InstantServiceDeps, 'exports'>): Promise<InstantRecoveryService>;
  /** Stops the service (the recoveries stay as they are: the next start serves them again) and the server. */
  close(): Promise<void>;
}

export async function listenInstantNfs(opts: { nfsAddress: string; listen: string; port: number; portmapPort: number; log: Logger }): Promise<InstantNfs> {
  // Usually every address: which clients may mount what is decided per export (the ESXi host's addresses only).
  const server = new NfsServer({ host: opts.listen, port: opts.port, portmapPort: opts.portmapPort, exports: [], logger: { info: (m) => opts.log.info(m), warn: (m) => opts.log.warn(m) } });
  try {
    await server.listen();
  } catch (err) {
    throw new Error(`cannot serve NFS for instant recovery on ${opts.listen} ports ${opts.port} and ${opts.portmapPort} (VAULTLINE_NFS_LISTEN, VAULTLINE_NFS_PORT, VAULTLINE_NFS_PORTMAP_PORT): ${(err as Error).message}`, { cause: err });
  }
  let service: InstantRecoveryService | null = null;
  return {
    nfsAddress: opts.nfsAddress,
    async start(deps) {
      service = new InstantRecoveryService({ ...deps, exports: nfsExportHost(server, opts.nfsAddress) });
      await service.start();
      return service;
    },
    async close() {
      await service?.stop();
      await server.close();
    },
  };
}
