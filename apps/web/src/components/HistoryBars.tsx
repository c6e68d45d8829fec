import { Link } from 'react-router';
import type { JobHistoryBar, RunStatus } from '@vaultline/contracts';
import { paths } from '../config/paths.ts';
import { formatDuration, secondsBetween } from '../lib/format.ts';

/**
 * A job's latest runs as bars, oldest on the left: height = how long the run took, colour and pattern =
 * its result (a colour-blind-safe palette; failed bars are also hatched, unfinished ones striped).
 *
 * - `compact` (the Jobs list): a small picture with one summary for screen readers; the bars are not links.
 * - otherwise (the job page): each bar is a link to its run, named e.g. "Run Dec 5, 2:00 PM, succeeded, 2 min 10 s".
 */
export function HistoryBars({ runs, compact = false, label, now = Date.now() }: { runs: readonly JobHistoryBar[]; compact?: boolean; label: string; now?: number }) {
  if (runs.length === 0) return compact ? null : <p className="muted">No run yet.</p>;
  const seconds = runs.map((r) => runSeconds(r, now));
  const longest = Math.max(1, ...seconds.map((s) => s ?? 0));
  const height = (s: number | null) => `${Math.max(6, Math.round(((s ?? 0) / longest) * 100))}%`;

  if (compact) {
    return (
      <span className="history-bars compact" role="img" aria-label={`${label}: ${summary(runs)}`} data-testid="history-sparkline">
        {runs.map((r, i) => (
          <span key={r.id} className={`history-bar status-${r.status}`} style={{ height: height(seconds[i]!) }} title={barLabel(r, seconds[i]!)} />
        ))}
      </span>
    );
  }
  return (
    <figure className="history-chart" data-testid="history-chart">
      <ol className={`history-bars${runs.length > 60 ? ' dense' : ''}`} aria-label={label}>
        {runs.map((r, i) => (
          <li key={r.id}>
            <Link to={paths.run(r.id)} className={`history-bar status-${r.status}`} style={{ height: height(seconds[i]!) }} aria-label={barLabel(r, seconds[i]!)} title={barLabel(r, seconds[i]!)} data-testid="history-bar" />
          </li>
        ))}
      </ol>
      <figcaption className="history-legend muted small">
        <span>
          {runs.length} run{runs.length === 1 ? '' : 's'}, oldest on the left; height: duration (longest {formatDuration(longest)}).
        </span>
        <ul className="history-keys">
          {STATUS_ORDER.filter((s) => runs.some((r) => r.status === s)).map((s) => (
            <li key={s}>
              <span className={`history-key status-${s}`} aria-hidden="true" /> {runs.filter((r) => r.status === s).length} {s}
            </li>
          ))}
        </ul>
      </figcaption>
    </figure>
  );
}

const STATUS_ORDER: readonly RunStatus[] = ['succeeded', 'warning', 'failed', 'cancelled', 'running', 'queued'];

/** How long a run took, or has taken so far (running); null while queued. */
function runSeconds(r: JobHistoryBar, now: number): number | null {
  if (r.durationSeconds !== null) return r.durationSeconds;
  return r.startedAt ? secondsBetween(r.startedAt, new Date(now).toISOString()) : null;
}

const when = (iso: string) => new Date(iso).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });

/** "Run Dec 5, 2:00 PM, succeeded, 2 min 10 s". */
export function barLabel(r: JobHistoryBar, seconds: number | null): string {
  const took = seconds === null ? '' : r.durationSeconds === null ? `, ${formatDuration(seconds)} so far` : `, ${formatDuration(seconds)}`;
  return `Run ${when(r.startedAt ?? r.createdAt)}, ${r.status}${took}`;
}

/** "12 runs: 10 succeeded, 1 warning, 1 failed". */
function summary(runs: readonly JobHistoryBar[]): string {
  const counts = STATUS_ORDER.map((s) => [s, runs.filter((r) => r.status === s).length] as const).filter(([, n]) => n > 0);
  return `last ${runs.length} run${runs.length === 1 ? '' : 's'}: ${counts.map(([s, n]) => `${n} ${s}`).join(', ')}`;
}
