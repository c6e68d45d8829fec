/**
 * The exports a server has and the file handles that point into them.
 *
 * A handle is 21 bytes: a format byte, 8 random bytes drawn at each server
 * start (so a handle from before a restart is NFS3ERR_STALE, never a
 * different file), the export's id (never reused while the server runs, so a
 * removed export's handles stay stale even if the name comes back) and the
 * file's id in that export.
 */
import { randomBytes } from 'node:crypto';
import { ExportTree, NfsError, Nfs3Status, type ExportOptions, type Node } from './tree.ts';

const FORMAT = 1;
export const HANDLE_LENGTH = 21;

export class ExportRegistry {
  readonly generation = randomBytes(8);
  private readonly byId = new Map<number, ExportTree>();
  private readonly byName = new Map<string, ExportTree>();
  private nextId = 1;

  async add(opts: ExportOptions): Promise<ExportTree> {
    const name = normalizeExportName(opts.name);
    if (this.byName.has(name)) throw new Error(`an export named ${name} already exists`);
    const tree = new ExportTree(this.nextId++, { ...opts, name });
    await tree.open();
    if (this.byName.has(name)) throw new Error(`an export named ${name} already exists`);
    this.byId.set(tree.id, tree);
    this.byName.set(name, tree);
    return tree;
  }

  remove(name: string): boolean {
    const tree = this.byName.get(normalizeExportName(name));
    if (!tree) return false;
    this.byName.delete(tree.name);
    this.byId.delete(tree.id);
    return true;
  }

  get(name: string): ExportTree | undefined {
    return this.byName.get(normalizeExportName(name));
  }

  all(): ExportTree[] {
    return [...this.byName.values()];
  }

  encode(tree: ExportTree, nodeId: number): Buffer {
    const b = Buffer.alloc(HANDLE_LENGTH);
    b.writeUInt8(FORMAT, 0);
    this.generation.copy(b, 1);
    b.writeUInt32BE(tree.id, 9);
    b.writeBigUInt64BE(BigInt(nodeId), 13);
    return b;
  }

  /**
   * The export and node a handle names, for a client at `address`.
   * NFS3ERR_BADHANDLE for something that is not one of our handles,
   * NFS3ERR_STALE for one from an earlier start, a removed export or a removed
   * file, NFS3ERR_ACCES when the client may not use the export.
   */
  async resolve(fh: Buffer, address: string): Promise<{ tree: ExportTree; node: Node }> {
    if (fh.length !== HANDLE_LENGTH || fh.readUInt8(0) !== FORMAT) throw new NfsError(Nfs3Status.BADHANDLE, `a ${fh.length}-byte handle that this server did not make`);
    if (!fh.subarray(1, 9).equals(this.generation)) throw new NfsError(Nfs3Status.STALE, 'a handle from an earlier start of the server');
    const tree = this.byId.get(fh.readUInt32BE(9));
    if (!tree) throw new NfsError(Nfs3Status.STALE, `a handle of export #${fh.readUInt32BE(9)}, which was removed`);
    if (!tree.allows(address)) throw new NfsError(Nfs3Status.ACCES, `client ${address} may not use export ${tree.name}`);
    const node = await tree.byId(Number(fh.readBigUInt64BE(13)));
    return { tree, node };
  }
}

/** '/vaultline/r1/' → '/vaultline/r1'; names must be absolute paths without '.', '..' or NUL. */
export function normalizeExportName(name: string): string {
  const parts = name.split('/').filter((c) => c !== '');
  if (!name.startsWith('/') || parts.some((c) => c === '.' || c === '..' || c.includes('\0'))) {
    throw new Error(`export name ${JSON.stringify(name)} must be an absolute path without '.', '..' or NUL`);
  }
  return `/${parts.join('/')}`;
}
