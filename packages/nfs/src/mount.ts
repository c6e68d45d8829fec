/**
 * MOUNT version 3 (RFC 1813 appendix I), program 100005: MNT hands out the
 * handle of an export's root (or of a directory inside it) to an allowed client (MNT3ERR_ACCES otherwise),
 * EXPORT lists only the exports the asking client may mount, DUMP only that
 * client's own mounts. The mount list is informational, as in every MOUNT
 * server: a handle works without MNT for an allowed client.
 */
import type { RpcCall } from './rpc.ts';
import { AUTH_NONE, AUTH_SYS } from './rpc.ts';
import type { ExportRegistry } from './registry.ts';
import type { ExportTree } from './tree.ts';
import { XdrWriter } from './xdr.ts';

export const MOUNT_PROGRAM = 100005;
export const MOUNT_VERSION = 3;

export enum MountProc {
  NULL = 0,
  MNT = 1,
  DUMP = 2,
  UMNT = 3,
  UMNTALL = 4,
  EXPORT = 5,
}

export enum MountStatus {
  OK = 0,
  PERM = 1,
  NOENT = 2,
  IO = 5,
  ACCES = 13,
  NOTDIR = 20,
  INVAL = 22,
  NAMETOOLONG = 63,
  NOTSUPP = 10004,
  SERVERFAULT = 10006,
}

const MNTPATHLEN = 1024;

export interface MountCallContext {
  address: string;
  info(message: string): void;
}

export class MountProgram {
  /** client address → mounted export names */
  private readonly mounts = new Map<string, Set<string>>();

  constructor(private readonly registry: ExportRegistry) {}

  /**
   * The export a mount path names, and the directory inside it: clients such
   * as libnfs mount the directory of the file they want ('/vaultline/r1/vm').
   */
  private find(dirpath: string): { tree: ExportTree; sub: string } | null {
    const parts = dirpath.split('/').filter((c) => c !== '');
    if (!dirpath.startsWith('/') || parts.some((c) => c === '.' || c === '..' || c.includes('\0'))) return null;
    for (let i = parts.length; i >= 1; i--) {
      const tree = safeGet(this.registry, `/${parts.slice(0, i).join('/')}`);
      if (tree) return { tree, sub: parts.slice(i).join('/') };
    }
    return null;
  }

  /** Forgets the mounts of a removed export. */
  forgetExport(name: string): void {
    for (const set of this.mounts.values()) set.delete(name);
  }

  async call(call: RpcCall, ctx: MountCallContext): Promise<XdrWriter | null> {
    const r = call.args;
    const w = new XdrWriter();
    switch (call.proc as MountProc) {
      case MountProc.NULL:
        return w;
      case MountProc.MNT: {
        const dirpath = r.string(MNTPATHLEN, 'dirpath');
        const found = this.find(dirpath);
        if (!found) {
          ctx.info(`MOUNT of ${JSON.stringify(dirpath)} by ${ctx.address} refused: no such export`);
          return w.u32(MountStatus.NOENT);
        }
        const { tree, sub } = found;
        if (!tree.allows(ctx.address)) {
          ctx.info(`MOUNT of ${tree.name} by ${ctx.address} refused: the client is not in the export's allowed list`);
          return w.u32(MountStatus.ACCES);
        }
        let node;
        try {
          node = await tree.resolve(sub);
        } catch {
          return w.u32(MountStatus.NOENT);
        }
        if (node.kind !== 'dir') return w.u32(MountStatus.NOTDIR);
        let set = this.mounts.get(ctx.address);
        if (!set) this.mounts.set(ctx.address, (set = new Set()));
        set.add(tree.name);
        return w.u32(MountStatus.OK).opaque(this.registry.encode(tree, node.id)).u32(2).u32(AUTH_SYS).u32(AUTH_NONE);
      }
      case MountProc.DUMP: {
        for (const name of this.mounts.get(ctx.address) ?? []) w.u32(1).string(ctx.address).string(name);
        return w.u32(0);
      }
      case MountProc.UMNT: {
        const dirpath = r.string(MNTPATHLEN, 'dirpath');
        const set = this.mounts.get(ctx.address);
        set?.delete(safeGet(this.registry, dirpath)?.name ?? dirpath);
        return w;
      }
      case MountProc.UMNTALL:
        this.mounts.delete(ctx.address);
        return w;
      case MountProc.EXPORT: {
        for (const tree of this.registry.all()) {
          if (!tree.allows(ctx.address)) continue;
          w.u32(1).string(tree.name);
          for (const group of tree.allowedClients) w.u32(1).string(group);
          w.u32(0);
        }
        return w.u32(0);
      }
      default:
        return null;
    }
  }
}

function safeGet(registry: ExportRegistry, name: string) {
  try {
    return registry.get(name);
  } catch {
    return undefined;
  }
}
