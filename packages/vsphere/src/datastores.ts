/**
 * NFS datastores, as instant recovery uses them: HostDatastoreSystem.CreateNasDatastore mounts an export (the
 * appliance's) on one host, RemoveDatastore unmounts it there. vSphere mounts per host; the same export mounted
 * on several hosts is one datastore. A mount leaves the export's files as they are, and so does the unmount.
 */
import { read, type Ctx } from './context.ts';
import { ProtocolError } from './soap/faults.ts';
import { el, join, ref, val, type MoRef } from './soap/xml.ts';

export interface NasMountSpec {
  /** The NFS server's address as the host reaches it. */
  remoteHost: string;
  /** The export's path on the server, e.g. /vaultline/ir-42. */
  remotePath: string;
  /** The datastore's name in vSphere. */
  name: string;
  readOnly?: boolean | undefined;
}

const hostRef = (v: string): MoRef => ({ type: 'HostSystem', value: v });

export class DatastoresApi {
  constructor(private readonly ctx: Ctx) {}

  private async datastoreSystem(host: string): Promise<MoRef> {
    const o = await read(this.ctx, hostRef(host), ['configManager.datastoreSystem']);
    const v = o.props.get('configManager.datastoreSystem')?.text;
    if (!v) throw new ProtocolError(`host ${host} has no datastore system`);
    return { type: 'HostDatastoreSystem', value: v };
  }

  /** CreateNasDatastore (NFS v3); returns the datastore's moref. DuplicateName when the name is taken. */
  async mountNfs(host: string, spec: NasMountSpec): Promise<string> {
    if (!/^\/[^\0]*$/.test(spec.remotePath)) throw new TypeError('an NFS export path is absolute');
    if (!spec.name.trim() || spec.name.length > 42) throw new TypeError('a datastore name is 1-42 characters');
    const r = await this.ctx.soap.returnval(
      'CreateNasDatastore',
      join([
        ref('_this', await this.datastoreSystem(host)),
        el(
          'spec',
          join([val('remoteHost', spec.remoteHost), val('remotePath', spec.remotePath), val('localPath', spec.name), val('accessMode', spec.readOnly ? 'readOnly' : 'readWrite'), val('type', 'NFS')]),
        ),
      ]),
      { context: `CreateNasDatastore ${spec.name} (${spec.remoteHost}:${spec.remotePath}) on ${host}` },
    );
    if (!r?.text) throw new ProtocolError(`CreateNasDatastore ${spec.name} returned no datastore`);
    return r.text;
  }

  /** RemoveDatastore on one host: unmounts it there. ResourceInUse while a VM on that host has files on it. */
  async unmount(host: string, datastore: string): Promise<void> {
    await this.ctx.soap.returnval('RemoveDatastore', join([ref('_this', await this.datastoreSystem(host)), ref('datastore', { type: 'Datastore', value: datastore })]), {
      context: `RemoveDatastore ${datastore} from ${host}`,
    });
  }
}
