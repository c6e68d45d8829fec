import { useState } from 'react';
import { Link, useLocation, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import type { DrillJobDto } from '@vaultline/contracts';
import { deleteDrill, runDrill, updateDrill, useDrills } from '../../api/drills.ts';
import { useVCenters } from '../../api/vcenters.ts';
import { ConfirmDialog } from '../../components/ConfirmDialog.tsx';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { StatusPill } from '../../components/StatusPill.tsx';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { ago, formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { describeSchedule } from '../jobs/schedule.ts';
import { TableHead } from '../../components/TableHead.tsx';

type Flash = { kind: 'ok' | 'error'; text: string; runIds?: string[] };

export default function DrillsPage() {
  const me = useMe();
  const qc = useQueryClient();
  const location = useLocation();
  const navigate = useNavigate();
  const drills = useDrills();
  const vcenters = useVCenters();
  const operator = can(me.role, 'operator');
  const [flash, setFlash] = useState<Flash | null>(() => {
    const text = (location.state as { flash?: string } | null)?.flash;
    return text ? { kind: 'ok', text } : null;
  });
  const [busy, setBusy] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<DrillJobDto | null>(null);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const refresh = () => Promise.all([qc.invalidateQueries({ queryKey: ['drills'] }), qc.invalidateQueries({ queryKey: ['runs'] })]);
  const act = (id: string, fn: () => Promise<Flash | null>) => {
    setBusy(id);
    setFlash(null);
    fn()
      .then(async (f) => {
        if (f) setFlash(f);
        await refresh();
      })
      .catch((err: unknown) => setFlash({ kind: 'error', text: errorMessage(err) }))
      .finally(() => setBusy(null));
  };

  return (
    <Page
      title="Drills"
      subtitle="Scheduled proof that backups restore: each VM’s newest (or a random) restore point is restored to a throwaway VM, every disk verified, and the VM deleted."
      actions={
        operator && (
          <Link className="button primary" to={paths.newDrill}>
            New drill
          </Link>
        )
      }
    >
      {flash && (
        <div className={`alert ${flash.kind}`} role={flash.kind === 'error' ? 'alert' : 'status'}>
          {flash.text}{' '}
          {flash.runIds?.map((id, i) => (
            <Link key={id} to={paths.run(id)}>
              {flash.runIds!.length > 1 ? `Watch run ${i + 1}` : 'Watch the run'}
            </Link>
          ))}
        </div>
      )}
      {drills.isPending && <Loading what="drills" />}
      {drills.isError && <LoadError what="drills" error={drills.error} />}
      {drills.data?.length === 0 && (
        <section className="card">
          <p className="muted">No drill yet. {operator ? <Link to={paths.newDrill}>Create the first one</Link> : 'An operator or admin can create one.'}</p>
        </section>
      )}
      {drills.data && drills.data.length > 0 && (
        <section className="card">
          <table className="cards" data-testid="drills">
            <TableHead columns={['Drill', 'Schedule', 'Next run', 'Restore point', 'Last result', 'Enabled']} actions="Actions" />
            <tbody>
              {drills.data.map((d) => {
                const running = d.lastResults.some((r) => r.run && (r.run.status === 'queued' || r.run.status === 'running'));
                return (
                  <tr key={d.id} data-testid="drill-row">
                    <td data-label="Drill">
                      <strong>{d.name}</strong>
                      <div className="muted small">
                        {vcenters.data?.find((v) => v.id === d.vcenterId)?.name ?? 'vCenter'} · {d.datastore ? `datastore ${d.datastore}` : 'the source datastores'}
                      </div>
                    </td>
                    <td data-label="Schedule">{describeSchedule(d.schedule)}</td>
                    <td data-label="Next run">{d.nextRunAt ? formatDateTime(d.nextRunAt) : <span className="muted">{d.schedule && !d.enabled ? 'disabled' : '—'}</span>}</td>
                    <td data-label="Restore point">{d.pointChoice === 'random' ? 'a random one' : 'the newest'}</td>
                    <td data-label="Last result" className="small">
                      {d.lastResults.map((r) => (
                        <div key={r.instanceUuid} data-testid="drill-result">
                          {r.name}:{' '}
                          {r.run ? (
                            <Link to={paths.run(r.run.id)} className="plain" aria-label={`Last drill of ${r.name}: ${r.run.status}`} title={r.run.error ?? undefined}>
                              <StatusPill status={r.run.status} /> <span className="muted">{ago(r.run.finishedAt ?? r.run.createdAt)}</span>
                            </Link>
                          ) : (
                            <span className="muted">never drilled</span>
                          )}
                        </div>
                      ))}
                    </td>
                    <td data-label="Enabled">
                      {operator ? (
                        <button
                          type="button"
                          role="switch"
                          className={`switch ${d.enabled ? 'on' : ''}`}
                          aria-checked={d.enabled}
                          aria-label={`${d.name} enabled`}
                          disabled={busy === d.id}
                          onClick={() => act(d.id, async () => (await updateDrill(d.id, { enabled: !d.enabled }), null))}
                        >
                          <span aria-hidden="true" />
                        </button>
                      ) : (
                        <span>{d.enabled ? 'yes' : 'no'}</span>
                      )}
                    </td>
                    <td className="actions">
                      {operator && (
                        <>
                          <button
                            type="button"
                            disabled={busy === d.id || running}
                            aria-label={`Run ${d.name} now`}
                            onClick={() => act(d.id, async () => ({ kind: 'ok', text: `${d.name} started.`, runIds: (await runDrill(d.id)).runIds }))}
                          >
                            Run now
                          </button>
                          <button type="button" onClick={() => void navigate(paths.editDrill(d.id))} aria-label={`Edit ${d.name}`}>
                            Edit
                          </button>
                          <button
                            type="button"
                            className="danger-text"
                            aria-label={`Delete ${d.name}`}
                            onClick={() => {
                              setDeleteError(null);
                              setDeleting(d);
                            }}
                          >
                            Delete
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      )}
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete drill ${deleting?.name ?? ''}?`}
        confirmLabel="Delete drill"
        danger
        busy={busy === deleting?.id}
        error={deleteError}
        onCancel={() => setDeleting(null)}
        onConfirm={() => {
          const d = deleting!;
          setBusy(d.id);
          deleteDrill(d.id)
            .then(async () => {
              setDeleting(null);
              setFlash({ kind: 'ok', text: `Drill ${d.name} deleted.` });
              await refresh();
            })
            .catch((err: unknown) => setDeleteError(errorMessage(err)))
            .finally(() => setBusy(null));
        }}
      >
        <p>Its schedule stops. Its past drill runs stay in the history; restore points are not touched.</p>
      </ConfirmDialog>
    </Page>
  );
}
