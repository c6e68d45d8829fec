import { useState } from 'react';
import { Link, useParams } from 'react-router';
import type { Retention } from '@vaultline/contracts';
import { useJob, useJobHistory, useJobMutations } from '../../api/jobs.ts';
import { useLiveRuns } from '../../api/live.ts';
import { useRepositories } from '../../api/repositories.ts';
import { useVCenters } from '../../api/vcenters.ts';
import { HistoryBars } from '../../components/HistoryBars.tsx';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { StatusPill } from '../../components/StatusPill.tsx';
import { TableHead } from '../../components/TableHead.tsx';
import { TRANSPORT_LABEL } from '../../components/run/transport.ts';
import { paths } from '../../config/paths.ts';
import { errorMessage } from '../../lib/api.ts';
import { formatBytes, formatDateTime, formatDuration } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { describeSchedule } from './schedule.ts';
import { sourceCount, sourceLabel } from './sources.ts';

/** "the last 14, 7 daily, 4 weekly; immutable for 5 days". */
function keeps(r: Retention): string {
  const kept = [`the last ${r.keepLast}`, ...(['Daily', 'Weekly', 'Monthly', 'Yearly'] as const).filter((k) => r[`keep${k}`] > 0).map((k) => `${r[`keep${k}`]} ${k.toLowerCase()}`)];
  return `${kept.join(', ')}${r.immutableDays > 0 ? `; immutable for ${r.immutableDays} day${r.immutableDays === 1 ? '' : 's'}` : ''}`;
}

type Flash = { kind: 'ok' | 'error'; text: string; runId?: string };

/** One job: what it backs up, where and when, and its latest runs as bars (duration and result). */
export default function JobPage() {
  const { id } = useParams();
  const operator = can(useMe().role, 'operator');
  const job = useJob(id);
  const history = useJobHistory(id);
  const repositories = useRepositories();
  const vcenters = useVCenters();
  const { run } = useJobMutations();
  const [flash, setFlash] = useState<Flash | null>(null);
  // A run finishing refreshes the job and its bars.
  useLiveRuns();

  const j = job.data;
  const runs = history.data?.runs ?? [];
  const active = runs.some((r) => r.status === 'queued' || r.status === 'running') || j?.lastRun?.status === 'queued' || j?.lastRun?.status === 'running';
  const runNow = () => {
    if (!j) return;
    setFlash(null);
    run.mutate(j.id, {
      onSuccess: (r) => setFlash({ kind: 'ok', text: `${j.name} started.`, runId: r.id }),
      onError: (err) => setFlash({ kind: 'error', text: errorMessage(err) }),
    });
  };

  return (
    <Page
      title={j ? j.name : 'Job'}
      subtitle={j && `Backup job · ${sourceCount(j.sources)} · ${j.enabled ? 'enabled' : 'disabled'}`}
      actions={
        j &&
        operator && (
          <>
            <button type="button" className="primary" onClick={runNow} disabled={run.isPending || active}>
              Run now
            </button>
            <Link className="button" to={paths.editJob(j.id)}>
              Edit
            </Link>
          </>
        )
      }
    >
      <p>
        <Link to={paths.jobs}>← All jobs</Link>
      </p>
      {flash && (
        <div className={`alert ${flash.kind}`} role={flash.kind === 'error' ? 'alert' : 'status'}>
          {flash.text} {flash.runId && <Link to={paths.run(flash.runId)}>Watch the run</Link>}
        </div>
      )}
      {job.isPending && <Loading what="the job" />}
      {job.isError && <LoadError what="the job" error={job.error} />}
      {j && (
        <section className="card" aria-labelledby="job-summary-title">
          <h2 id="job-summary-title" className="card-title">
            Summary
          </h2>
          <dl className="summary job-summary">
            <dt>VMs</dt>
            <dd data-testid="job-sources">{j.sources.map(sourceLabel).join(', ')}</dd>
            <dt>vCenter</dt>
            <dd>{vcenters.data?.find((v) => v.id === j.vcenterId)?.name ?? '…'}</dd>
            <dt>Repository</dt>
            <dd>{repositories.data?.find((r) => r.id === j.repositoryId)?.name ?? '…'}</dd>
            <dt>Transport</dt>
            <dd>{TRANSPORT_LABEL[j.transportMode]}</dd>
            <dt>Schedule</dt>
            <dd data-testid="job-schedule">{describeSchedule(j.schedule)}</dd>
            <dt>Next run</dt>
            <dd>{j.nextRunAt ? formatDateTime(j.nextRunAt) : <span className="muted">{j.schedule && !j.enabled ? 'disabled' : '—'}</span>}</dd>
            <dt>Keeps</dt>
            <dd>{keeps(j.options.retention)}</dd>
          </dl>
        </section>
      )}
      {j && (
        <section className="card" aria-labelledby="job-history-title">
          <h2 id="job-history-title" className="card-title">
            Recent runs
          </h2>
          {history.isPending && <Loading what="the runs" />}
          {history.isError && <LoadError what="the runs" error={history.error} />}
          {history.data && <HistoryBars runs={runs} label={`Latest runs of ${j.name}, oldest first`} />}
          {runs.length > 0 && (
            <table className="cards job-runs">
              <TableHead columns={['Started', 'Result', 'Duration', 'Read', 'Written', 'Trigger']} />
              <tbody>
                {[...runs].reverse().map((r) => (
                  <tr key={r.id} data-testid="job-run-row">
                    <td data-label="Started">
                      <Link to={paths.run(r.id)}>{formatDateTime(r.startedAt ?? r.createdAt)}</Link>
                    </td>
                    <td data-label="Result">
                      <StatusPill status={r.status} />
                    </td>
                    <td data-label="Duration">{r.durationSeconds === null ? <span className="muted">—</span> : formatDuration(r.durationSeconds)}</td>
                    <td data-label="Read">{formatBytes(r.bytesRead)}</td>
                    <td data-label="Written">{formatBytes(r.bytesWritten)}</td>
                    <td data-label="Trigger">{r.trigger === 'schedule' ? 'schedule' : 'manual'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
    </Page>
  );
}
