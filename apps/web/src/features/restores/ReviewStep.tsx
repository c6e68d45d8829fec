import type { RestorePointDetail, VCenter } from '@vaultline/contracts';
import { usePlacement } from '../../api/restores.ts';
import { TRANSPORT_LABEL } from '../../components/run/transport.ts';
import { formatDateTime } from '../../lib/format.ts';
import { WHAT, type RestoreState } from './state.ts';

/** Step 4: everything the Director will be asked for, in words. */
export function ReviewStep({ state, point, vcenters }: { state: RestoreState; point: RestorePointDetail; vcenters: VCenter[] }) {
  const placement = usePlacement(state.vcenterId || undefined).data;
  // A chosen target the vCenter does not list (any more, or not yet read) is named by what it is: the console never shows a moref.
  const nameOf = (list: { moref: string; name: string }[] | undefined, moref: string, what: string) =>
    list?.find((x) => x.moref === moref)?.name ?? (list ? `the chosen ${what} (no longer listed)` : `the chosen ${what}`);
  const folder = placement?.folders.find((f) => f.moref === state.folder);
  const same = 'the source VM’s';
  const disk = point.disks.find((d) => d.key === state.diskKey);
  return (
    <div className="step-body">
      <dl className="summary" aria-label="Summary">
        <dt>What</dt>
        <dd>{WHAT.find((w) => w.value === state.what)?.label}</dd>
        <dt>From</dt>
        <dd>
          {point.vmName}, restore point of {formatDateTime(point.createdAt)} in {point.repository}
        </dd>
        {state.what === 'kvm' ? (
          <>
            <dt>Name</dt>
            <dd>{state.name.trim()}</dd>
            <dt>Into</dt>
            <dd>the folder {state.kvmFolder.trim()} in the Transporter’s KVM export folder</dd>
            <dt>Disks</dt>
            <dd>{state.kvmFormat}, thin</dd>
            {point.networks.length > 0 && (
              <>
                <dt>Networks</dt>
                <dd>{point.networks.map((n) => `${n} → ${state.kvmNetworks[n]?.trim() || 'default'}`).join(', ')}</dd>
              </>
            )}
            <dt>Proxmox</dt>
            <dd>{state.proxmoxVmid.trim() ? `VM ${state.proxmoxVmid.trim()} on storage ${state.proxmoxStorage.trim()}, bridge ${state.proxmoxBridge.trim() || 'vmbr0'}` : 'no configuration'}</dd>
          </>
        ) : (
          <>
            <dt>vCenter</dt>
            <dd>{vcenters.find((v) => v.id === state.vcenterId)?.name}</dd>
          </>
        )}
        {state.what === 'kvm' ? null : state.what === 'disk' ? (
          <>
            <dt>Disk</dt>
            <dd>{disk?.label}</dd>
            <dt>Into</dt>
            <dd>{state.targetVmName || 'the chosen VM'}, as a new disk</dd>
            <dt>Datastore</dt>
            <dd>{state.datastore || 'the target VM’s first datastore'}</dd>
          </>
        ) : (
          <>
            <dt>{state.what === 'replace' ? 'Replaces' : 'Name'}</dt>
            <dd>
              {state.name.trim()}
              {state.what === 'replace' && <span className="muted"> (kept, powered off and renamed once the restored copy is verified)</span>}
              {state.what === 'drill' && <span className="muted"> (deleted again after the verify)</span>}
            </dd>
            {state.what !== 'drill' && (
              <>
                <dt>Host</dt>
                <dd>{state.host ? nameOf(placement?.hosts, state.host, 'host') : same}</dd>
                <dt>Resource pool</dt>
                <dd>{state.resourcePool ? nameOf(placement?.resourcePools, state.resourcePool, 'resource pool') : state.host ? 'the host’s cluster’s' : same}</dd>
                <dt>Folder</dt>
                <dd>{folder ? `${folder.datacenter}/${folder.path}` : state.folder ? nameOf(placement?.folders, state.folder, 'folder') : same}</dd>
              </>
            )}
            <dt>Datastore</dt>
            <dd>{state.datastore || same}</dd>
            {state.what !== 'drill' && point.networks.length > 0 && (
              <>
                <dt>Networks</dt>
                <dd>{point.networks.map((n) => (state.networkMap[n] ? `${n} → ${nameOf(placement?.networks, state.networkMap[n], 'network')}` : `${n} (same)`)).join(', ')}</dd>
              </>
            )}
            <dt>Transport</dt>
            <dd>
              {state.transport === 'automatic' ? 'Automatic (HotAdd where possible, else the network)' : TRANSPORT_LABEL[state.transport]}
              {state.transport === 'hotadd' && (state.failoverToNetwork ? ', failing over to the network' : ', no failover')}
            </dd>
            {state.what !== 'drill' && (
              <>
                <dt>Power on</dt>
                <dd>{state.powerOn ? 'yes, once verified' : 'no'}</dd>
              </>
            )}
          </>
        )}
      </dl>
      {state.what === 'kvm' ? (
        <p className="small muted">The run lists each image with its size and what was adapted for KVM; NOTES.txt in the folder says what is left to do.</p>
      ) : (
        <p className="small muted">Every disk is read back after it is written; the run shows each disk’s transport and why, its progress, and the SHA-256 it verified.</p>
      )}
    </div>
  );
}
