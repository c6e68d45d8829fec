/** The appliance's NFS server (@vaultline/nfs) as the place instant recoveries are exported from. */
import type { NfsServer } from '@vaultline/nfs';
import type { ExportHost } from './recovery.ts';

/** `remoteHost`: the server's address as the ESXi hosts reach it (the appliance's, not necessarily the bound one). */
export function nfsExportHost(server: NfsServer, remoteHost: string): ExportHost {
  return {
    remoteHost,
    add: (spec) => server.addExport(spec),
    async remove(name) {
      if (!server.removeExport(name)) throw new Error(`${name} is not exported`);
    },
  };
}
