/**
 * A minimal PORTMAP version 2 (RFC 1833), program 100000: GETPORT answers this
 * server's port for NFS v3 and MOUNT v3 over TCP (0 for anything else), DUMP
 * lists those two, SET and UNSET are refused (nothing else registers here),
 * CALLIT is not offered.
 */
import type { RpcCall } from './rpc.ts';
import { MOUNT_PROGRAM, MOUNT_VERSION } from './mount.ts';
import { NFS_PROGRAM, NFS_VERSION } from './nfs3.ts';
import { XdrWriter } from './xdr.ts';

export const PORTMAP_PROGRAM = 100000;
export const PORTMAP_VERSION = 2;
export const IPPROTO_TCP = 6;

export class PortmapProgram {
  constructor(private readonly port: () => number) {}

  private mappings(): Array<[number, number]> {
    return [
      [NFS_PROGRAM, NFS_VERSION],
      [MOUNT_PROGRAM, MOUNT_VERSION],
    ];
  }

  call(call: RpcCall): XdrWriter | null {
    const r = call.args;
    const w = new XdrWriter();
    switch (call.proc) {
      case 0:
        return w;
      case 1: // SET
      case 2: // UNSET
        return w.bool(false);
      case 3: {
        const prog = r.u32('prog');
        const vers = r.u32('vers');
        const prot = r.u32('prot');
        const known = prot === IPPROTO_TCP && this.mappings().some(([p, v]) => p === prog && v === vers);
        return w.u32(known ? this.port() : 0);
      }
      case 4:
        for (const [prog, vers] of this.mappings()) w.u32(1).u32(prog).u32(vers).u32(IPPROTO_TCP).u32(this.port());
        return w.u32(0);
      default:
        return null;
    }
  }
}
