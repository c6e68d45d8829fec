import { useQueryClient } from '@tanstack/react-query';
import type { InventoryVm, RunStarted, VCenter } from '@vaultline/contracts';
import { Fragment, useState } from 'react';
import { Link } from 'react-router';
import { api, errorMessage } from '../../lib/api.ts';
import { useRepositories } from '../../api/repositories.ts';
import { useAllRestorePoints } from '../../api/restores.ts';
import { useInventories, useVCenters } from '../../api/vcenters.ts';
import { paths } from '../../config/paths.ts';
import { formatBytes, powerLabel } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { TableHead } from '../../components/TableHead.tsx';
import { BackupNowProgress } from './BackupNowProgress.tsx';

/** A one-off backup of the VM into `repositoryId`, now: no job is made or kept. */
const backUpNow = (vcenter: VCenter, vm: InventoryVm, repositoryId: string) =>
  api<RunStarted>('/api/backups', { method: 'POST', body: { vcenterId: vcenter.id, repositoryId, vm: { moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) } } });

export function InventoryPanel() {
  const me = useMe();
  const qc = useQueryClient();
  const vcenters = useVCenters();
  const repositories = useRepositories();
  const inventories = useInventories((vcenters.data ?? []).map((v) => v.id));
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  /** One-off backups started here, by VM: their progress shows under the VM's row. */
  const [started, setStarted] = useState<Record<string, string>>({});
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
        {repo ? <span className="muted small">Back up now makes one restore point in {repo.name}, without creating a job; for schedules and options, create a job</span> : <span className="muted small">no repository yet</span>}
      </div>
      {message && (
        <div className="alert error" role="alert">
          {message}
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
                    <Fragment key={vm.moref}>
                    <tr data-testid="vm-row">
                      <td data-label="Name">
                        <strong>{vm.name}</strong>
                        <div className="muted small">{vm.guestId ?? 'unknown guest OS'}</div>
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
                            aria-label={`Back up ${vm.name} now`}
                            onClick={() => {
                              setBusy(vm.moref);
                              setMessage(null);
                              backUpNow(vc, vm, repo.id)
                                .then((run) => {
                                  setStarted((s) => ({ ...s, [vm.moref]: run.runId }));
                                  return qc.invalidateQueries({ queryKey: ['runs'] });
                                })
                                .catch((err: unknown) => setMessage(errorMessage(err)))
                                .finally(() => setBusy(null));
                            }}
                          >
                            {busy === vm.moref ? 'Starting…' : 'Back up now'}
                          </button>
                        )}
                      </td>
                    </tr>
                    {started[vm.moref] && (
                      <tr className="backup-now-row">
                        <td colSpan={5}>
                          <BackupNowProgress runId={started[vm.moref]!} vmName={vm.name} />
                        </td>
                      </tr>
                    )}
                    </Fragment>
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
