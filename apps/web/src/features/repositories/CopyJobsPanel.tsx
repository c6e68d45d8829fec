import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import type { CopyJob, RepositoryDto as Repository, Retention } from '@vaultline/contracts';
import { createCopyJob, deleteCopyJob, runCopyJob, useCopyJobs } from '../../api/copy-jobs.ts';
import { ConfirmDialog } from '../../components/ConfirmDialog.tsx';
import { FormError } from '../../components/FormError.tsx';
import { LoadError, Loading } from '../../components/Page.tsx';
import { RetentionFields } from '../../components/RetentionFields.tsx';
import { TableHead } from '../../components/TableHead.tsx';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { describeSchedule } from '../jobs/schedule.ts';

type Flash = { kind: 'ok' | 'error'; text: string; runId?: string };

/**
 * Backup copy jobs (3-2-1): each copies the restore points of one repository into another, incrementally,
 * on demand or on its schedule, with its own retention. Listed under the repositories they connect.
 */
export function CopyJobsPanel({ repositories, operator }: { repositories: Repository[]; operator: boolean }) {
  const qc = useQueryClient();
  const jobs = useCopyJobs();
  const [adding, setAdding] = useState(false);
  const [flash, setFlash] = useState<Flash | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<CopyJob | null>(null);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const refresh = () => Promise.all([qc.invalidateQueries({ queryKey: ['copy-jobs'] }), qc.invalidateQueries({ queryKey: ['runs'] })]);

  const run = (j: CopyJob) => {
    setBusy(j.id);
    setFlash(null);
    runCopyJob(j.id)
      .then(async (r) => {
        setFlash({ kind: 'ok', text: `Copy job ${j.name} started.`, runId: r.runId });
        await refresh();
      })
      .catch((err: unknown) => setFlash({ kind: 'error', text: errorMessage(err) }))
      .finally(() => setBusy(null));
  };

  return (
    <section className="card" aria-labelledby="copy-jobs-title" data-testid="copy-jobs">
      <div className="row">
        <h3 id="copy-jobs-title">Backup copies</h3>
        {operator && !adding && repositories.length >= 2 && (
          <button type="button" onClick={() => setAdding(true)}>
            New copy job
          </button>
        )}
      </div>
      <p className="muted small">
        A second copy of the restore points in another repository (another disk, an SFTP server, S3): each run copies only what changed since the last copy, and a restore can use either copy.
      </p>
      {flash && (
        <div className={`alert ${flash.kind}`} role={flash.kind === 'error' ? 'alert' : 'status'}>
          {flash.text} {flash.runId && <Link to={paths.run(flash.runId)}>Watch the run</Link>}
        </div>
      )}
      {adding && (
        <CopyJobForm
          repositories={repositories}
          onCancel={() => setAdding(false)}
          onAdded={async (j) => {
            setAdding(false);
            setFlash({ kind: 'ok', text: `Copy job ${j.name} added.` });
            await refresh();
          }}
        />
      )}
      {jobs.isPending && <Loading what="copy jobs" />}
      {jobs.isError && <LoadError what="copy jobs" error={jobs.error} />}
      {jobs.data?.length === 0 && !adding && <p className="muted">No copy job yet{repositories.length < 2 ? ': add a second repository to copy into' : ''}.</p>}
      {jobs.data && jobs.data.length > 0 && (
        <table className="cards" data-testid="copy-job-list">
          <TableHead columns={['Copy job', 'From', 'To', 'Which points', 'Keeps', 'Schedule', 'Copies']} actions={operator ? 'Actions' : undefined} />
          <tbody>
            {jobs.data.map((j) => (
              <tr key={j.id} data-testid="copy-job-row">
                <td data-label="Copy job">
                  <strong>{j.name}</strong>
                  {!j.enabled && <span className="pill">disabled</span>}
                </td>
                <td data-label="From">
                  <Link to={paths.repository(j.source.id)}>{j.source.name}</Link>
                </td>
                <td data-label="To">
                  <Link to={paths.repository(j.target.id)}>{j.target.name}</Link>
                </td>
                <td data-label="Which points">{j.newest ? `each VM's newest ${j.newest}` : 'every one'}</td>
                <td data-label="Keeps">{describeRetention(j.retention)}</td>
                <td data-label="Schedule">{describeSchedule(j.schedule)}</td>
                <td data-label="Copies">{j.copies}</td>
                {operator && (
                  <td className="actions">
                    <button type="button" disabled={busy === j.id} onClick={() => run(j)} aria-label={`Run ${j.name} now`}>
                      Run now
                    </button>
                    <button
                      type="button"
                      className="danger-text"
                      aria-label={`Delete ${j.name}`}
                      onClick={() => {
                        setDeleteError(null);
                        setDeleting(j);
                      }}
                    >
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete copy job ${deleting?.name ?? ''}?`}
        confirmLabel="Delete copy job"
        danger
        busy={busy === deleting?.id}
        error={deleteError}
        onCancel={() => setDeleting(null)}
        onConfirm={() => {
          const j = deleting!;
          setBusy(j.id);
          deleteCopyJob(j.id)
            .then(async () => {
              setDeleting(null);
              setFlash({ kind: 'ok', text: `Copy job ${j.name} deleted; its ${j.copies} copies stay in ${j.target.name}.` });
              await refresh();
            })
            .catch((err: unknown) => setDeleteError(errorMessage(err)))
            .finally(() => setBusy(null));
        }}
      >
        <p>
          No more copies are made. The {deleting?.copies ?? 0} copies it made stay in {deleting?.target.name} as restore points; its retention no longer prunes them.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function CopyJobForm({ repositories, onCancel, onAdded }: { repositories: Repository[]; onCancel: () => void; onAdded: (j: CopyJob) => Promise<void> }) {
  const [name, setName] = useState('');
  const [source, setSource] = useState(repositories[0]?.id ?? '');
  const [target, setTarget] = useState(repositories[1]?.id ?? '');
  const [which, setWhich] = useState<'all' | 'newest'>('all');
  const [newest, setNewest] = useState(7);
  const [retention, setRetention] = useState<Retention>({ keepLast: 14, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, immutableDays: 0 });
  const [schedule, setSchedule] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (source === target) return setError('Choose another repository to copy into than the one copied from.');
    setBusy(true);
    createCopyJob({
      name: name.trim(),
      sourceRepositoryId: source,
      targetRepositoryId: target,
      newest: which === 'newest' ? newest : null,
      retention,
      schedule: schedule.trim() || null,
    })
      .then(onAdded)
      .catch((err: unknown) => setError(errorMessage(err)))
      .finally(() => setBusy(false));
  };

  return (
    <form className="form" onSubmit={submit} aria-label="New copy job">
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </label>
      <label>
        Copy from
        <select value={source} onChange={(e) => setSource(e.target.value)}>
          {repositories.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Copy into
        <select value={target} onChange={(e) => setTarget(e.target.value)}>
          {repositories.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name} ({r.kind}
              {r.encrypted ? ', encrypted' : ''})
            </option>
          ))}
        </select>
      </label>
      <fieldset className="segmented">
        <legend>Restore points to copy</legend>
        <label>
          <input type="radio" name="which" checked={which === 'all'} onChange={() => setWhich('all')} /> Every one
        </label>
        <label>
          <input type="radio" name="which" checked={which === 'newest'} onChange={() => setWhich('newest')} /> Each VM&apos;s newest
        </label>
      </fieldset>
      {which === 'newest' && (
        <label>
          How many per VM
          <input type="number" min={1} max={10000} value={newest} onChange={(e) => setNewest(Number(e.target.value))} />
        </label>
      )}
      <fieldset>
        <legend>Copies kept per VM</legend>
        <RetentionFields value={retention} onChange={(patch) => setRetention({ ...retention, ...patch })} />
        <p className="small muted">Counted from each copied point's own time. Immutable copies cannot be deleted for that many days, whoever asks.</p>
      </fieldset>
      <label>
        Schedule (cron, empty for on demand)
        <input value={schedule} onChange={(e) => setSchedule(e.target.value)} placeholder="0 4 * * *" className="mono" />
      </label>
      <FormError message={error} />
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy}>
          Add copy job
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** "the last 14", "the last 7, 4 weekly, 12 monthly; immutable 30 days". */
function describeRetention(r: Retention): string {
  const rules = [`the last ${r.keepLast}`, ...(['keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const).filter((k) => r[k] > 0).map((k) => `${r[k]} ${k.slice(4).toLowerCase()}`)];
  return `${rules.join(', ')}${r.immutableDays > 0 ? `; immutable ${r.immutableDays} day${r.immutableDays === 1 ? '' : 's'}` : ''}`;
}
