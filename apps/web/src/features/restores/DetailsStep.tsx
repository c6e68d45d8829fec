import type { RestorePointDetail, VCenter } from '@vaultline/contracts';
import { usePlacement } from '../../api/restores.ts';
import { useInventory } from '../../api/vcenters.ts';
import { formatBytes, powerLabel } from '../../lib/format.ts';
import { DatastoreField, PlacementFields } from './PlacementFields.tsx';
import { TransportChoice } from './TransportChoice.tsx';
import type { RestoreState } from './state.ts';

function VCenterField({ state, set, vcenters }: { state: RestoreState; set: (p: Partial<RestoreState>) => void; vcenters: VCenter[] }) {
  return (
    <label>
      vCenter
      <select aria-label="vCenter" value={state.vcenterId} onChange={(e) => set({ vcenterId: e.target.value, host: '', folder: '', resourcePool: '', datastore: '', networkMap: {}, targetVm: '', targetVmName: '' })}>
        {!state.vcenterId && <option value="">Choose…</option>}
        {vcenters.map((v) => (
          <option key={v.id} value={v.id}>
            {v.name}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Step 3: name, placement, networks and transport (whole VM, replace, drill), or disk and target VM. */
export function DetailsStep({ state, set, point, vcenters }: { state: RestoreState; set: (p: Partial<RestoreState>) => void; point: RestorePointDetail; vcenters: VCenter[] }) {
  const placement = usePlacement(state.vcenterId || undefined);
  const inventory = useInventory(state.what === 'disk' && state.vcenterId ? state.vcenterId : undefined);
  const name = state.name.trim();
  const placementBlock = placement.isPending ? (
    <p className="muted">Reading the vCenter’s hosts, folders, resource pools, datastores and networks…</p>
  ) : placement.isError ? (
    <div className="alert error" role="alert">
      {placement.error.message}
    </div>
  ) : null;

  if (state.what === 'kvm') return <KvmDetails state={state} set={set} point={point} />;
  if (state.what === 'disk') {
    return (
      <div className="step-body">
        <VCenterField state={state} set={set} vcenters={vcenters} />
        <label>
          Disk
          <select aria-label="Disk" value={state.diskKey} onChange={(e) => set({ diskKey: e.target.value })}>
            {point.disks.map((d) => (
              <option key={d.key} value={d.key}>
                {d.label} · {formatBytes(d.capacityBytes)}
                {d.controller ? ` · ${d.controller}` : ''}
              </option>
            ))}
          </select>
        </label>
        <label>
          Into VM
          <select
            aria-label="Into VM"
            value={state.targetVm}
            onChange={(e) => set({ targetVm: e.target.value, targetVmName: inventory.data?.find((v) => v.moref === e.target.value)?.name ?? '' })}
            disabled={!inventory.data}
          >
            <option value="">{inventory.isPending ? 'Reading the inventory…' : 'Choose a VM…'}</option>
            {inventory.data?.map((vm) => (
              <option key={vm.moref} value={vm.moref}>
                {vm.name} · {powerLabel(vm.powerState)} · {vm.disks.length} disk{vm.disks.length === 1 ? '' : 's'}
              </option>
            ))}
          </select>
          <span className="muted small">The disk is added as a new disk on a free SCSI unit, written over the network and read back; the VM’s own disks are never touched.</span>
        </label>
        {inventory.isError && (
          <div className="alert error" role="alert">
            {inventory.error.message}
          </div>
        )}
        {placementBlock}
        {placement.data && <DatastoreField state={state} set={set} point={point} placement={placement.data} />}
      </div>
    );
  }

  return (
    <div className="step-body">
      <div className="form-row">
        <VCenterField state={state} set={set} vcenters={vcenters} />
        <label>
          {state.what === 'replace' ? 'VM to replace' : state.what === 'drill' ? 'Throwaway VM name' : 'New VM name'}
          <input name="vmName" value={state.name} maxLength={80} required onChange={(e) => set({ name: e.target.value, confirm: '' })} autoComplete="off" />
          {state.what === 'drill' && <span className="muted small">Created, verified and deleted again by the drill.</span>}
          {state.what === 'new' && <span className="muted small">It must not exist yet in that vCenter.</span>}
        </label>
      </div>
      {state.what === 'replace' && (
        <div className="alert warn" role="note" data-testid="replace-note">
          <p>
            <strong>{name || 'The VM'}</strong> is replaced only after the restored copy has been written and verified. Then the original is powered off and renamed{' '}
            <code>{name || '<name>'}-replaced-&lt;UTC date-time&gt;</code>: it is kept, with its disks untouched — Vaultline never deletes a VM it did not create. Anything failing before that
            leaves the original as it was.
          </p>
          <label>
            <span>
              Type <strong>{name || 'the VM’s name'}</strong> to confirm
            </span>
            <input name="confirmName" value={state.confirm} onChange={(e) => set({ confirm: e.target.value })} autoComplete="off" spellCheck={false} aria-describedby="confirm-help" />
          </label>
          <p id="confirm-help" className="small">
            {state.confirm === name && name ? 'Confirmed.' : 'Exactly as the VM is named, case included; the restore is refused until then.'}
          </p>
        </div>
      )}
      {placementBlock}
      {placement.data && state.what !== 'drill' && <PlacementFields state={state} set={set} point={point} placement={placement.data} />}
      {placement.data && state.what === 'drill' && <DatastoreField state={state} set={set} point={point} placement={placement.data} />}
      <TransportChoice state={state} set={set} />
      {state.what !== 'drill' && (
        <label className="check-field">
          <input type="checkbox" checked={state.powerOn} onChange={(e) => set({ powerOn: e.target.checked })} />
          <span>
            Power on after the restore
            <span className="muted small block">Only once every disk is verified{state.what === 'replace' ? ' and the swap is done' : ''}.</span>
          </span>
        </label>
      )}
    </div>
  );
}

/** Step 3 onto KVM/Proxmox: the new VM's name, where the bundle goes, the image format, the networks and, optionally, Proxmox. */
function KvmDetails({ state, set, point }: { state: RestoreState; set: (p: Partial<RestoreState>) => void; point: RestorePointDetail }) {
  return (
    <div className="step-body">
      <label>
        Name of the VM on KVM
        <input aria-label="Name of the VM on KVM" value={state.name} maxLength={80} onChange={(e) => set({ name: e.target.value })} />
      </label>
      <label>
        Folder
        <input aria-label="Folder" value={state.kvmFolder} maxLength={80} onChange={(e) => set({ kvmFolder: e.target.value })} />
        <span className="muted small block">Made (new or empty) in the Transporter’s KVM export folder (VAULTLINE_KVM_EXPORT_DIR, by default kvm-exports in its data folder).</span>
      </label>
      <fieldset className="choices inline">
        <legend>Disk images</legend>
        {(['qcow2', 'raw'] as const).map((f) => (
          <label key={f} className={`choice ${state.kvmFormat === f ? 'chosen' : ''}`}>
            <input type="radio" name="kvm-format" value={f} checked={state.kvmFormat === f} onChange={() => set({ kvmFormat: f })} />
            <span className="choice-text">
              <strong>{f}</strong>
              <span className="muted small block">{f === 'qcow2' ? 'thin, portable, what libvirt and Proxmox import by default' : 'thin (sparse) raw files, for block storage or dd'}</span>
            </span>
          </label>
        ))}
      </fieldset>
      {point.networks.length > 0 && (
        <fieldset>
          <legend>Networks</legend>
          <p className="muted small">Each vSphere network goes to a libvirt network (“default” when left empty), or to a bridge written as bridge:br0.</p>
          {point.networks.map((n) => (
            <label key={n}>
              {n} →
              <input aria-label={`libvirt network for ${n}`} placeholder="default" value={state.kvmNetworks[n] ?? ''} onChange={(e) => set({ kvmNetworks: { ...state.kvmNetworks, [n]: e.target.value } })} />
            </label>
          ))}
        </fieldset>
      )}
      <fieldset>
        <legend>Proxmox VE (optional)</legend>
        <label>
          VMID
          <input aria-label="Proxmox VMID" inputMode="numeric" placeholder="none: no Proxmox configuration" value={state.proxmoxVmid} onChange={(e) => set({ proxmoxVmid: e.target.value })} />
        </label>
        {state.proxmoxVmid.trim() && (
          <>
            <label>
              Storage
              <input aria-label="Proxmox storage" value={state.proxmoxStorage} onChange={(e) => set({ proxmoxStorage: e.target.value })} />
            </label>
            <label>
              Bridge
              <input aria-label="Proxmox bridge" value={state.proxmoxBridge} onChange={(e) => set({ proxmoxBridge: e.target.value })} />
            </label>
          </>
        )}
      </fieldset>
    </div>
  );
}
