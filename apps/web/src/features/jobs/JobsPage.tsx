import { useState } from 'react';
import { Link, useLocation, useNavigate } from 'react-router';
import type { Job } from '@vaultline/contracts';
import { useJobMutations, useJobs, useJobsHistory } from '../../api/jobs.ts';
import { useRepositories } from '../../api/repositories.ts';
import { ConfirmDialog } from '../../components/ConfirmDialog.tsx';
import { HistoryBars } from '../../components/HistoryBars.tsx';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { StatusPill } from '../../components/StatusPill.tsx';
import { TRANSPORT_LABEL } from '../../components/run/transport.ts';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { ago, formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { describeSchedule } from './schedule.ts';
import { sourceLabel } from './sources.ts';
import { TableHead } from '../../components/TableHead.tsx';

type Flash = { kind: 'ok' | 'error'; text: string; runId?: string };

export default function JobsPage() {
  const me = useMe();
  const location = useLocation();
  const navigate = useNavigate();
  const jobs = useJobs();
  const history = useJobsHistory();
  const repositories = useRepositories();
  const { update, remove, run } = useJobMutations();
  const [flash, setFlash] = useState<Flash | null>(() => {
    const text = (location.state as { flash?: string } | null)?.flash;
    return text ? { kind: 'ok', text } : null;
  });
  const [deleting, setDeleting] = useState<Job | null>(null);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const operator = can(me.role, 'operator');
  const repoName = (id: string) => repositories.data?.find((r) => r.id === id)?.name ?? '…';

  const runNow = (job: Job) => {
    setFlash(null);
    run.mutate(job.id, {
      onSuccess: (r) => setFlash({ kind: 'ok', text: `${job.name} started.`, runId: r.id }),
      onError: (err) => setFlash({ kind: 'error', text: errorMessage(err) }),
    });
  };
  const toggle = (job: Job) => {
    setFlash(null);
    update.mutate({ id: job.id, body: { enabled: !job.enabled } }, { onError: (err) => setFlash({ kind: 'error', text: errorMessage(err) }) });
  };

  return (
    <Page
      title="Jobs"
      subtitle="What is backed up, where, when and how."
      actions={
        operator && (
          <Link className="button primary" to={paths.newJob}>
            New job
          </Link>
        )
      }
    >
      {flash && (
        <div className={`alert ${flash.kind}`} role={flash.kind === 'error' ? 'alert' : 'status'}>
          {flash.text} {flash.runId && <Link to={paths.run(flash.runId)}>Watch the run</Link>}
        </div>
      )}
      {jobs.isPending && <Loading what="jobs" />}
      {jobs.isError && <LoadError what="jobs" error={jobs.error} />}
      {jobs.data?.length === 0 && (
        <section className="card">
          <p className="muted">No job yet. {operator ? <Link to={paths.newJob}>Create the first one</Link> : 'An operator or admin can create one.'}</p>
        </section>
      )}
      {jobs.data && jobs.data.length > 0 && (
        <section className="card">
          <table className="cards" data-testid="jobs">
            <TableHead columns={['Job', 'Repository', 'Transport', 'Schedule', 'Next run', 'Last result', 'Enabled']} actions="Actions" />
            <tbody>
              {jobs.data.map((job) => (
                <tr key={job.id} data-testid="job-row">
                  <td data-label="Job" className="name-cell">
                    <Link to={paths.job(job.id)}>
                      <strong>{job.name}</strong>
                    </Link>
                    <div className="muted small">{job.sources.map(sourceLabel).join(', ')}</div>
                  </td>
                  <td data-label="Repository">{repoName(job.repositoryId)}</td>
                  <td data-label="Transport">{TRANSPORT_LABEL[job.transportMode]}</td>
                  <td data-label="Schedule">{describeSchedule(job.schedule)}</td>
                  <td data-label="Next run">{job.nextRunAt ? formatDateTime(job.nextRunAt) : <span className="muted">{job.schedule && !job.enabled ? 'disabled' : '—'}</span>}</td>
                  <td data-label="Last result">
                    {job.lastRun ? (
                      <Link to={paths.run(job.lastRun.id)} className="plain" aria-label={`Last run of ${job.name}: ${job.lastRun.status}`}>
                        <StatusPill status={job.lastRun.status} /> <span className="muted small">{ago(job.lastRun.finishedAt ?? job.lastRun.createdAt)}</span>
                      </Link>
                    ) : (
                      <span className="muted">never run</span>
                    )}
                    <HistoryBars compact runs={history.data?.find((h) => h.jobId === job.id)?.runs ?? []} label={`Recent runs of ${job.name}`} />
                  </td>
                  <td data-label="Enabled">
                    {operator ? (
                      <button
                        type="button"
                        role="switch"
                        className={`switch ${job.enabled ? 'on' : ''}`}
                        aria-checked={job.enabled}
                        aria-label={`${job.name} enabled`}
                        disabled={update.isPending}
                        onClick={() => toggle(job)}
                      >
                        <span aria-hidden="true" />
                      </button>
                    ) : (
                      <span>{job.enabled ? 'yes' : 'no'}</span>
                    )}
                  </td>
                  <td className="actions">
                    {operator && (
                      <>
                        <button type="button" onClick={() => runNow(job)} disabled={run.isPending || job.lastRun?.status === 'running' || job.lastRun?.status === 'queued'} aria-label={`Run ${job.name} now`}>
                          Run now
                        </button>
                        <button type="button" onClick={() => void navigate(paths.editJob(job.id))} aria-label={`Edit ${job.name}`}>
                          Edit
                        </button>
                        <button
                          type="button"
                          className="danger-text"
                          aria-label={`Delete ${job.name}`}
                          onClick={() => {
                            setDeleteError(null);
                            setDeleting(job);
                          }}
                        >
                          Delete
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
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete ${deleting?.name ?? 'job'}?`}
        confirmLabel="Delete job"
        danger
        busy={remove.isPending}
        error={deleteError}
        onCancel={() => setDeleting(null)}
        onConfirm={() => {
          const job = deleting!;
          remove.mutate(job.id, {
            onSuccess: () => {
              setDeleting(null);
              setFlash({ kind: 'ok', text: `Job ${job.name} deleted.` });
            },
            onError: (err) => setDeleteError(errorMessage(err)),
          });
        }}
      >
        <p>Its schedule stops and it can no longer be run. Restore points it made stay in their repository, and its past runs stay in the history.</p>
      </ConfirmDialog>
    </Page>
  );
}
