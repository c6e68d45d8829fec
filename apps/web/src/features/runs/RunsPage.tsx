import { Link, useSearchParams } from 'react-router';
import { RunStatusSchema, type RunStatus } from '@vaultline/contracts';
import { useJobs } from '../../api/jobs.ts';
import { useLiveRuns } from '../../api/live.ts';
import { useRuns } from '../../api/runs.ts';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { StatusPill } from '../../components/StatusPill.tsx';
import { paths } from '../../config/paths.ts';
import { formatBytes, formatDateTime, formatDuration, secondsBetween } from '../../lib/format.ts';
import { RUN_KIND, runTitle } from '../../lib/run-title.ts';
import { runBytes } from '../../lib/run-totals.ts';
import { TableHead } from '../../components/TableHead.tsx';

export default function RunsPage() {
  const [params, setParams] = useSearchParams();
  const jobId = params.get('job') ?? undefined;
  const status = RunStatusSchema.safeParse(params.get('status')).data;
  const runs = useRuns({ jobId, status, limit: 100, logs: false });
  const jobs = useJobs();
  useLiveRuns();
  const jobName = (id: string | null) => (id ? (jobs.data?.find((j) => j.id === id)?.name ?? 'deleted job') : null);
  const setFilter = (key: 'job' | 'status', value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  return (
    <Page title="Runs" subtitle="Every backup, restore, drill, verify and garbage collection, newest first.">
      <div className="toolbar">
        <label className="inline">
          Job
          <select value={jobId ?? ''} onChange={(e) => setFilter('job', e.target.value)}>
            <option value="">All jobs</option>
            {jobs.data?.map((j) => (
              <option key={j.id} value={j.id}>
                {j.name}
              </option>
            ))}
          </select>
        </label>
        <label className="inline">
          Status
          <select value={status ?? ''} onChange={(e) => setFilter('status', e.target.value)}>
            <option value="">Any status</option>
            {RunStatusSchema.options.map((s: RunStatus) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </div>
      {runs.isPending && <Loading what="runs" />}
      {runs.isError && <LoadError what="runs" error={runs.error} />}
      {runs.data && (
        <section className="card">
          {runs.data.length === 0 ? (
            <p className="muted">No run matches.</p>
          ) : (
            <table className="cards" data-testid="run-history">
              <TableHead columns={['Started', 'Job', 'VMs', 'Status', 'Took', 'Read / stored']} />
              <tbody>
                {runs.data.map((run) => {
                  const t = runBytes(run);
                  const took = secondsBetween(run.startedAt, run.finishedAt);
                  return (
                    <tr key={run.id} data-testid="history-row">
                      <td data-label="Started">
                        <Link to={paths.run(run.id)}>{formatDateTime(run.startedAt ?? run.createdAt)}</Link>
                        <div className="muted small">{run.trigger}</div>
                      </td>
                      <td data-label="Job">
                        {run.kind === 'backup' ? (jobName(run.jobId) ?? (run.trigger === 'one-off' ? runTitle(run, undefined) : RUN_KIND.backup)) : RUN_KIND[run.kind]}
                      </td>
                      <td data-label="VMs" className="small">{run.vms.map((v) => v.vmName).join(', ')}</td>
                      <td data-label="Status">
                        <StatusPill status={run.status} />
                      </td>
                      <td data-label="Took">{took !== null ? formatDuration(took) : '—'}</td>
                      <td data-label="Read / stored" className="small">
                        {formatBytes(t.read)} / {formatBytes(t.stored)}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
        </section>
      )}
    </Page>
  );
}
