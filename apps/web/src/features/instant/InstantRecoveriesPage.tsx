import { useState } from 'react';
import { Link, useLocation } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import type { InstantRecovery, InstantRecoveryState } from '@vaultline/contracts';
import { discardInstantRecovery, migrateInstantRecovery, useInstantRecoveries } from '../../api/instant-recoveries.ts';
import { usePlacement } from '../../api/restores.ts';
import { ConfirmDialog } from '../../components/ConfirmDialog.tsx';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { TableHead } from '../../components/TableHead.tsx';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { ago, formatBytes, formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';

/** Words and colour of each state (the pill classes of run statuses). */
const STATE: Record<InstantRecoveryState, { label: string; pill: string }> = {
  requested: { label: 'waiting for a Transporter', pill: 'queued' },
  starting: { label: 'starting', pill: 'running' },
  running: { label: 'running from backup', pill: 'succeeded' },
  migrating: { label: 'migrating', pill: 'running' },
  migrated: { label: 'migrated', pill: 'cancelled' },
  discarding: { label: 'discarding', pill: 'running' },
  discarded: { label: 'discarded', pill: 'cancelled' },
  failed: { label: 'failed', pill: 'failed' },
};

type Flash = { kind: 'ok' | 'error'; text: string };

/** The datastore a running recovery is moved to: the datastores its host sees, other than the NFS one it runs from. */
function MigrateTarget({ recovery, value, onChange }: { recovery: InstantRecovery; value: string; onChange: (v: string) => void }) {
  const placement = usePlacement(recovery.vcenterId);
  const hostMoref = placement.data?.hosts.find((h) => h.name === recovery.host)?.moref;
  const targets = (placement.data?.datastores ?? []).filter((d) => d.name !== recovery.datastoreName && d.accessible && (!hostMoref || d.hosts.length === 0 || d.hosts.includes(hostMoref)));
  return (
    <label>
      Target datastore
      <select aria-label="Target datastore" value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">{placement.isPending ? 'Loading datastores…' : 'Choose a datastore'}</option>
        {targets.map((d) => (
          <option key={d.moref} value={d.moref}>
            {d.name} · {d.type} · {formatBytes(d.freeBytes)} free
          </option>
        ))}
      </select>
      {placement.isError && <span className="reason">{placement.error.message}</span>}
    </label>
  );
}

export default function InstantRecoveriesPage() {
  const me = useMe();
  const qc = useQueryClient();
  const location = useLocation();
  const recoveries = useInstantRecoveries();
  const operator = can(me.role, 'operator');
  const [flash, setFlash] = useState<Flash | null>(() => {
    const text = (location.state as { flash?: string } | null)?.flash;
    return text ? { kind: 'ok', text } : null;
  });
  const [migrating, setMigrating] = useState<InstantRecovery | null>(null);
  const [target, setTarget] = useState('');
  const [discarding, setDiscarding] = useState<InstantRecovery | null>(null);
  const [busy, setBusy] = useState(false);
  const [dialogError, setDialogError] = useState<string | null>(null);
  const act = (fn: () => Promise<unknown>, done: string, close: () => void) => {
    setBusy(true);
    setDialogError(null);
    fn()
      .then(async () => {
        close();
        setFlash({ kind: 'ok', text: done });
        await qc.invalidateQueries({ queryKey: ['instant-recoveries'] });
      })
      .catch((err: unknown) => setDialogError(errorMessage(err)))
      .finally(() => setBusy(false));
  };

  return (
    <Page
      title="Instant recovery"
      subtitle="Backed-up VMs running on an ESXi host straight from their restore point. Migrate one to production storage while it runs, or discard it. To recover a VM, open one of its restore points."
      actions={
        operator && (
          <Link className="button primary" to={paths.restore}>
            Recover a VM
          </Link>
        )
      }
    >
      {flash && (
        <div className={`alert ${flash.kind}`} role={flash.kind === 'error' ? 'alert' : 'status'}>
          {flash.text}
        </div>
      )}
      {recoveries.isPending && <Loading what="instant recoveries" />}
      {recoveries.isError && <LoadError what="instant recoveries" error={recoveries.error} />}
      {recoveries.data?.length === 0 && (
        <section className="card">
          <p className="muted">No VM has been recovered this way yet.</p>
        </section>
      )}
      {recoveries.data && recoveries.data.length > 0 && (
        <section className="card">
          <table className="cards" data-testid="instant-recoveries">
            <TableHead columns={['VM', 'Restore point', 'Host', 'Runs from', 'State', 'Started']} actions="Actions" />
            <tbody>
              {recoveries.data.map((r) => (
                <tr key={r.id} data-testid="instant-recovery-row">
                  <td data-label="VM">
                    <strong>{r.name}</strong>
                    <div className="muted small">{r.vcenterName}</div>
                  </td>
                  <td data-label="Restore point">
                    <Link to={paths.restorePoint(r.restorePointId)}>
                      {r.sourceVm} · {formatDateTime(r.restorePointTime)}
                    </Link>
                  </td>
                  <td data-label="Host">{r.host}</td>
                  <td data-label="Runs from">
                    {r.state === 'migrated' ? (r.migratedTo ?? '—') : (r.datastoreName ?? <span className="muted">—</span>)}
                    {r.transporterName && r.state !== 'migrated' && r.state !== 'discarded' && <div className="muted small">served by {r.transporterName}</div>}
                  </td>
                  <td data-label="State" data-testid="instant-recovery-state">
                    <span className={`pill status-${STATE[r.state].pill}`}>{STATE[r.state].label}</span>
                    {r.detail && r.state !== 'failed' && <div className="muted small">{r.detail}</div>}
                    {r.error && (
                      <div className="reason small" role="note">
                        {r.error}
                      </div>
                    )}
                  </td>
                  <td data-label="Started">
                    <span title={formatDateTime(r.createdAt)}>{ago(r.createdAt)}</span>
                    <div className="muted small">by {r.createdBy}</div>
                  </td>
                  <td className="actions">
                    {operator && r.state === 'running' && (
                      <>
                        <button type="button" aria-label={`Migrate ${r.name}`} onClick={() => (setDialogError(null), setTarget(''), setMigrating(r))}>
                          Migrate…
                        </button>
                        <button type="button" className="danger-text" aria-label={`Discard ${r.name}`} onClick={() => (setDialogError(null), setDiscarding(r))}>
                          Discard
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {/* One dialog at a time in the page (each names itself by the same id). */}
      {migrating && (
        <ConfirmDialog
          open
          title={`Migrate ${migrating.name} to production storage?`}
          confirmLabel="Migrate"
          busy={busy}
          error={dialogError}
          onCancel={() => setMigrating(null)}
          onConfirm={() => {
            const r = migrating;
            if (!target) return setDialogError('Choose the datastore to move it to.');
            act(() => migrateInstantRecovery(r.id, target), `Migrating ${r.name}: it keeps running while its disks move.`, () => setMigrating(null));
          }}
        >
          <p>Storage vMotion copies the running VM, with everything written since it started, to the datastore. Then the appliance’s NFS datastore is removed from the host.</p>
          <MigrateTarget recovery={migrating} value={target} onChange={setTarget} />
        </ConfirmDialog>
      )}
      {discarding && (
        <ConfirmDialog
          open
          title={`Discard ${discarding.name}?`}
          confirmLabel="Discard VM"
          danger
          busy={busy}
          error={dialogError}
          onCancel={() => setDiscarding(null)}
          onConfirm={() => {
            const r = discarding;
            act(() => discardInstantRecovery(r.id), `Discarding ${r.name}.`, () => setDiscarding(null));
          }}
        >
          <p>The VM is powered off and removed from vSphere, with everything written to it since it started. The restore point is not touched.</p>
        </ConfirmDialog>
      )}
    </Page>
  );
}
