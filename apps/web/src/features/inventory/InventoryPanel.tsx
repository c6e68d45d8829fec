import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import type { InventoryVm, Me, RepositoryDto, Run, VCenter } from '@vaultline/contracts';
import { useState } from 'react';
import { api, ApiRequestError } from '../../lib/api.ts';
import { formatBytes } from '../../lib/format.ts';

interface JobRow {
  id: string;
  name: string;
}

/** Creates (once) a one-VM job in the first repository and runs it now. */
async function backUpNow(vcenter: VCenter, vm: InventoryVm, repositoryId: string): Promise<Run> {
  const name = `Quick backup – ${vm.name}`;
  let job = (await api<JobRow[]>('/api/jobs')).find((j) => j.name === name);
  job ??= await api<JobRow>('/api/jobs', {
    method: 'POST',
    body: { name, vcenterId: vcenter.id, repositoryId, sources: [{ moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) }] },
  });
  return api<Run>(`/api/jobs/${job.id}/run`, { method: 'POST' });
}

export function InventoryPanel({ me }: { me: Me }) {
  const qc = useQueryClient();
  const vcenters = useQuery({ queryKey: ['vcenters'], queryFn: () => api<VCenter[]>('/api/vcenters') });
  const repositories = useQuery({ queryKey: ['repositories'], queryFn: () => api<RepositoryDto[]>('/api/repositories') });
  const inventories = useQueries({
    queries: (vcenters.data ?? []).map((vc) => ({ queryKey: ['vms', vc.id], queryFn: () => api<InventoryVm[]>(`/api/vcenters/${vc.id}/vms`) })),
  });
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const canRun = me.role !== 'viewer';
  const repo = repositories.data?.[0];

  if (vcenters.isPending) return <section className="card">Loading vCenters…</section>;
  if (vcenters.isError) return <section className="card alert error">Cannot list vCenters: {vcenters.error.message}</section>;
  if (vcenters.data.length === 0) {
    return (
      <section className="card">
        <h3>Virtual machines</h3>
        <p className="muted">No vCenter is registered yet. Add one with <code>npm run vaultline -- vcenter add</code>, or start the appliance without one to get the lab vCenter.</p>
      </section>
    );
  }

  return (
    <section className="card" data-testid="inventory">
      <div className="row">
        <h3>Virtual machines</h3>
        {repo ? <span className="muted small">backups go to {repo.name}</span> : <span className="muted small">no repository yet</span>}
      </div>
      {message && (
        <div className={`alert ${message.kind === 'error' ? 'error' : 'ok'}`} role={message.kind === 'error' ? 'alert' : 'status'}>
          {message.text}
        </div>
      )}
      {vcenters.data.map((vc, i) => {
        const inv = inventories[i];
        return (
          <div key={vc.id} className="vcenter-block">
            <h4>
              {vc.name} {vc.isLab && <span className="pill">lab</span>} <span className="muted small">{vc.url}</span>
            </h4>
            {inv?.isPending && <p className="muted">Reading the inventory…</p>}
            {inv?.isError && <p className="reason">{inv.error.message}</p>}
            {inv?.data && (
              <table>
                <thead>
                  <tr>
                    <th>Name</th>
                    <th>Power</th>
                    <th>CBT</th>
                    <th>Disks</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {inv.data.map((vm) => (
                    <tr key={vm.moref} data-testid="vm-row">
                      <td>
                        <strong>{vm.name}</strong>
                        <div className="muted small">{vm.guestId ?? vm.moref}</div>
                      </td>
                      <td>{vm.powerState === 'poweredOn' ? 'on' : vm.powerState === 'poweredOff' ? 'off' : vm.powerState}</td>
                      <td>{vm.changeTrackingEnabled ? 'on' : <span className="muted">off</span>}</td>
                      <td>{vm.disks.map((d) => `${formatBytes(d.capacityBytes)} ${d.controller}`).join(', ')}</td>
                      <td className="actions">
                        {canRun && repo && (
                          <button
                            disabled={busy !== null}
                            onClick={() => {
                              setBusy(vm.moref);
                              setMessage(null);
                              backUpNow(vc, vm, repo.id)
                                .then(() => {
                                  setMessage({ kind: 'ok', text: `Backup of ${vm.name} started` });
                                  return qc.invalidateQueries({ queryKey: ['runs'] });
                                })
                                .catch((err: unknown) => setMessage({ kind: 'error', text: err instanceof ApiRequestError ? err.message : String(err) }))
                                .finally(() => setBusy(null));
                            }}
                          >
                            {busy === vm.moref ? 'Starting…' : 'Back up now'}
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        );
      })}
    </section>
  );
}
