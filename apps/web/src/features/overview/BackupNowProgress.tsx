import { Link } from 'react-router';
import { liveKey, useLiveRuns } from '../../api/live.ts';
import { isActive, useRun } from '../../api/runs.ts';
import { StatusPill } from '../../components/StatusPill.tsx';
import { paths } from '../../config/paths.ts';
import { formatBytes } from '../../lib/format.ts';

/**
 * A one-off backup's progress right under the VM it was started from: phase, how much of the disks is done and
 * the speed, live, then how it ended — without leaving the page (the run's own page is a link away).
 */
export function BackupNowProgress({ runId, vmName }: { runId: string; vmName: string }) {
  const run = useRun(runId);
  const live = useLiveRuns();
  const item = run.data?.vms[0];
  if (!run.data || !item) return <span className="muted small">Starting the backup of {vmName}…</span>;
  const disks = item.disks.map((d) => {
    const p = live[liveKey(item.id, d.deviceKey)];
    return p ? { done: p.bytesRead + p.bytesSkipped, total: p.bytesTotal || d.capacityBytes, speed: p.bytesPerSecond } : { done: d.bytesRead + d.bytesSkipped, total: d.capacityBytes, speed: d.speed.average };
  });
  const total = disks.reduce((n, d) => n + d.total, 0);
  const done = disks.reduce((n, d) => n + Math.min(d.done, d.total), 0);
  const speed = disks.reduce((n, d) => n + d.speed, 0);
  const active = isActive(run.data.status);
  const percent = total > 0 ? Math.floor((done / total) * 100) : 0;
  return (
    <div className="backup-now" data-testid="backup-now-progress" role="status" aria-live="polite">
      <StatusPill status={run.data.status} /> <strong>{vmName}</strong>{' '}
      {active ? (
        <>
          <span className="muted">{item.phase}</span>
          {total > 0 && (
            <>
              {' · '}
              <progress max={100} value={percent} aria-label={`Backup of ${vmName}`} /> {percent} % of {formatBytes(total)}
              {speed > 0 && ` · ${formatBytes(speed)}/s`}
            </>
          )}
        </>
      ) : (
        <span>{run.data.status === 'succeeded' || run.data.status === 'warning' ? 'backed up: a restore point was made (kept until deleted; no job was created)' : (item.error ?? run.data.error ?? '')}</span>
      )}{' '}
      <Link to={paths.run(runId)}>{active ? 'Open the run' : 'See the run'}</Link>
    </div>
  );
}
