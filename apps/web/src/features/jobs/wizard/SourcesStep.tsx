import { useMemo, useState } from 'react';
import type { InventoryVm, VCenter } from '@vaultline/contracts';
import { useInventory } from '../../../api/vcenters.ts';
import { formatBytes, powerLabel } from '../../../lib/format.ts';
import { sameVm, type Source, type WizardState } from './state.ts';

const SCSI = new Set(['pvscsi', 'lsilogic', 'lsisas', 'buslogic']);

const asSource = (vm: InventoryVm): Source => ({ moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) });

/** What an operator should know before picking a VM, in the Transporter's own terms. */
function vmNotes(vm: InventoryVm): string[] {
  const notes: string[] = [];
  const nonScsi = [...new Set(vm.disks.filter((d) => !SCSI.has(d.controller)).map((d) => d.controller.toUpperCase()))];
  if (nonScsi.length) notes.push(`${nonScsi.join('/')} disk: no HotAdd for it`);
  const independent = vm.disks.filter((d) => d.diskMode?.startsWith('independent'));
  if (independent.length) notes.push(`${independent.map((d) => d.label).join(', ')} independent: snapshots do not cover it, not backed up`);
  if (!vm.changeTrackingEnabled) notes.push('CBT off: turned on at the first backup if “Enable CBT” is set');
  if (vm.disks.length === 0) notes.push('no disks');
  return notes;
}

function controllers(vm: InventoryVm): string {
  const count = new Map<string, number>();
  for (const d of vm.disks) count.set(d.controller, (count.get(d.controller) ?? 0) + 1);
  return [...count].map(([c, n]) => (n > 1 ? `${c} ×${n}` : c)).join(', ') || '—';
}

export function SourcesStep({ state, set, vcenters }: { state: WizardState; set: (patch: Partial<WizardState>) => void; vcenters: VCenter[] }) {
  const [query, setQuery] = useState('');
  const inventory = useInventory(state.vcenterId || undefined);
  const vms = useMemo(() => inventory.data ?? [], [inventory.data]);
  const q = query.trim().toLowerCase();
  const shown = useMemo(
    () => (q ? vms.filter((vm) => [vm.name, vm.guestId, vm.host, vm.moref].some((f) => f?.toLowerCase().includes(q))) : vms),
    [vms, q],
  );
  const isSelected = (vm: InventoryVm) => state.sources.some((s) => sameVm(s, asSource(vm)));
  const toggle = (vm: InventoryVm) => {
    const src = asSource(vm);
    set({ sources: isSelected(vm) ? state.sources.filter((s) => !sameVm(s, src)) : [...state.sources, src] });
  };
  const allShown = shown.length > 0 && shown.every(isSelected);
  const toggleAll = () => {
    if (allShown) set({ sources: state.sources.filter((s) => !shown.some((vm) => sameVm(s, asSource(vm)))) });
    else set({ sources: [...state.sources, ...shown.filter((vm) => !isSelected(vm)).map(asSource)] });
  };
  const missing = inventory.data ? state.sources.filter((s) => !vms.some((vm) => sameVm(s, asSource(vm)))) : [];

  return (
    <div className="step-body">
      <div className="toolbar">
        {vcenters.length > 1 ? (
          <label className="inline">
            vCenter
            <select
              value={state.vcenterId}
              onChange={(e) => {
                set({ vcenterId: e.target.value, sources: [] });
              }}
            >
              {vcenters.map((v) => (
                <option key={v.id} value={v.id}>
                  {v.name}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <span className="muted">vCenter: {vcenters[0]?.name}</span>
        )}
        <label className="inline grow">
          Search VMs
          <input type="search" value={query} onChange={(e) => setQuery(e.target.value)} onKeyDown={(e) => e.key === 'Enter' && e.preventDefault()} placeholder="name, guest OS, host" />
        </label>
        <span className="muted small" role="status" data-testid="selected-count">
          {state.sources.length} selected
        </span>
      </div>
      {inventory.isPending && <p className="muted">Reading the inventory…</p>}
      {inventory.isError && (
        <div className="alert error" role="alert">
          {inventory.error.message}
        </div>
      )}
      {missing.length > 0 && (
        <div className="alert warn">
          Not in the inventory any more (kept until you remove them):{' '}
          {missing.map((s) => (
            <button key={s.moref} type="button" className="chip" onClick={() => set({ sources: state.sources.filter((x) => !sameVm(x, s)) })} aria-label={`Remove ${s.name}`}>
              {s.name} ×
            </button>
          ))}
        </div>
      )}
      {inventory.data && (
        <table className="pick">
          <thead>
            <tr>
              <th scope="col" className="check">
                <input type="checkbox" aria-label="Select all shown" checked={allShown} onChange={toggleAll} disabled={shown.length === 0} />
              </th>
              <th scope="col">VM</th>
              <th scope="col">Power</th>
              <th scope="col">Disks</th>
              <th scope="col">Controllers</th>
              <th scope="col">Notes</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((vm) => {
              const selected = isSelected(vm);
              return (
                <tr key={vm.moref} className={selected ? 'selected' : undefined} data-testid="pick-vm" onClick={(e) => (e.target as HTMLElement).closest('input,button,a') === null && toggle(vm)}>
                  <td className="check">
                    <input type="checkbox" aria-label={`Select ${vm.name}`} checked={selected} onChange={() => toggle(vm)} />
                  </td>
                  <td>
                    <strong>{vm.name}</strong>
                    <div className="muted small">
                      {vm.guestId ?? vm.moref}
                      {vm.host && ` · ${vm.host}`}
                      {vm.cpus !== undefined && ` · ${vm.cpus} vCPU`}
                      {vm.memoryMiB !== undefined && ` · ${formatBytes(vm.memoryMiB * 1048576)}`}
                    </div>
                  </td>
                  <td>
                    <span className={`power ${vm.powerState}`}>{powerLabel(vm.powerState)}</span>
                  </td>
                  <td className="small">
                    {vm.disks.map((d) => (
                      <div key={d.key}>
                        {d.label}: {formatBytes(d.capacityBytes)} · {d.controller}
                        {d.busNumber !== undefined && d.unitNumber !== undefined && ` ${d.busNumber}:${d.unitNumber}`}
                        {d.thin && ' · thin'}
                        {d.datastore && <span className="muted"> · {d.datastore}</span>}
                      </div>
                    ))}
                  </td>
                  <td className="small">{controllers(vm)}</td>
                  <td className="small muted">
                    {vmNotes(vm).map((n) => (
                      <div key={n}>{n}</div>
                    ))}
                  </td>
                </tr>
              );
            })}
            {shown.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  {vms.length === 0 ? 'This vCenter has no VMs.' : `No VM matches “${query}”.`}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </div>
  );
}
