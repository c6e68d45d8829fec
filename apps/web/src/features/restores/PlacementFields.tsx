import type { PlacementTargets, RestorePointDetail } from '@vaultline/contracts';
import { formatBytes } from '../../lib/format.ts';
import { neededBytes, targetDatastores, type RestoreState } from './state.ts';
import { TableHead } from '../../components/TableHead.tsx';

const SAME = 'Same as the source VM';

/** The datastore picker, with free space, and a warning when the disks would not fit. */
export function DatastoreField({ state, set, point, placement }: { state: RestoreState; set: (p: Partial<RestoreState>) => void; point: RestorePointDetail; placement: PlacementTargets }) {
  const need = neededBytes(point, state);
  const short = targetDatastores(point, state, placement).filter((d) => d.found && d.found.freeBytes < need);
  const sourceDs = point.disks[0]?.datastore;
  return (
    <label>
      Datastore
      <select aria-label="Datastore" value={state.datastore} onChange={(e) => set({ datastore: e.target.value })}>
        <option value="">{state.what === 'disk' ? 'The target VM’s first datastore' : sourceDs ? `${SAME} (${sourceDs})` : SAME}</option>
        {placement.datastores.map((d) => (
          <option key={d.moref} value={d.name} disabled={!d.accessible}>
            {d.name} · {d.type} · {formatBytes(d.freeBytes)} free of {formatBytes(d.capacityBytes)}
            {!d.accessible ? ' · not accessible' : ''}
          </option>
        ))}
      </select>
      <span className="muted small">The disks need {formatBytes(need)} (their full size; thin disks stay thin where the transport allows).</span>
      {short.map((d) => (
        <span key={d.name} className="alert warn small" role="alert">
          Datastore {d.name} has {formatBytes(d.found!.freeBytes)} free; the disks need {formatBytes(need)}. The Transporter will refuse it before creating anything.
        </span>
      ))}
    </label>
  );
}

/** The hosts as choices: one not connected cannot be chosen; maintenance mode is said. */
export function HostOptions({ hosts }: { hosts: PlacementTargets['hosts'] }) {
  return hosts.map((h) => (
    <option key={h.moref} value={h.moref} disabled={h.connectionState !== null && h.connectionState !== 'connected'}>
      {h.name}
      {h.inMaintenanceMode ? ' · maintenance mode' : ''}
      {h.connectionState && h.connectionState !== 'connected' ? ` · ${h.connectionState}` : ''}
    </option>
  ));
}

/** Host, VM folder, resource pool and datastore (defaults: the source VM's), and the network of each NIC. */
export function PlacementFields({ state, set, point, placement }: { state: RestoreState; set: (p: Partial<RestoreState>) => void; point: RestorePointDetail; placement: PlacementTargets }) {
  const hostName = (moref: string) => placement.hosts.find((h) => h.moref === moref)?.name ?? moref;
  return (
    <>
      <fieldset>
        <legend>Where</legend>
        <div className="form-row">
          <label>
            Host
            <select aria-label="Host" value={state.host} onChange={(e) => set({ host: e.target.value })}>
              <option value="">{SAME}</option>
              <HostOptions hosts={placement.hosts} />
            </select>
          </label>
          <label>
            Resource pool
            <select aria-label="Resource pool" value={state.resourcePool} onChange={(e) => set({ resourcePool: e.target.value })}>
              <option value="">{state.host ? 'The host’s cluster’s' : SAME}</option>
              {placement.resourcePools.map((p) => (
                <option key={p.moref} value={p.moref}>
                  {p.name} · {p.datacenter} · {p.hosts.length === 1 ? hostName(p.hosts[0]!) : `${p.hosts.length} hosts`}
                </option>
              ))}
            </select>
          </label>
          <label>
            VM folder
            <select aria-label="VM folder" value={state.folder} onChange={(e) => set({ folder: e.target.value })}>
              <option value="">{SAME}</option>
              {placement.folders.map((f) => (
                <option key={f.moref} value={f.moref}>
                  {f.datacenter}/{f.path}
                </option>
              ))}
            </select>
          </label>
          <DatastoreField state={state} set={set} point={point} placement={placement} />
        </div>
      </fieldset>
      {point.networks.length > 0 && (
        <fieldset>
          <legend>Networks</legend>
          <p className="muted small">Each NIC of the restored VM goes on the network chosen for the network it was on; by default the same one.</p>
          <table className="compact cards" aria-label="Network map">
            <TableHead columns={['Backed up on', 'Restore onto']} />
            <tbody>
              {point.networks.map((src) => {
                const same = placement.networks.find((n) => n.name === src);
                return (
                  <tr key={src}>
                    <td data-label="Backed up on" className="name-cell">
                      {src}
                    </td>
                    <td data-label="Restore onto">
                      <select
                        aria-label={`Network for ${src}`}
                        value={state.networkMap[src] ?? ''}
                        onChange={(e) => {
                          const next = { ...state.networkMap };
                          if (e.target.value) next[src] = e.target.value;
                          else delete next[src];
                          set({ networkMap: next });
                        }}
                      >
                        <option value="">{same ? `${src} (the same)` : `${src} — not in this vCenter: choose one`}</option>
                        {placement.networks
                          .filter((n) => n.moref !== same?.moref)
                          .map((n) => (
                            <option key={n.moref} value={n.moref}>
                              {n.name}
                            </option>
                          ))}
                      </select>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </fieldset>
      )}
    </>
  );
}
