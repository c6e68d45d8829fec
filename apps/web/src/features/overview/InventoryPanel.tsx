import { useQueryClient } from '@tanstack/react-query';
import type { InventoryVm, Job, VCenter } from '@vaultline/contracts';
import { useState } from 'react';
import { Link } from 'react-router';
import { createJob, getJobs, runJob } from '../../api/jobs.ts';
import { useRepositories } from '../../api/repositories.ts';
import { useAllRestorePoints } from '../../api/restores.ts';
import { useInventories, useVCenters } from '../../api/vcenters.ts';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { formatBytes, powerLabel } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { TableHead } from '../../components/TableHead.tsx';

/** Creates (once) a one-VM job in the first repository and runs it now. */
async function backUpNow(vcenter: VCenter, vm: InventoryVm, repositoryId: string) {
  const name = `Quick backup – ${vm.name}`;
  let job: Job | undefined = (await getJobs()).find((j) => j.name === name);
  job ??= await createJob({
    name,
    vcenterId: vcenter.id,
    repositoryId,
    sources: [{ moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) }],
  });
  return runJob(job.id);
}

export function InventoryPanel() {
  const me = useMe();
  const qc = useQueryClient();
  const vcenters = useVCenters();
  const repositories = useRepositories();
  const inventories = useInventories((vcenters.data ?? []).map((v) => v.id));
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<{ kind: 'ok' | 'error'; text: string; runId?: string } | null>(null);
  const canRun = can(me.role, 'operator');
  const points = useAllRestorePoints(canRun);
  // A VM's restore points are its own (by instance UUID) or, for a VM restored under the name, those of that name.
  const pointsOf = (vm: InventoryVm): string | null => {
    const list = points.data ?? [];
    if (vm.instanceUuid && list.some((p) => p.vmInstanceUuid === vm.instanceUuid)) return vm.instanceUuid;
    return list.some((p) => p.vmName === vm.name) ? vm.name : null;
  };
  const repo = repositories.data?.[0];

  if (vcenters.isPending) return <section className="card">Loading vCenters…</section>;
  if (vcenters.isError) return <section className="card alert error">Cannot list vCenters: {vcenters.error.message}</section>;
  if (vcenters.data.length === 0) {
    return (
      <section className="card">
        <h3>Virtual machines</h3>
        <p className="muted">
          No vCenter is registered yet. <Link to={paths.vcenters}>Add one</Link> to see its VMs here.
        </p>
      </section>
    );
  }

  return (
    <section className="card" data-testid="inventory">
      <div className="row">
        <h3>Virtual machines</h3>
        {repo ? <span className="muted small">Back up now goes to {repo.name}; for schedules and options, create a job</span> : <span className="muted small">no repository yet</span>}
      </div>
      {message && (
        <div className={`alert ${message.kind === 'error' ? 'error' : 'ok'}`} role={message.kind === 'error' ? 'alert' : 'status'}>
          {message.text} {message.runId && <Link to={paths.run(message.runId)}>Watch it</Link>}
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
              <table className="cards">
                <TableHead columns={['Name', 'Power', 'CBT', 'Disks']} actions="Actions" />
                <tbody>
                  {inv.data.map((vm) => (
                    <tr key={vm.moref} data-testid="vm-row">
                      <td data-label="Name">
                        <strong>{vm.name}</strong>
                        <div className="muted small">{vm.guestId ?? vm.moref}</div>
                      </td>
                      <td data-label="Power">{powerLabel(vm.powerState)}</td>
                      <td data-label="CBT">{vm.changeTrackingEnabled ? 'on' : <span className="muted">off</span>}</td>
                      <td data-label="Disks">{vm.disks.map((d) => `${formatBytes(d.capacityBytes)} ${d.controller}`).join(', ')}</td>
                      <td className="actions">
                        {canRun && pointsOf(vm) && (
                          <Link className="button" to={paths.restoreVm(pointsOf(vm)!)} aria-label={`Restore ${vm.name}`}>
                            Restore…
                          </Link>
                        )}{' '}
                        {canRun && repo && (
                          <button
                            type="button"
                            disabled={busy !== null}
                            onClick={() => {
                              setBusy(vm.moref);
                              setMessage(null);
                              backUpNow(vc, vm, repo.id)
                                .then((run) => {
                                  setMessage({ kind: 'ok', text: `Backup of ${vm.name} started.`, runId: run.id });
                                  return qc.invalidateQueries({ queryKey: ['runs'] });
                                })
                                .catch((err: unknown) => setMessage({ kind: 'error', text: errorMessage(err) }))
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
