import { Link } from 'react-router';
import { useJobs } from '../../api/jobs.ts';
import { useLiveRuns } from '../../api/live.ts';
import { useRuns } from '../../api/runs.ts';
import { StatusPill } from '../../components/StatusPill.tsx';
import { RunVmBlock } from '../../components/run/RunVmBlock.tsx';
import { paths } from '../../config/paths.ts';
import { formatDateTime } from '../../lib/format.ts';
import { runTitle } from '../../lib/run-title.ts';

/** The latest runs with every disk's progress, live. */
export function RecentRuns() {
  const runs = useRuns({ limit: 5 });
  const jobs = useJobs();
  const live = useLiveRuns();
  const jobName = (id: string | null) => (id ? jobs.data?.find((j) => j.id === id)?.name : undefined);

  return (
    <section className="card" data-testid="runs">
      <div className="row">
        <h3>Recent runs</h3>
        <Link to={paths.runs} className="small">
          All runs
        </Link>
      </div>
      {runs.isPending && <p className="muted">Loading…</p>}
      {runs.isError && <p className="reason">{runs.error.message}</p>}
      {runs.data?.length === 0 && <p className="muted">Nothing has run yet. Pick a VM above and back it up, or create a job.</p>}
      {runs.data?.map((run) => (
        <div key={run.id} className="run" data-testid="run">
          <div className="row">
            <Link to={paths.run(run.id)}>
              <strong>{runTitle(run, jobName(run.jobId))}</strong>
            </Link>
            <span className="muted small">{formatDateTime(run.createdAt)}</span>
            <StatusPill status={run.status} testId="run-status" />
          </div>
          {run.vms.map((vm) => (
            <RunVmBlock key={vm.id} vm={vm} live={live} detailed={false} kind={run.kind} />
          ))}
        </div>
      ))}
    </section>
  );
}
