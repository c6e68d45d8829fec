/**
 * For tests against the lab vCenter: an export host that stands in for the appliance's NFS server where a test
 * wants neither root nor ports 111/2049. It writes the export's files (the base extents read from the restore
 * point, read-only) into the overlay folder and tells the lab that folder is the export (`nasExport`), so the lab
 * mounts it as the NAS datastore without NFS. The real path (NfsServer, mounted by the lab's own NFSv3 client) is
 * what the browser test and bench/instant-vsphere.ts run.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Lab } from '@vaultline/vsphere-lab';
import type { ExportHost } from './recovery.ts';
import type { BaseFile } from './tree.ts';

const MiB = 1024 * 1024;

export class LabExports implements ExportHost {
  readonly remoteHost = '127.0.0.1';
  readonly served = new Map<string, string>();
  constructor(private readonly lab: Lab) {}
  async add(spec: { name: string; writableDir: string; baseFiles: BaseFile[]; allowedClients: string[] }): Promise<void> {
    for (const f of spec.baseFiles) {
      const file = path.join(spec.writableDir, f.path);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const fd = fs.openSync(file, 'w', 0o444);
      try {
        fs.ftruncateSync(fd, f.size);
        for (let off = 0; off < f.size; off += 4 * MiB) {
          const b = await f.read(off, Math.min(4 * MiB, f.size - off));
          if (b.some((x) => x !== 0)) fs.writeSync(fd, b, 0, b.length, off);
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    await this.lab.nasExport(this.remoteHost, spec.name, spec.writableDir);
    this.served.set(spec.name, spec.writableDir);
  }
  async remove(name: string): Promise<void> {
    if (!this.served.delete(name)) throw new Error(`${name} is not exported`);
    await this.lab.nasExport(this.remoteHost, name, null);
  }
}
